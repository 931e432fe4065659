"""``--model auto``: pick the shipped model that fits an image's modality, pixel size and polarity.

nanoseg ships one model per imaging mode (:data:`nanoseg.models.checkpoint.SHIPPED_MODELS`): ``default``
(lattice-resolved HRTEM, trained at 0.015–0.05 nm/px), ``haadf_stem`` (bright particles on a darker
support) and ``bf_tem`` (bright-field TEM at particle-resolving magnification: dark particles). The rule:

1. **Metadata.** A file that says what it is decides: a simulated image's ``modality``; a signal titled
   HAADF, ADF, DF or dark field (Velox, DM multi-signal files) is HAADF-STEM.
2. **Pixel size** (the ``--pixel-size`` override, else the file's). Below :data:`LATTICE_RESOLVED_NM`
   (0.1 nm/px) lattice fringes are resolved: HRTEM (``default``). At or above it particles are resolved,
   not lattices: the polarity decides.
3. **No pixel size.** Lattice fringes in the power spectrum (:func:`lattice_fringe_score` above
   :data:`LATTICE_THRESHOLD`: a sharp peak above the smooth spectrum, as the 0.2–0.24 nm planes of fcc metals
   make at < 0.1 nm/px) without bright particles mean HRTEM; otherwise the polarity decides (bright
   particles with lattice fringes: atomic-resolution HAADF-STEM). Measured: the shipped HRTEM example 7.2,
   three 128² HRTEM simulations 2.4, 5.8 and 11.3 (so an uncalibrated HRTEM image with weak fringes goes to
   the polarity rule: give its pixel size), eight 128² bright-field simulations 1.5–2.2, the 33 real
   ardagen S/TEM JPEGs 1.3–25 (the three above 6 are bright-particle HAADF; the largest BF one is 4.2).
4. **Polarity** (:func:`polarity_score`): compact dark blobs on a brighter background = bright-field TEM
   (``bf_tem``); compact bright blobs on a darker background = HAADF-STEM (``haadf_stem``). The score is the
   mean over blob scales (σ = 3, 6, 12, 24 px on a ≤ 1024² view) of ``log(bright / dark)``, the 99.9th
   percentiles of the bright and dark responses of the scale-normalised Laplacian of Gaussian. On the 33
   real S/TEM images of ``../shared/real/ardagen`` (27 HAADF, 6 BF) it separates both groups (HAADF ≥ 0.23,
   BF ≤ −0.26); on 16 simulated 128² bright-field images it is ≤ 0.02 (threshold :data:`POLARITY_THRESHOLD`).

A model that the rule picks but that is not installed falls back to ``default`` with a note. The choice
and its reason go into the prediction's warnings (``model: bf_tem (auto: dark particles, 0.5 nm/px)``)
and its metadata (``model_choice``).

Example
-------
>>> import numpy as np
>>> from nanoseg.io import Micrograph
>>> rng = np.random.default_rng(0)
>>> yy, xx = np.mgrid[:128, :128]
>>> dark = 100 - 40 * sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 18) for y, x in rng.uniform(10, 118, (12, 2)))
>>> choice = pick_model(Micrograph(dark + rng.normal(0, 2, dark.shape), pixel_size_nm=0.5))
>>> choice.modality, choice.polarity
('bf_tem', 'dark')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

LATTICE_RESOLVED_NM = 0.1  # below this pixel size (nm/px) HRTEM resolves lattice fringes
POLARITY_THRESHOLD = 0.1  # polarity_score above: bright particles (HAADF); below: dark (BF)
LATTICE_THRESHOLD = 6.0  # lattice_fringe_score above: lattice fringes (HRTEM)
MODEL_FOR_MODALITY = {"hrtem": "default", "haadf_stem": "haadf_stem", "bf_tem": "bf_tem"}
_DARK_FIELD_WORDS = ("haadf", "adf", "maadf", "df", "darkfield")


@dataclass
class ModelChoice:
    """What :func:`pick_model` decided, and why."""

    name: str  # the shipped model used
    modality: str  # the modality detected: hrtem, haadf_stem, bf_tem
    reason: str  # e.g. "dark particles, 0.5 nm/px"
    pixel_size_nm: float | None = None
    polarity: str | None = None  # dark / bright
    features: dict[str, Any] = field(default_factory=dict)
    fallback: str | None = None  # why another model than the modality's was used

    @property
    def message(self) -> str:
        text = f"model: {self.name} (auto: {self.reason})"
        return text if self.fallback is None else f"{text}; {self.fallback}"

    def as_metadata(self) -> dict[str, Any]:
        return {**asdict(self), "rule": "nanoseg.infer.auto (docs/models.md, 'The bright-field TEM model and "
                                        "--model auto')"}


def _view(data: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """The image block-averaged to at most ``max_side`` pixels a side (float64)."""
    image = np.asarray(data, dtype=np.float64)
    f = max(1, int(np.ceil(max(image.shape) / max_side)))
    if f > 1:
        h, w = image.shape[0] // f * f, image.shape[1] // f * f
        image = image[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    return image


def polarity_score(data: np.ndarray) -> float:
    """> 0: compact bright features on a darker background (HAADF); < 0: dark ones (bright field). See module doc.

    >>> yy, xx = np.mgrid[:64, :64]
    >>> blob = np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / 20)
    >>> polarity_score(1 + blob) > 0 > polarity_score(1 - blob)
    True
    """
    image = _view(data)
    spread = np.percentile(image, 99) - np.percentile(image, 1)
    if not np.isfinite(spread) or spread <= 0:
        return 0.0
    image = (image - np.median(image)) / spread
    scores = []
    for sigma in (3.0, 6.0, 12.0, 24.0):
        if min(image.shape) < 4 * sigma:
            continue
        response = -sigma ** 2 * ndimage.gaussian_laplace(image, sigma)  # > 0 at bright blobs
        bright, dark = np.percentile(response, 99.9), -np.percentile(response, 0.1)
        if bright > 0 and dark > 0:
            scores.append(np.log(bright / dark))
    return float(np.mean(scores)) if scores else 0.0


def lattice_fringe_score(data: np.ndarray, pixel_size_nm: float | None = None, tile_px: int = 128) -> float:
    """How far the strongest sharp peak of the power spectrum stands out: (max − median) / (99.5th
    percentile − median) of the spectrum over its smooth trend, in the band searched.

    Welch average of Hann-windowed ``tile_px`` tiles of the central ≤ 1024² region, divided by its
    Gaussian-smoothed version (in log); the band is 0.06–0.48 cycles/px, or where lattice spacings of
    0.12–0.40 nm fall when ``pixel_size_nm`` is known (0 when they are beyond Nyquist); the JPEG block
    frequencies (multiples of 1/8 cycle/px in both axes) are left out. Noise alone gives ≈ 1.5–2.
    """
    image = np.asarray(data, dtype=np.float64)
    h, w = image.shape
    side = min(1024, h, w)
    if side < 32:
        return 0.0
    tile = min(tile_px, side)
    y0, x0 = (h - side) // 2, (w - side) // 2
    region = image[y0:y0 + side, x0:x0 + side]
    window = np.outer(np.hanning(tile), np.hanning(tile))
    power = np.zeros((tile, tile))
    n = 0
    for y in range(0, side - tile + 1, tile // 2):
        for x in range(0, side - tile + 1, tile // 2):
            patch = region[y:y + tile, x:x + tile]
            power += np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2
            n += 1
    power = np.fft.fftshift(power / max(n, 1))
    smooth = np.exp(ndimage.gaussian_filter(np.log(power + 1e-12), tile / 32))
    ratio = power / smooth
    q = np.hypot(*np.meshgrid(np.fft.fftshift(np.fft.fftfreq(tile)), np.fft.fftshift(np.fft.fftfreq(tile))))
    lo, hi = 0.06, 0.48
    if pixel_size_nm is not None:
        lo, hi = max(lo, pixel_size_nm / 0.40), min(hi, pixel_size_nm / 0.12)
        if lo >= hi:
            return 0.0
    band = (q >= lo) & (q <= hi)
    # JPEG's 8 × 8 blocks put peaks at multiples of 1/8 cycle/px: not lattice fringes
    f = np.fft.fftshift(np.fft.fftfreq(tile))
    block = np.abs(f * 8 - np.round(f * 8)) * tile / 8 <= 1.0
    band &= ~(block[:, None] & block[None, :])
    if not band.any():
        return 0.0
    values = ratio[band]
    median, high = np.median(values), np.percentile(values, 99.5)
    return float((values.max() - median) / max(high - median, 1e-12))


def _metadata_modality(metadata: dict) -> tuple[str | None, str | None]:
    """(modality, why) from what a file or simulation says about itself, else (None, None)."""
    given = str(metadata.get("modality", "") or "").lower()
    if given in MODEL_FOR_MODALITY:
        return given, f"the file's modality {given}"
    title = str(metadata.get("title", "") or "").lower()
    words = title.replace("-", " ").replace("_", " ").split()
    if any(w in words for w in _DARK_FIELD_WORDS) or "haadf" in title or "dark field" in title:
        return "haadf_stem", f"a dark-field STEM signal ({metadata.get('title')!s})"
    return None, None


def pick_model(micrograph, *, pixel_size_nm: float | None = None, installed: list[str] | None = None) -> ModelChoice:
    """Choose among the shipped models for one micrograph (see the module doc); never raises on odd images.

    ``pixel_size_nm`` overrides the file's; ``installed`` (names) defaults to the shipped models found.
    """
    from nanoseg.models.checkpoint import installed_models

    data = micrograph.data
    px = pixel_size_nm if pixel_size_nm is not None else micrograph.pixel_size_nm
    polarity_value = polarity_score(data)
    polarity = "bright" if polarity_value > POLARITY_THRESHOLD else "dark"
    features: dict[str, Any] = {"polarity_score": round(polarity_value, 3),
                                "polarity_threshold": POLARITY_THRESHOLD}
    scale = f"{px:.3g} nm/px" if px is not None else "no pixel size"
    modality, why = _metadata_modality(getattr(micrograph, "metadata", {}) or {})
    if modality is not None:
        reason = f"{why}, {scale}"
    elif px is not None and px < LATTICE_RESOLVED_NM:
        modality, reason = "hrtem", f"lattice-resolved {scale} (< {LATTICE_RESOLVED_NM} nm/px)"
    else:
        lattice = lattice_fringe_score(data, px) if px is None else 0.0
        features.update(lattice_fringe_score=round(lattice, 2), lattice_threshold=LATTICE_THRESHOLD)
        if px is None and lattice > LATTICE_THRESHOLD and polarity == "dark":
            modality, reason = "hrtem", f"lattice fringes in the power spectrum (peak score {lattice:.1f}), {scale}"
        else:
            modality = "haadf_stem" if polarity == "bright" else "bf_tem"
            certainty = "" if abs(polarity_value - POLARITY_THRESHOLD) > 0.1 else " (polarity uncertain)"
            reason = f"{polarity} particles{certainty}, {scale}"
    name = MODEL_FOR_MODALITY[modality]
    have = installed if installed is not None else installed_models()
    fallback = None
    if name not in have:
        fallback = f"the {name} model is not installed: using the default model instead"
        name = "default"
    return ModelChoice(name=name, modality=modality, reason=reason, pixel_size_nm=px,
                       polarity=polarity if modality != "hrtem" else None, features=features, fallback=fallback)


__all__ = ["LATTICE_RESOLVED_NM", "ModelChoice", "lattice_fringe_score", "pick_model", "polarity_score"]
