"""Spatial-frequency tools: exact Fourier band filters, power spectra, lattice-spacing peaks, Bragg filtering.

Frequencies are in **cycles per pixel** (``numpy.fft.fftfreq`` convention, Nyquist = 0.5 along an axis,
up to 0.707 on the diagonal); with a pixel size the matching real-space period is ``pixel_size_nm / k``.

Every filter multiplies the image's discrete Fourier transform by a radial gain ``g(|k|)`` and transforms
back (the image is treated as periodic, so no padding mixes frequencies in). The removed band is removed
**exactly**: ``g = 0`` on it. An optional raised-cosine edge (``edge_cycles_per_px``) tapers the gain on the
*kept* side of each cutoff only, so ringing can be reduced without letting any of the removed band through.

Example
-------
>>> import numpy as np
>>> yy, xx = np.mgrid[:64, :64]
>>> image = np.cos(2 * np.pi * 0.25 * xx) + np.cos(2 * np.pi * 0.0625 * xx)
>>> low = lowpass(image, cutoff_cycles_per_px=0.125)
>>> bool(np.allclose(low, np.cos(2 * np.pi * 0.0625 * xx), atol=1e-6))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from nanoseg.errors import NanosegError

MAX_FREQUENCY = float(np.sqrt(0.5))  # |k| at the corner of the Fourier grid, cycles/px


def _image(image, name: str = "image") -> np.ndarray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2 or min(array.shape) < 4:
        raise NanosegError(f"{name}: expected a 2-D image of at least 4×4 pixels, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise NanosegError(f"{name}: image contains NaN/inf pixels", hint="remove or replace the bad pixels first")
    return array


def _frequency(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise NanosegError(f"{name} must be a number of cycles/px, got {value!r}") from None
    if not np.isfinite(value) or value < 0 or value > MAX_FREQUENCY:
        raise NanosegError(f"{name} = {value} cycles/px is outside 0…{MAX_FREQUENCY:.3f}",
                           hint="frequencies are in cycles per pixel; Nyquist is 0.5")
    return value


def radial_frequency(shape: tuple[int, int]) -> np.ndarray:
    """|k| in cycles/px of every element of an unshifted 2-D FFT of an image of ``shape``.

    >>> float(radial_frequency((4, 4))[0, 2]), round(float(radial_frequency((4, 4))[2, 2]), 4)
    (0.5, 0.7071)
    """
    ky = np.fft.fftfreq(int(shape[0]))[:, None]
    kx = np.fft.fftfreq(int(shape[1]))[None, :]
    return np.sqrt(ky**2 + kx**2)


def _taper(distance: np.ndarray, width: float) -> np.ndarray:
    """0 at distance 0 rising as a raised cosine to 1 at ``width`` (1 everywhere when width is 0)."""
    if width <= 0:
        return np.ones_like(distance)
    t = np.clip(distance / width, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


def band_gain(shape: tuple[int, int], *, remove_from_cycles_per_px: float, remove_to_cycles_per_px: float,
              edge_cycles_per_px: float = 0.0) -> np.ndarray:
    """Radial gain that is exactly 0 for ``from ≤ |k| ≤ to`` and tapers to 1 outside within ``edge``.

    >>> g = band_gain((8, 8), remove_from_cycles_per_px=0.2, remove_to_cycles_per_px=1.0)
    >>> float(g[0, 0]), float(g[0, 4])
    (1.0, 0.0)
    """
    low = _frequency(remove_from_cycles_per_px, "remove_from_cycles_per_px")
    high = float(remove_to_cycles_per_px)
    if high < low:
        raise NanosegError(f"empty band: removes from {low} to {high} cycles/px", hint="the band needs from ≤ to")
    k = radial_frequency(shape)
    inside = (k >= low) & (k <= high)
    distance = np.where(k < low, low - k, k - high)
    gain = _taper(np.maximum(distance, 0.0), float(edge_cycles_per_px))
    # the DC term is never tapered away by a band that starts above 0
    gain[inside] = 0.0
    return gain


def apply_gain(image, gain: np.ndarray) -> np.ndarray:
    """Multiply the image's DFT by ``gain`` (same shape, unshifted) and return the real result (float32)."""
    array = _image(image)
    if gain.shape != array.shape:
        raise NanosegError(f"filter gain {gain.shape} does not match the image {array.shape}")
    return np.fft.ifft2(np.fft.fft2(array) * gain).real.astype(np.float32)


def lowpass(image, *, cutoff_cycles_per_px: float, edge_cycles_per_px: float = 0.0) -> np.ndarray:
    """Remove every spatial frequency ``|k| ≥ cutoff`` (periods shorter than ``1 / cutoff`` px).

    Parameters
    ----------
    image : 2-D array.
    cutoff_cycles_per_px : first removed frequency, cycles/px.
    edge_cycles_per_px : width of a raised-cosine taper *below* the cutoff (0 = ideal filter).

    >>> out = lowpass(np.random.default_rng(0).normal(size=(32, 32)), cutoff_cycles_per_px=0.1)
    >>> bool(np.abs(np.fft.fft2(out))[radial_frequency((32, 32)) >= 0.1].max() < 1e-4)
    True
    """
    image = _image(image)
    cutoff = _frequency(cutoff_cycles_per_px, "cutoff_cycles_per_px")
    gain = band_gain(image.shape, remove_from_cycles_per_px=cutoff, remove_to_cycles_per_px=1.0,
                     edge_cycles_per_px=edge_cycles_per_px)
    return apply_gain(image, gain)


def highpass(image, *, cutoff_cycles_per_px: float, edge_cycles_per_px: float = 0.0) -> np.ndarray:
    """Remove every spatial frequency ``|k| < cutoff`` (including the mean): keeps fine detail only.

    >>> out = highpass(np.ones((8, 8)) * 3, cutoff_cycles_per_px=0.1)
    >>> bool(np.allclose(out, 0))
    True
    """
    image = _image(image)
    cutoff = _frequency(cutoff_cycles_per_px, "cutoff_cycles_per_px")
    if cutoff == 0:
        return image.astype(np.float32)
    # remove [0, cutoff): the closed band [0, cutoff - tiny] on the discrete grid
    k = radial_frequency(image.shape)
    gain = _taper(np.maximum(k - cutoff, 0.0), float(edge_cycles_per_px))
    gain[k < cutoff] = 0.0
    return apply_gain(image, gain)


def bandstop(image, *, low_cycles_per_px: float, high_cycles_per_px: float,
             edge_cycles_per_px: float = 0.0) -> np.ndarray:
    """Remove the annulus ``low ≤ |k| ≤ high`` (e.g. one lattice spacing), keep everything else.

    >>> yy, xx = np.mgrid[:32, :32]
    >>> out = bandstop(np.cos(2 * np.pi * 0.25 * xx), low_cycles_per_px=0.2, high_cycles_per_px=0.3)
    >>> bool(np.allclose(out, 0, atol=1e-6))
    True
    """
    image = _image(image)
    gain = band_gain(image.shape, remove_from_cycles_per_px=low_cycles_per_px,
                     remove_to_cycles_per_px=_frequency(high_cycles_per_px, "high_cycles_per_px"),
                     edge_cycles_per_px=edge_cycles_per_px)
    return apply_gain(image, gain)


# --------------------------------------------------------------------------------------------- spectra
def power_spectrum(image, *, window: bool = True) -> np.ndarray:
    """Unshifted 2-D power spectrum ``|FFT|²`` of the mean-subtracted image.

    ``window=True`` multiplies by a 2-D Hann window first, which suppresses the bright cross that the
    non-periodic image edges put along the axes (use it for finding peaks, not for filtering).
    """
    array = _image(image)
    array = array - array.mean()
    if window:
        array = array * np.outer(np.hanning(array.shape[0]), np.hanning(array.shape[1]))
    return np.abs(np.fft.fft2(array)) ** 2


def radial_profile(image, *, window: bool = True, bin_cycles_per_px: float | None = None) -> pd.DataFrame:
    """Radially averaged power spectrum: one row per |k| ring (``frequency_cycles_per_px``, ``power``, ``n``).

    Rings are one Fourier pixel wide (``1 / min(H, W)`` cycles/px) unless ``bin_cycles_per_px`` is given;
    rings beyond Nyquist along the shorter axis (0.5) are dropped, since they are only partly sampled.
    Several images of one shape may be averaged by passing a 3-D stack.
    """
    stack = np.asarray(image, dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise NanosegError(f"radial_profile: expected an image or a stack of images, got shape {stack.shape}")
    power = np.mean([power_spectrum(frame, window=window) for frame in stack], axis=0)
    k = radial_frequency(power.shape)
    width = float(bin_cycles_per_px) if bin_cycles_per_px else 1.0 / min(power.shape)
    index = np.floor(k / width + 0.5).astype(int)
    n_bins = int(np.floor(0.5 / width + 0.5)) + 1
    keep = index < n_bins
    total = np.bincount(index[keep], weights=power[keep], minlength=n_bins)
    count = np.bincount(index[keep], minlength=n_bins)
    freq = np.arange(n_bins) * width
    ok = count > 0
    return pd.DataFrame({"frequency_cycles_per_px": freq[ok], "power": total[ok] / count[ok], "n": count[ok]})


def find_lattice_peaks(image, *, pixel_size_nm: float | None = None, min_frequency_cycles_per_px: float = 0.05,
                       max_peaks: int = 4, min_ratio: float = 1.5, min_snr: float = 4.0,
                       background_window_cycles_per_px: float = 0.15, dynamic_range: float = 1e-9,
                       max_spacing_nm: float = 0.6, profile: pd.DataFrame | None = None) -> pd.DataFrame:
    """Lattice spacings as peaks of the radially averaged power spectrum above a smooth background.

    The log radial profile (lightly smoothed) is compared with its running median over
    ``background_window_cycles_per_px``; a ring is a lattice peak when it is a local maximum whose power
    exceeds the background by a factor ``min_ratio`` *and* by ``min_snr`` times the statistical scatter of a
    ring average (a ring of n Fourier pixels averages ~n/4 independent exponential powers, so its log10 has a
    standard deviation of about 0.434 / √(n/4)). Randomly oriented crystals give rings in the 2-D spectrum,
    hence peaks here; amplitude contrast, blur and noise give a smooth decay. Rings weaker than
    ``dynamic_range`` × the strongest ring (float rounding floors of heavily blurred images) are ignored.

    Parameters
    ----------
    image : 2-D image (or a 3-D stack of equal-shape images, averaged).
    pixel_size_nm : when given, the table gets ``spacing_nm`` (= pixel size / frequency).
    min_frequency_cycles_per_px : ignore rings below this (particle shapes, illumination).
    max_spacing_nm : with a pixel size, also ignore spacings longer than this (lattice planes of metals and
        oxides are < 0.6 nm; longer periods are particle-shape ripples of the spectrum or Moiré patterns).
    max_peaks : keep the strongest peaks.
    profile : a precomputed :func:`radial_profile` (then ``image`` is not used).

    Returns
    -------
    DataFrame with ``frequency_cycles_per_px``, ``spacing_px``, ``spacing_nm`` (NaN without a pixel size),
    ``ratio`` (peak power over background) and ``snr``, strongest first; empty when no lattice is seen.

    Example
    -------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = np.random.default_rng(0).normal(size=(128, 128)) + 3 * np.cos(2 * np.pi * 0.3 * xx)
    >>> peaks = find_lattice_peaks(img, pixel_size_nm=0.02)
    >>> round(float(peaks.frequency_cycles_per_px.iloc[0]), 2), round(float(peaks.spacing_nm.iloc[0]), 3)
    (0.3, 0.067)
    """
    if pixel_size_nm is not None and not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise NanosegError(f"pixel size must be a positive number of nm, got {pixel_size_nm}")
    prof = radial_profile(image) if profile is None else profile
    freq = prof["frequency_cycles_per_px"].to_numpy()
    power = prof["power"].to_numpy()
    count = prof["n"].to_numpy() if "n" in prof else np.full(len(freq), 1e9)
    columns = ["frequency_cycles_per_px", "spacing_px", "spacing_nm", "ratio", "snr"]
    strongest = power[freq > 0].max() if (freq > 0).any() else 0.0
    lowest = float(min_frequency_cycles_per_px)
    if pixel_size_nm and max_spacing_nm:
        lowest = max(lowest, float(pixel_size_nm) / float(max_spacing_nm))
    usable = (freq >= lowest) & (power > strongest * float(dynamic_range)) & (count >= 32)
    if usable.sum() < 5 or strongest <= 0:
        return pd.DataFrame(columns=columns)
    log_power = np.log10(np.maximum(power, strongest * 1e-300))
    step = float(np.median(np.diff(freq))) if len(freq) > 1 else 1.0
    window = max(5, int(round(background_window_cycles_per_px / step)) | 1)
    background = ndimage.median_filter(log_power, size=window, mode="nearest")
    excess = ndimage.gaussian_filter1d(log_power - background, 1.0, mode="nearest")
    # scatter of a smoothed ring average of ~n/4 independent exponential powers (Friedel pairs, Hann window)
    scatter = 0.4343 / np.sqrt(np.maximum(count / 4.0, 1.0)) / 1.88
    candidates, _ = signal.find_peaks(np.where(usable, excess, -np.inf))
    rows = []
    for i in candidates:
        ratio, snr = 10 ** excess[i], excess[i] / scatter[i]
        if ratio >= min_ratio and snr >= min_snr:
            lo, hi = max(i - 1, 0), min(i + 2, len(freq))  # sub-ring position: weighted centroid
            weights = np.maximum(excess[lo:hi], 0) + 1e-12
            f = float(np.sum(freq[lo:hi] * weights) / np.sum(weights))
            rows.append({"frequency_cycles_per_px": f, "spacing_px": 1.0 / f,
                         "spacing_nm": (pixel_size_nm / f) if pixel_size_nm else np.nan,
                         "ratio": float(ratio), "snr": float(snr)})
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("ratio", ascending=False).head(int(max_peaks)).reset_index(drop=True)


# --------------------------------------------------------------------------------------------- Bragg
@dataclass
class BraggMask:
    """Which Fourier pixels a Bragg filter keeps (unshifted, symmetric under k → −k)."""

    keep: np.ndarray
    frequencies_cycles_per_px: tuple[float, ...]

    @property
    def n_pixels(self) -> int:
        return int(self.keep.sum())


def bragg_mask(image, frequencies_cycles_per_px, *, relative_width: float = 0.08, threshold: float = 4.0,
               smooth_px: float = 1.0, grow_px: int = 1) -> BraggMask:
    """Select the lattice reflections: spectrum pixels in annuli around the lattice frequencies whose
    (slightly smoothed) power exceeds ``threshold`` × the annulus median, grown by ``grow_px`` pixels.

    The selection is made symmetric under k → −k (Friedel pairs) so the filtered image stays real.
    """
    array = _image(image)
    freqs = tuple(_frequency(f, "lattice frequency") for f in np.atleast_1d(frequencies_cycles_per_px))
    if not freqs:
        raise NanosegError("Bragg filter needs at least one lattice frequency",
                           hint="find them with find_lattice_peaks, or pass frequencies_cycles_per_px")
    power = np.fft.fftshift(power_spectrum(array, window=True))
    if smooth_px > 0:
        power = ndimage.gaussian_filter(power, smooth_px, mode="wrap")
    k = np.fft.fftshift(radial_frequency(array.shape))
    keep = np.zeros(array.shape, dtype=bool)
    for f in freqs:
        ring = np.abs(k - f) <= relative_width * f
        if not ring.any():
            continue
        keep |= ring & (power > threshold * np.median(power[ring]))
    if grow_px > 0 and keep.any():
        keep = ndimage.binary_dilation(keep, iterations=int(grow_px))
    keep = np.fft.ifftshift(keep)
    # Friedel symmetry: index −k of an unshifted FFT is (−i mod H, −j mod W)
    mirrored = np.roll(np.flip(keep, axis=(0, 1)), shift=(1, 1), axis=(0, 1))
    keep = keep | mirrored
    keep[0, 0] = False
    return BraggMask(keep=keep, frequencies_cycles_per_px=freqs)


def bragg_filter(image, frequencies_cycles_per_px=None, *, pixel_size_nm: float | None = None,
                 complement: bool = False, **mask_options) -> np.ndarray:
    """Keep only the lattice reflections (``complement=False``) or remove only them (``complement=True``).

    Without ``frequencies_cycles_per_px`` the lattice is found with :func:`find_lattice_peaks`; an image with
    no detectable lattice raises :class:`~nanoseg.errors.NanosegError`.

    >>> yy, xx = np.mgrid[:64, :64]
    >>> fringes = np.cos(2 * np.pi * 0.25 * xx)
    >>> img = fringes + 0.5 * np.cos(2 * np.pi * 0.03125 * yy)
    >>> bool(np.allclose(bragg_filter(img, [0.25]), fringes, atol=1e-6))
    True
    """
    if frequencies_cycles_per_px is None:
        peaks = find_lattice_peaks(image, pixel_size_nm=pixel_size_nm)
        if peaks.empty:
            raise NanosegError("no lattice reflections found in the power spectrum",
                               hint="the image shows no resolved lattice fringes; Bragg filtering needs them")
        frequencies_cycles_per_px = peaks["frequency_cycles_per_px"].tolist()
    mask = bragg_mask(image, frequencies_cycles_per_px, **mask_options)
    gain = (~mask.keep if complement else mask.keep).astype(np.float64)
    return apply_gain(image, gain)


__all__ = [
    "BraggMask", "apply_gain", "band_gain", "bandstop", "bragg_filter", "bragg_mask", "find_lattice_peaks",
    "highpass", "lowpass", "power_spectrum", "radial_frequency", "radial_profile",
]
