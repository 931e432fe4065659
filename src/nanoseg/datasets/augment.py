"""Augmentation of image/mask pairs: geometric transforms that keep labels binary and aligned, and the
noise / dose / blur augmentations studied in the papers.

* 8-fold dihedral group (rotations by 90° and flips), exact for image and label.
* Free rotation: the image is rotated with bilinear interpolation, the label with nearest neighbour, both
  with reflected borders, so the label stays binary and follows the rotated image (never a thresholded,
  truncated interpolated label).
* Random crop-zoom (Horwath: crops of 128–512 px of a 512 px frame zoomed back to 512) and wrap-around shift.
* Additive Gaussian noise on the *standardized* image, renormalised (Sytwu): ``(x + N(0, ρ²)) / √(1 + ρ²)``,
  with a fixed ρ or ρ ~ U[0, ρmax] per sample. With a unit-variance input the output keeps unit variance.
* Poisson re-dosing of raw counts (electrons per pixel) to a lower dose: binomial thinning, exact for
  integer counts (a Poisson(λ) count thinned with p is Poisson(pλ)); for non-integer (detector-blurred)
  counts the thinning is approximated by ``p·x + √(p(1−p)·x)·N(0, 1)``.
* Gaussian blur of the input (labels unchanged), as in Horwath's blur study.

Every function takes a ``numpy.random.Generator``; :func:`augment_pair` applies an :class:`AugmentConfig`.

Example
-------
>>> import numpy as np
>>> img, mask = np.arange(16.0).reshape(4, 4), np.eye(4, dtype=np.uint8)
>>> i2, m2 = dihedral(img, mask, 5)
>>> bool(np.array_equal(m2, np.rot90(np.fliplr(mask), 1))), i2.shape
(True, (4, 4))
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import ndimage

from nanoseg.errors import NanosegError


def dihedral(image: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Element ``k`` (0–7) of the dihedral group: ``k % 4`` quarter turns, after a left-right flip if k ≥ 4."""
    if not 0 <= int(k) < 8:
        raise NanosegError(f"dihedral element must be 0..7, got {k}")

    def op(a):
        a = np.fliplr(a) if k >= 4 else a
        return np.ascontiguousarray(np.rot90(a, k % 4))

    return op(image), op(mask)


def random_dihedral(image, mask, rng: np.random.Generator):
    return dihedral(image, mask, int(rng.integers(8)))


def rotate(image: np.ndarray, mask: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``angle_deg`` (counter-clockwise) about the centre; image bilinear, label nearest neighbour.

    >>> m = np.zeros((9, 9), np.uint8); m[4, 6] = 1
    >>> _, r = rotate(np.zeros((9, 9)), m, 90)
    >>> [int(v) for v in np.argwhere(r)[0]]
    [2, 4]
    """
    image = np.asarray(image, dtype=np.float32)
    rotated = ndimage.rotate(image, angle_deg, reshape=False, order=1, mode="reflect")
    label = ndimage.rotate(np.asarray(mask, dtype=np.uint8), angle_deg, reshape=False, order=0, mode="reflect")
    return rotated.astype(np.float32), label.astype(np.uint8)


def crop_zoom(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *,
              min_crop_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Crop a random square of side ``U[min_crop_fraction, 1] × size`` and zoom it back to the full size
    (image bilinear, label nearest neighbour)."""
    if not 0 < min_crop_fraction <= 1:
        raise NanosegError(f"min_crop_fraction must be in (0, 1], got {min_crop_fraction}")
    h, w = image.shape
    side = max(2, int(round(min(h, w) * rng.uniform(min_crop_fraction, 1.0))))
    sh, sw = min(side, h), min(side, w)
    y = int(rng.integers(0, h - sh + 1))
    x = int(rng.integers(0, w - sw + 1))
    ci, cm = image[y: y + sh, x: x + sw], mask[y: y + sh, x: x + sw]
    zoom = (h / sh, w / sw)
    zi = ndimage.zoom(np.asarray(ci, np.float32), zoom, order=1, mode="nearest", grid_mode=True)
    zm = ndimage.zoom(np.asarray(cm, np.uint8), zoom, order=0, mode="nearest", grid_mode=True)
    return zi[:h, :w].astype(np.float32), zm[:h, :w].astype(np.uint8)


def wrap_shift(image, mask, rng: np.random.Generator):
    """Roll image and label by the same random (dy, dx) with wrap-around (Horwath)."""
    dy, dx = int(rng.integers(image.shape[0])), int(rng.integers(image.shape[1]))
    return np.roll(image, (dy, dx), axis=(0, 1)), np.roll(mask, (dy, dx), axis=(0, 1))


def add_noise(image: np.ndarray, rng: np.random.Generator, *, rho: float | None = None,
              rho_max: float | None = None) -> np.ndarray:
    """Sytwu noise augmentation on a standardized image: ``(x + N(0, ρ²)) / √(1 + ρ²)``.

    Give a fixed ``rho`` or ``rho_max`` (then ρ ~ U[0, rho_max] for this call).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 256))
    >>> round(float(add_noise(x, rng, rho=1.0).std()), 1)
    1.0
    """
    if (rho is None) == (rho_max is None):
        raise NanosegError("add_noise needs exactly one of rho or rho_max")
    r = float(rho) if rho is not None else float(rng.uniform(0.0, float(rho_max)))
    if r < 0:
        raise NanosegError(f"noise level must be ≥ 0, got {r}")
    noisy = image + rng.normal(0.0, r, size=image.shape) if r > 0 else image
    return (noisy / np.sqrt(1.0 + r * r)).astype(np.float32)


def redose(counts: np.ndarray, rng: np.random.Generator, *, from_dose_e_per_A2: float,
           to_dose_e_per_A2: float) -> np.ndarray:
    """Thin raw counts (electrons per pixel) recorded at ``from_dose_e_per_A2`` to ``to_dose_e_per_A2``.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.poisson(100, size=(200, 200)).astype(np.float32)
    >>> y = redose(x, rng, from_dose_e_per_A2=400, to_dose_e_per_A2=100)
    >>> round(float(y.mean())), round(float(y.var()))
    (25, 25)
    """
    if not (from_dose_e_per_A2 > 0 and to_dose_e_per_A2 > 0):
        raise NanosegError(f"doses must be positive (got {from_dose_e_per_A2} → {to_dose_e_per_A2} e/Å²)")
    if to_dose_e_per_A2 > from_dose_e_per_A2 * (1 + 1e-9):
        raise NanosegError(f"re-dosing can only lower the dose ({from_dose_e_per_A2} → {to_dose_e_per_A2} e/Å²)")
    p = min(1.0, to_dose_e_per_A2 / from_dose_e_per_A2)
    counts = np.asarray(counts)
    if np.any(counts < 0):
        raise NanosegError("re-dosing needs raw counts (electrons per pixel, ≥ 0); this image has negative values",
                           hint="use a dataset stored in electrons per pixel, before preprocessing")
    if np.all(np.equal(np.mod(counts, 1), 0)):
        return rng.binomial(counts.astype(np.int64), p).astype(np.float32)
    noise = rng.normal(size=counts.shape) * np.sqrt(p * (1 - p) * counts)
    return (p * counts + noise).astype(np.float32)


def blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of the input image (labels unchanged)."""
    if sigma_px < 0:
        raise NanosegError(f"blur sigma must be ≥ 0, got {sigma_px}")
    return ndimage.gaussian_filter(np.asarray(image, np.float32), sigma_px) if sigma_px > 0 else image


class AugmentConfig(BaseModel):
    """Which augmentations to apply to each training sample (probabilities per sample)."""

    model_config = ConfigDict(extra="forbid")

    dihedral: bool = True
    rotate_probability: float = Field(0.0, ge=0, le=1)
    crop_zoom_probability: float = Field(0.0, ge=0, le=1)
    min_crop_fraction: float = Field(0.25, gt=0, le=1)
    wrap_shift: bool = False
    noise_rho: float | None = Field(None, ge=0)
    noise_rho_max: float | None = Field(None, ge=0)
    redose_probability: float = Field(0.0, ge=0, le=1)
    redose_range_e_per_A2: tuple[float, float] | None = None
    blur_probability: float = Field(0.0, ge=0, le=1)
    blur_sigma_px_max: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> AugmentConfig:
        if self.noise_rho is not None and self.noise_rho_max is not None:
            raise ValueError("give noise_rho (fixed) or noise_rho_max (uniform), not both")
        if self.redose_probability > 0 and self.redose_range_e_per_A2 is None:
            raise ValueError("redose_probability > 0 needs redose_range_e_per_A2: [low, high]")
        if self.redose_range_e_per_A2 is not None:
            lo, hi = self.redose_range_e_per_A2
            if not 0 < lo <= hi:
                raise ValueError("redose_range_e_per_A2 must be 0 < low ≤ high")
        return self

    @property
    def needs_raw_counts(self) -> bool:
        return self.redose_probability > 0

    @property
    def is_identity(self) -> bool:
        return not (self.dihedral or self.rotate_probability or self.crop_zoom_probability or self.wrap_shift
                    or self.noise_rho or self.noise_rho_max or self.redose_probability or
                    (self.blur_probability and self.blur_sigma_px_max))


def redose_sample(counts: np.ndarray, config: AugmentConfig, rng: np.random.Generator,
                  dose_e_per_A2: float | None) -> np.ndarray:
    """Maybe re-dose raw counts to a dose drawn log-uniformly from the config range (never above the
    recorded dose)."""
    if config.redose_probability <= 0 or dose_e_per_A2 is None or not np.isfinite(dose_e_per_A2):
        return counts
    if rng.random() >= config.redose_probability:
        return counts
    lo, hi = config.redose_range_e_per_A2
    hi = min(hi, dose_e_per_A2)
    lo = min(lo, hi)
    target = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return redose(counts, rng, from_dose_e_per_A2=dose_e_per_A2, to_dose_e_per_A2=target)


def augment_pair(image: np.ndarray, mask: np.ndarray, config: AugmentConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply the geometric, blur and noise augmentations of ``config`` to a preprocessed image and its mask.

    (Re-dosing acts on raw counts before preprocessing: see :func:`redose_sample`.)
    """
    if config.dihedral:
        image, mask = random_dihedral(image, mask, rng)
    if config.rotate_probability and rng.random() < config.rotate_probability:
        image, mask = rotate(image, mask, float(rng.uniform(0, 360)))
    if config.crop_zoom_probability and rng.random() < config.crop_zoom_probability:
        image, mask = crop_zoom(image, mask, rng, min_crop_fraction=config.min_crop_fraction)
    if config.wrap_shift:
        image, mask = wrap_shift(image, mask, rng)
    if config.blur_probability and config.blur_sigma_px_max > 0 and rng.random() < config.blur_probability:
        image = blur(image, float(rng.uniform(0, config.blur_sigma_px_max)))
    if config.noise_rho is not None or config.noise_rho_max is not None:
        image = add_noise(image, rng, rho=config.noise_rho, rho_max=config.noise_rho_max)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask, dtype=np.uint8)
