"""Camera model: dose → Poisson counts → detector MTF → gain noise, read noise, x-rays, uneven illumination.

The order matters. Electrons arrive as a Poisson process, so shot noise is white at the moment of
arrival; a scintillator camera then spreads each electron's light over neighbouring pixels, so the
**recorded shot noise is low-passed by the MTF**. A simulation with white Poisson noise (no MTF) looks
to a network trained on real data like a far lower dose (see SCIENCE.md, "Realism").

Steps of :func:`apply_detector` (all in electrons per pixel):

1. expected counts ``λ = I(x, y) · dose_e_per_A2 · pixel_size_A² · illumination(x, y)``
   (``I`` = image intensity, 1 in vacuum; ``illumination`` = 1 + a smooth random gradient);
2. ``N ~ Poisson(λ)``;
3. gain noise: each electron deposits a random signal (relative spread ``gain_noise_cv``), so the
   signal is ``N + 𝒩(0, cv² N)``;
4. the MTF: PSF = (1 − w) · Gaussian(σ_core) + w · Gaussian(σ_tail), applied by FFT (periodic);
5. pixel gain non-uniformity: every camera pixel's signal is multiplied by its own gain ``1 + g·𝒩(0, 1)``
   (``gain_nonuniformity`` g, white: one value per pixel, the same in every frame of a movie when a fixed
   ``gain_map`` is passed). A noise whose standard deviation grows in proportion to the signal, so it matters at
   many electrons per pixel (high dose, large pixels) and hardly at low dose;
6. read noise ``𝒩(0, read_noise_e²)``;
7. optional x-ray spikes: isolated bright pixels added after the MTF (direct hits on the sensor), each
   worth :data:`XRAY_SIGNAL_E` electrons — a fixed deposited energy, **independent of the beam dose**, so
   x-rays stand out more at low dose, as on a real camera.

Presets (:data:`DETECTORS`): ``scintillator`` (OneView-like: σ_core 0.85 px, 12 % tail with σ 4 px,
gain noise cv 1.0 — i.e. DQE(0) = 1/(1 + cv²) = 0.5 — read noise 0.3 e, pixel gain non-uniformity 5 %),
``counting`` (direct-electron counting: σ 0.3 px, no tail, no gain or read noise) and ``ideal`` (no MTF, no
extra noise; for tests).

The scintillator values are set by ``benchmarks/realism.py``, which runs networks trained only on real TEAM 0.5 /
OneView micrographs on matched simulations (docs/simulation.md, "Realism"):

- gain spread cv 1.0 (DQE(0) 0.5, at the top of the range usually quoted for scintillator-coupled cameras at
  300 kV): of 1.0, 1.2, 1.4 and 2.0 it gave the best mean real-data Dice;
- σ_core 0.85 px (SCIENCE.md quotes 0.7–0.8; of 0.7, 0.8 and 0.85, 0.85 scored best) and a 5 % white pixel-gain
  spread together: the real 160kX (0.042 nm/px) networks reject correlated noise at 2–4 px (it looks like
  their Au fringes) and accept a white component; at 75 e/px the 5 % gain spread supplies it, at 3–17 e/px it
  is negligible beside the shot noise. Networks of all ten sets rose (mean 0.75 → 0.91 with the defocus
  range of the presets). A fresh gain reference leaves far less (0.3 %, Sci. Rep. 15, 2025 on a scintillator
  CCD): 5 % stands for everything white and signal-proportional the real frames carry and the model lacks
  (an aged gain reference, scintillator burn-in, export quantization); it is set by measurement, not by a
  datasheet.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> img = apply_detector(np.ones((256, 256)), dose_e_per_A2=400, pixel_size_A=0.2, detector="counting", rng=rng)
>>> bool(abs(img.mean() / 16.0 - 1) < 0.01)       # 400 e/Å² × 0.04 Å² = 16 e/px
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from nanoseg.errors import NanosegError


@dataclass(frozen=True)
class DetectorModel:
    """Parameters of a camera (lengths in pixels of the output grid, noise in electrons)."""

    name: str = "scintillator"
    mtf_core_sigma_px: float = 0.7
    mtf_tail_fraction: float = 0.12
    mtf_tail_sigma_px: float = 4.0
    gain_noise_cv: float = 1.0
    read_noise_e: float = 0.3
    gain_nonuniformity: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


#: signal of one x-ray hit in electrons (uniform range). A stray x-ray deposits the same energy whatever the
#: beam dose; the range is that of the earlier dose-relative model (10–60 × the mean) at 423 e/Å² and
#: 0.02 nm/px (17 e/px), so the preprocessing benchmarks see the same spikes there.
XRAY_SIGNAL_E = (150.0, 1000.0)

#: the largest pixel-gain spread accepted: 30 % is beyond any gain-normalized camera
MAX_GAIN_NONUNIFORMITY = 0.3

DETECTORS: dict[str, DetectorModel] = {
    "scintillator": DetectorModel("scintillator", 0.85, 0.12, 4.0, 1.0, 0.3, 0.05),
    "counting": DetectorModel("counting", 0.3, 0.0, 1.0, 0.0, 0.0),
    "ideal": DetectorModel("ideal", 0.0, 0.0, 1.0, 0.0, 0.0),
}


def get_detector(detector: str | DetectorModel, **overrides) -> DetectorModel:
    """A preset by name (optionally with fields overridden) or a :class:`DetectorModel` as is."""
    if isinstance(detector, DetectorModel):
        model = detector
    elif detector in DETECTORS:
        model = DETECTORS[detector]
    else:
        raise NanosegError(f"unknown detector {detector!r}", hint=f"choose one of: {', '.join(DETECTORS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    model = replace(model, **overrides) if overrides else model
    for field in ("mtf_core_sigma_px", "mtf_tail_sigma_px", "gain_noise_cv", "read_noise_e", "gain_nonuniformity"):
        if getattr(model, field) < 0:
            raise NanosegError(f"detector {field} must be ≥ 0, got {getattr(model, field)}")
    if not 0 <= model.mtf_tail_fraction < 1:
        raise NanosegError(f"detector mtf_tail_fraction must be in [0, 1), got {model.mtf_tail_fraction}")
    if model.gain_nonuniformity > MAX_GAIN_NONUNIFORMITY:
        raise NanosegError(f"detector gain_nonuniformity is a relative spread of the pixel gains; "
                           f"{model.gain_nonuniformity} is beyond any camera",
                           hint=f"use a value between 0 and {MAX_GAIN_NONUNIFORMITY} (0.065 = 6.5 %)")
    return model


def pixel_gain_map(shape: tuple[int, int], model: DetectorModel | str, rng: np.random.Generator) -> np.ndarray | None:
    """One draw of the camera's per-pixel gains ``1 + g·𝒩(0, 1)`` (None when ``gain_nonuniformity`` is 0).

    Pass the same map to every frame of a movie: the pattern belongs to the camera, not to the exposure.

    >>> import numpy as np
    >>> m = pixel_gain_map((256, 256), get_detector("scintillator", gain_nonuniformity=0.05), np.random.default_rng(0))
    >>> round(float(m.std()), 2), pixel_gain_map((4, 4), "ideal", np.random.default_rng(0)) is None
    (0.05, True)
    """
    model = get_detector(model)
    if model.gain_nonuniformity <= 0:
        return None
    return 1.0 + model.gain_nonuniformity * rng.standard_normal(shape)


def mtf(shape: tuple[int, int], model: DetectorModel | str) -> np.ndarray:
    """The detector MTF on the FFT grid of ``shape`` (frequencies in cycles/px), 1 at k = 0.

    >>> m = mtf((64, 64), "scintillator")
    >>> float(m[0, 0]), float(m[0, 32]) < 0.1
    (1.0, True)
    """
    model = get_detector(model)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    k2 = kx ** 2 + ky ** 2
    core = np.exp(-2 * np.pi ** 2 * model.mtf_core_sigma_px ** 2 * k2)
    tail = np.exp(-2 * np.pi ** 2 * model.mtf_tail_sigma_px ** 2 * k2)
    return (1 - model.mtf_tail_fraction) * core + model.mtf_tail_fraction * tail


def illumination_field(shape: tuple[int, int], gradient: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative illumination: 1 + a random linear ramp and a radial fall-off.

    ``gradient`` is the peak-to-peak relative variation (0.2 = ±10 %).
    """
    if gradient <= 0:
        return np.ones(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    y = yy / max(shape[0] - 1, 1) - 0.5
    x = xx / max(shape[1] - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    cy, cx = rng.uniform(-0.5, 0.5, 2)
    ramp = np.cos(angle) * x + np.sin(angle) * y
    bowl = (x - cx) ** 2 + (y - cy) ** 2
    field = rng.uniform(0.3, 1.0) * ramp - rng.uniform(0.0, 1.0) * bowl
    span = field.max() - field.min()
    field = (field - field.mean()) / (span if span > 0 else 1.0)
    return 1.0 + gradient * field


def apply_detector(intensity: np.ndarray, *, dose_e_per_A2: float, pixel_size_A: float,
                   detector: str | DetectorModel = "scintillator", rng: np.random.Generator,
                   illumination_gradient: float = 0.0, xray_spikes_per_Mpx: float = 0.0,
                   oversampling: int = 1, gain_map: np.ndarray | None = None) -> np.ndarray:
    """Record an image intensity (1 = vacuum) with a camera; returns electrons per pixel (float32).

    With ``oversampling`` k > 1 the intensity is given on a grid k× finer than the camera pixels, and the
    camera records it as a real one does: electrons arrive (Poisson) on the fine grid, each spreads its
    signal with the scintillator PSF (σ in camera pixels, k× more fine cells), and every camera pixel
    integrates its k × k cells. The PSF then removes detail beyond the camera's Nyquist frequency *before*
    the pixels sample it; binning first (k = 1 on a binned intensity) folds the intensity's fine detail
    (|ψ|² carries frequencies up to twice the objective aperture) back into the image as fake texture.

    Parameters
    ----------
    intensity : 2-D image intensity on the camera pixel grid (``oversampling`` = 1) or on a grid
        ``oversampling`` × finer (its side a multiple of it).
    dose_e_per_A2 : electron dose in e/Å² (mean counts per pixel = dose × pixel_size_A²).
    pixel_size_A : camera pixel size at the specimen in Å.
    detector : a preset name from :data:`DETECTORS` or a :class:`DetectorModel`.
    rng : NumPy random generator.
    illumination_gradient : peak-to-peak relative illumination variation (0 = flat).
    xray_spikes_per_Mpx : mean number of x-ray hits per 10⁶ pixels.
    gain_map : the camera's per-pixel gains (:func:`pixel_gain_map`, camera-pixel shape); None draws one from
        ``rng`` when the model has a ``gain_nonuniformity``.
    """
    model = get_detector(detector)
    image = np.asarray(intensity, dtype=np.float64)
    if image.ndim != 2:
        raise NanosegError(f"intensity must be a 2-D image, got shape {image.shape}")
    k = int(oversampling)
    if k < 1 or k != oversampling or image.shape[0] % k or image.shape[1] % k:
        raise NanosegError(f"oversampling must be a whole number ≥ 1 that divides the image side, got "
                           f"{oversampling} for shape {image.shape}")
    if not np.isfinite(dose_e_per_A2) or dose_e_per_A2 <= 0:
        raise NanosegError(f"dose must be a positive number of e/Å², got {dose_e_per_A2}")
    if not np.isfinite(pixel_size_A) or pixel_size_A <= 0:
        raise NanosegError(f"pixel size must be positive, got {pixel_size_A} Å")
    if (image < 0).any() or not np.isfinite(image).all():
        raise NanosegError("image intensity must be finite and ≥ 0")
    expected = image * dose_e_per_A2 * (pixel_size_A / k) ** 2
    expected *= illumination_field(image.shape, illumination_gradient, rng)
    counts = rng.poisson(np.clip(expected, 0, None)).astype(np.float64)
    if model.gain_noise_cv > 0:
        # each electron deposits a Gamma-distributed signal (mean 1, relative spread cv): the sum over N
        # electrons is exactly Gamma(N / cv², cv²), variance N (1 + cv²) → DQE(0) = 1 / (1 + cv²)
        cv2 = model.gain_noise_cv ** 2
        hit = counts > 0
        counts[hit] = rng.gamma(counts[hit] / cv2, cv2)
    if model.mtf_core_sigma_px > 0 or model.mtf_tail_fraction > 0:
        fine = replace(model, mtf_core_sigma_px=model.mtf_core_sigma_px * k,
                       mtf_tail_sigma_px=model.mtf_tail_sigma_px * k)
        counts = np.fft.ifft2(np.fft.fft2(counts) * mtf(counts.shape, fine)).real
    if k > 1:  # each camera pixel integrates its k × k cells
        counts = counts.reshape(counts.shape[0] // k, k, counts.shape[1] // k, k).sum(axis=(1, 3))
    if gain_map is None:
        gain_map = pixel_gain_map(counts.shape, model, rng)
    elif np.shape(gain_map) != counts.shape:
        raise NanosegError(f"gain_map has shape {np.shape(gain_map)}, the camera image {counts.shape}")
    if gain_map is not None:
        counts *= gain_map
    if model.read_noise_e > 0:
        counts += rng.normal(0.0, model.read_noise_e, counts.shape)
    if xray_spikes_per_Mpx > 0:
        n_spikes = rng.poisson(xray_spikes_per_Mpx * counts.size / 1e6)
        rows = rng.integers(0, counts.shape[0], n_spikes)
        cols = rng.integers(0, counts.shape[1], n_spikes)
        counts[rows, cols] += rng.uniform(*XRAY_SIGNAL_E, n_spikes)
    return counts.astype(np.float32)
