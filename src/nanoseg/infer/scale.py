"""Unknown scale: estimate the particle diameter in pixels from the image, and the pixel size it implies.

Like Cellpose's size model, which estimates the cell diameter of an image and rescales the image so that
cells have the diameter the network was trained on, :func:`estimate_particle_diameter_px` finds the
characteristic blob size of an image, and :func:`assumed_pixel_size_nm` chooses the nm/px that puts that
diameter at the model's typical training particle size (the geometric mean of the card's
``particle_diameter_range_nm``). The assumption behind every number: *the particles in this image have the
typical diameter of the training set*. Sizes in nm computed from it are only as right as that assumption;
``pixel_size_nm=`` (the real calibration) or ``particle_diameter_px=`` (a measured diameter) replace it.

The blob size is the scale-space maximum of the scale-normalized determinant of the Hessian (Lindeberg's
blob detector; it answers to compact blobs but hardly to edges and fringes, unlike the Laplacian):

1. the image is binned (integer factor) to at most ``max_side_px`` per side and robustly normalized;
2. the particle polarity (dark on bright: bright-field TEM/HRTEM; bright on dark: HAADF-STEM) is the
   minority class of an Otsu threshold, unless given;
3. for σ on a ¼-octave ladder, ``σ⁴ det H_σ`` (Hessian of the image smoothed at σ, computed on a
   2ⁿ-binned pyramid level for large σ) where the Hessian's trace has the particles' sign and its principal curvatures differ by less
   than :data:`EDGE_RATIO` (edges and fringes do not count, the edge test of Lowe's SIFT), else 0;
4. blobs are the local maxima in (σ, y, x) that stand out of the noise (above twice the strongest response
   of white noise of the image's pixel-noise level at their scale, and above 5 % of the strongest blob), less
   those 0.6–1.2 radii from the centre of a stronger, larger blob (its rim: the pixel staircase of a sharp
   edge; blobs well inside a larger one, such as particles on a support grain, stay); the estimate is the response-weighted median σ
   times :data:`DIAMETER_PER_SIGMA` (2√2: for a uniform disc of radius r the response peaks at σ = r/√2).

Example
-------
>>> yy, xx = np.mgrid[:128, :128]
>>> image = np.ones((128, 128))
>>> for cy, cx in ((32, 32), (32, 96), (96, 32), (96, 96)):
...     image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 10 ** 2] = 0.5          # dark discs, diameter 20 px
>>> estimate = estimate_particle_diameter_px(image)
>>> estimate.polarity, 16 < estimate.diameter_px < 24
('dark', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nanoseg.errors import NanosegError

DIAMETER_PER_SIGMA = 2 * math.sqrt(2)  # uniform disc of radius r: the normalized blob response peaks at σ = r/√2
SCALES_PER_OCTAVE = 4
MIN_DIAMETER_PX = 3.0  # smaller "particles" are indistinguishable from noise and fringes
MAX_GRID_PIXELS = 4096 * 4096  # an assumed pixel size never resamples a frame to more model pixels than this
NOISE_FACTOR = 2.0  # a blob's response must exceed this many times the strongest response of pure noise
RELATIVE_FLOOR = 0.05  # ... and this fraction of the strongest blob's
RIM_INNER = 0.6  # a weaker, smaller blob between 0.6 and 1.2 radii of a stronger one's centre is its rim
EDGE_RATIO = 4.0  # principal curvatures more unequal than this (an edge, a fringe) are no blob (Lowe's SIFT test)


@dataclass(frozen=True)
class DiameterEstimate:
    """What :func:`estimate_particle_diameter_px` found.

    Attributes
    ----------
    diameter_px : typical particle diameter in pixels of the input (None: no blob stood out of the noise).
    polarity : "dark" (particles darker than the background) or "bright".
    n_blobs : blobs that went into the estimate.
    binning : the integer factor the image was binned by before the analysis.
    spread : the 25th and 75th percentiles of the blob diameters (px), a measure of the size spread.
    """

    diameter_px: float | None
    polarity: str
    n_blobs: int
    binning: int
    spread: tuple[float, float] | None = None


def _binned(array: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return array
    h, w = (array.shape[0] // factor) * factor, (array.shape[1] // factor) * factor
    return array[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def _polarity(image: np.ndarray) -> str:
    """Particles are the minority class of an Otsu threshold of the lightly smoothed image."""
    from scipy.ndimage import gaussian_filter
    from skimage.filters import threshold_otsu

    smooth = gaussian_filter(image, 1.0)
    above = float((smooth > threshold_otsu(smooth)).mean())
    return "bright" if above < 0.5 else "dark"


def _blob_response(image: np.ndarray, sigma_px: float, sign: float) -> np.ndarray:
    """``σ⁴ det H_σ`` on the image's grid where ``sign · trace H_σ > 0`` (blobs of the particle polarity), else 0.

    Large σ run on a 2ⁿ-binned copy (σ/2ⁿ ≥ 2 px there) and are interpolated back; the normalized
    response is the same on every level."""
    from scipy.ndimage import gaussian_filter, zoom

    level = max(0, int(math.floor(math.log2(sigma_px / 2.0)))) if sigma_px > 4 else 0
    factor = 2**level
    small = _binned(image, factor)
    s = sigma_px / factor
    hxx = gaussian_filter(small, s, order=(2, 0))
    hyy = gaussian_filter(small, s, order=(0, 2))
    hxy = gaussian_filter(small, s, order=(1, 1))
    det, trace = hxx * hyy - hxy**2, hxx + hyy
    response = s**4 * det
    # keep blobs of the particles' polarity; reject edges (one principal curvature much smaller than the other)
    response[(sign * trace <= 0) | (trace**2 * EDGE_RATIO >= (EDGE_RATIO + 1) ** 2 * det)] = 0.0
    if factor > 1:
        response = zoom(response, factor, order=1, grid_mode=True, mode="nearest")
        out = np.zeros(image.shape)
        h, w = min(response.shape[0], image.shape[0]), min(response.shape[1], image.shape[1])
        out[:h, :w] = response[:h, :w]
        response = out
    return np.clip(response, 0.0, None)


def _noise_levels(image: np.ndarray, sigmas: np.ndarray, sign: float) -> np.ndarray:
    """Per scale, the largest blob response of white noise as strong as the image's pixel noise.

    The pixel noise σ is estimated robustly from differences of neighbouring pixels (MAD / 0.6745 / √2);
    the responses of a seeded noise field of that σ (at most 192² px) give the level a blob must beat."""
    diffs = np.concatenate([np.diff(image, axis=0).ravel(), np.diff(image, axis=1).ravel()])
    noise_sigma = float(np.median(np.abs(diffs - np.median(diffs))) / 0.6745 / math.sqrt(2))
    if noise_sigma == 0:  # quantized, noise-free regions: the grey-level step stands for the noise
        steps = np.abs(diffs[diffs != 0])
        noise_sigma = float(steps.min()) / math.sqrt(12) if steps.size else 0.0
    shape = (min(image.shape[0], 192), min(image.shape[1], 192))
    field = np.random.default_rng(0).normal(0.0, noise_sigma, shape)
    return np.array([float(_blob_response(field, float(s), sign).max()) for s in sigmas])


def _max3(stack: np.ndarray) -> np.ndarray:
    """The maximum over each element's 3×3×3 neighbourhood (edges: over the neighbours that exist), by shifted
    views; equal to ``scipy.ndimage.maximum_filter(stack, size=3, mode="nearest")``, without its temporaries."""
    out = stack.copy()
    for axis in range(stack.ndim):
        shifted = np.moveaxis(out, axis, 0)
        result = shifted.copy()
        np.maximum(result[1:], shifted[:-1], out=result[1:])
        np.maximum(result[:-1], shifted[1:], out=result[:-1])
        out = np.moveaxis(result, 0, axis)
    return out


def _suppress_inside_stronger(rows: np.ndarray, cols: np.ndarray, radii: np.ndarray, weights: np.ndarray
                              ) -> np.ndarray:
    """Which blobs to keep: a blob 0.6–1.2 radii from the centre of a stronger, larger blob is its rim (the
    pixel staircase of a sharp edge) and is dropped; one well inside stays. Boolean mask."""
    order = np.argsort(-weights)
    keep = np.zeros(weights.size, dtype=bool)
    kept_y, kept_x, kept_r = (np.empty(weights.size) for _ in range(3))
    n_kept = 0
    for i in order:
        y, x, r = kept_y[:n_kept], kept_x[:n_kept], kept_r[:n_kept]
        distance2 = (y - rows[i]) ** 2 + (x - cols[i]) ** 2
        inside = (r > radii[i]) & (distance2 < (1.2 * r) ** 2) & (distance2 > (RIM_INNER * r) ** 2)
        if not inside.any():
            keep[i] = True
            kept_y[n_kept], kept_x[n_kept], kept_r[n_kept] = rows[i], cols[i], radii[i]
            n_kept += 1
    return keep


def estimate_particle_diameter_px(image, *, polarity: str = "auto", min_diameter_px: float = MIN_DIAMETER_PX,
                                  max_diameter_px: float | None = None, max_side_px: int = 1024,
                                  source=None) -> DiameterEstimate:
    """The typical particle diameter of ``image`` in its own pixels (see the module docstring).

    Parameters
    ----------
    image : 2-D array (any intensity units; 8-bit is fine).
    polarity : "auto", "dark" or "bright" particles.
    min_diameter_px, max_diameter_px : the diameters searched (default up to a quarter of the shorter side).
    max_side_px : the image is binned by an integer factor to at most this many pixels per side first.
    source : the file, for error messages.

    Raises :class:`~nanoseg.errors.NanosegError` for a constant image (no particles can be seen); a noisy
    image where no blob stands out gives ``diameter_px=None``.
    """
    from nanoseg.preprocess import as_image, choice

    choice(polarity, "polarity", ("auto", "dark", "bright"), step="particle size estimate")
    array = as_image(image, step="particle size estimate")
    binning = max(1, math.ceil(max(array.shape) / int(max_side_px)))
    work = _binned(array, binning)
    low, mid, high = np.percentile(work, [1, 50, 99])
    if not high > low:
        raise NanosegError("the image is (nearly) constant, so no particle size can be estimated from it",
                           path=source, hint="pass pixel_size_nm=NM, or check the file")
    work = (work - mid) / (high - low)
    if polarity == "auto":
        polarity = _polarity(work)
    sign = 1.0 if polarity == "dark" else -1.0
    d_min = max(float(min_diameter_px), MIN_DIAMETER_PX * binning) / binning
    d_max = (float(max_diameter_px) / binning if max_diameter_px is not None else min(work.shape) / 4.0)
    if d_max <= d_min:
        raise NanosegError(f"the image ({array.shape[0]}×{array.shape[1]} px) is too small to estimate a particle "
                           "size", path=source, hint="pass pixel_size_nm=NM or particle_diameter_px=D")
    n = max(3, int(math.ceil(SCALES_PER_OCTAVE * math.log2(d_max / d_min))) + 1)
    # one scale below and one above the searched range, so that extrema at its ends are real extrema
    sigmas = d_min / DIAMETER_PER_SIGMA * 2.0 ** (np.arange(-1, n + 1) / SCALES_PER_OCTAVE)
    stack = np.stack([_blob_response(work, float(s), sign) for s in sigmas]).astype(np.float32)
    peaks = (stack == _max3(stack)) & (stack > 0)
    peaks[0] = peaks[-1] = False
    if not peaks.any():
        return DiameterEstimate(None, polarity, 0, binning)
    levels = _noise_levels(work, sigmas, sign)[:, None, None]
    floor = RELATIVE_FLOOR * float(stack[peaks].max())
    strong = peaks & (stack > NOISE_FACTOR * levels) & (stack > floor)
    scale_index, rows, cols = np.nonzero(strong)
    if scale_index.size == 0:
        return DiameterEstimate(None, polarity, 0, binning)
    weights = stack[strong]
    keep = _suppress_inside_stronger(rows, cols, sigmas[scale_index] * DIAMETER_PER_SIGMA / 2, weights)
    scale_index, rows, cols, weights = scale_index[keep], rows[keep], cols[keep], weights[keep]
    # refine each blob's scale between the ladder's rungs: a parabola through its 3 responses in log σ
    below, at, above = (stack[scale_index + k, rows, cols] for k in (-1, 0, 1))
    curvature = below - 2 * at + above
    offset = np.where(curvature < 0, 0.5 * (below - above) / np.where(curvature < 0, curvature, -1.0), 0.0)
    log_sigma = np.log2(sigmas[scale_index]) + np.clip(offset, -0.5, 0.5) / SCALES_PER_OCTAVE
    diameters = 2.0**log_sigma * DIAMETER_PER_SIGMA * binning
    order = np.argsort(diameters)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    median = float(diameters[order][np.searchsorted(cumulative, 0.5)])
    q25, q75 = (float(diameters[order][np.searchsorted(cumulative, q)]) for q in (0.25, 0.75))
    return DiameterEstimate(median, polarity, int(scale_index.size), binning, (q25, q75))


def typical_diameter_nm(card) -> float:
    """The model's typical training particle diameter: the geometric mean of ``particle_diameter_range_nm``."""
    rng = getattr(card, "particle_diameter_range_nm", None)
    if rng is None:
        raise NanosegError(
            "the model card records no particle_diameter_range_nm, so a pixel size cannot be chosen from the "
            "particle size", hint="pass pixel_size_nm=NM, or assume_model_pixel_size=True")
    low, high = float(rng[0]), float(rng[1])
    return math.sqrt(low * high)


def assumed_pixel_size_nm(diameter_px: float, card, *, image_shape: tuple[int, int],
                          max_grid_pixels: int = MAX_GRID_PIXELS) -> tuple[float, list[str]]:
    """The nm/px that puts a particle of ``diameter_px`` at the card's typical training diameter, and notes.

    ``px = typical_diameter_nm(card) / diameter_px``; when the frame resampled to the model's pixel size would
    exceed ``max_grid_pixels`` (tiny particles in a large frame), the pixel size is capped so that it does not,
    and a note says so (the particles then stay smaller than typical in model pixels).
    """
    model_px = getattr(card, "pixel_size_nm", None)
    if model_px is None:
        raise NanosegError("the model has no training pixel size, so no pixel size needs to be assumed")
    px = typical_diameter_nm(card) / float(diameter_px)
    notes: list[str] = []
    cap = float(model_px) * math.sqrt(max_grid_pixels / float(image_shape[0] * image_shape[1]))
    if px > cap:
        notes.append(f"the assumed pixel size was capped at {cap:.4g} nm/px (from {px:.4g}) so that the frame "
                     f"resampled to the model's {float(model_px):g} nm/px stays within {max_grid_pixels:,} pixels")
        px = cap
    return px, notes


def resolve_pixel_size(micrograph, card, *, pixel_size_nm: float | None = None,
                       particle_diameter_px: float | None = None, assume_model_pixel_size: bool = False
                       ) -> tuple[float | None, str, list[str]]:
    """The pixel size ``predict`` runs with, where it came from, and warnings: ``(px, source, notes)``.

    ``source`` is "option" (``pixel_size_nm``), "file" (the micrograph's calibration), "particle_diameter_px"
    (assumed from a given particle diameter), "estimated from the particle size" (assumed from
    :func:`estimate_particle_diameter_px`), "model (assumed)" (``assume_model_pixel_size``: ``px`` None) or
    "unknown" (``px`` None: an uncalibrated model, or a card without ``particle_diameter_range_nm``, which
    :func:`nanoseg.infer.network_input.input_pixel_size` then refuses with the fix).
    """
    known = pixel_size_nm if pixel_size_nm is not None else micrograph.pixel_size_nm
    if known is not None:
        source = "option" if pixel_size_nm is not None else "file"
        notes = [] if particle_diameter_px is None else [
            f"particle_diameter_px={particle_diameter_px:g} ignored: the pixel size is known ({float(known):g} nm/px)"]
        return known, source, notes
    model_px = getattr(card, "pixel_size_nm", None)
    if assume_model_pixel_size and model_px is not None:
        return None, "model (assumed)", []
    if model_px is None or (particle_diameter_px is None
                            and getattr(card, "particle_diameter_range_nm", None) is None):
        return None, "unknown", []
    name = micrograph.source or "the image"
    fix = "pass pixel_size_nm=NM or particle_diameter_px=D"
    if particle_diameter_px is not None:
        diameter = float(particle_diameter_px)
        if not np.isfinite(diameter) or diameter <= 0:
            raise NanosegError(f"particle_diameter_px={particle_diameter_px} must be a positive number of pixels")
        source, how = "particle_diameter_px", f"the given particle diameter of {diameter:g} px"
    else:
        estimate = estimate_particle_diameter_px(micrograph.data, source=micrograph.source)
        if estimate.diameter_px is None:
            raise NanosegError(
                "the image has no pixel size, and no particles stand out of the noise to estimate one from "
                "their size", path=micrograph.source,
                hint="pass pixel_size_nm=NM, particle_diameter_px=D (the typical particle diameter in pixels), "
                     "or assume_model_pixel_size=True")
        diameter = estimate.diameter_px
        source = "estimated from the particle size"
        how = f"an estimated particle diameter of {diameter:.3g} px ({estimate.polarity} particles, {estimate.n_blobs} blobs)"
    px, notes = assumed_pixel_size_nm(diameter, card, image_shape=micrograph.shape)
    typical = typical_diameter_nm(card)
    notes.insert(0, f"no pixel size in {name}: assumed {px:.4g} nm/px from {how}, i.e. that the particles have the "
                    f"model's typical training diameter of {typical:.3g} nm; sizes in nm rest on this assumption "
                    f"({fix})")
    return px, source, notes
