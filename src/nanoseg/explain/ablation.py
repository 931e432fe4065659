"""Frequency ablation: which spatial frequencies does a segmentation network need?

The network is run on copies of its input with one band of spatial frequencies removed, and the hard Dice
against the true mask is compared with the Dice on the unablated input. A network that segments by
**amplitude contrast** (particles darker than the support over many pixels) loses little when high
frequencies are removed and a lot when low ones are; a network that keys on **lattice fringes** collapses
when the lattice band is removed (band-stop, low-pass below the lattice) and may still find particles in a
Bragg-filtered image that keeps only the reflections.

Bands (see :func:`default_bands`): low-pass (remove periods shorter than P px), high-pass (remove periods
longer than P px, including the mean), band-stop around each lattice spacing found in the power spectrum,
low-pass just below the finest lattice (remove every fringe), Bragg-only (keep only the reflections) and
Bragg-removed (remove only the reflections).

Ablation acts on the network input (after preprocessing) and leaves every kept frequency exactly as it
was, so the remaining information keeps its amplitude (a band removed is the only change).
``renormalize=True`` instead rescales each ablated image to the original mean and standard deviation, as a
per-image standardizing pipeline would do if the ablation happened before preprocessing; it amplifies
what is left (e.g. the fringes after a high-pass), which confounds the question, hence the default off.

Example
-------
>>> import numpy as np, torch
>>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
>>> image = np.random.default_rng(0).normal(size=(32, 32)).astype("float32")
>>> mask = np.zeros((32, 32), bool); mask[8:16, 8:16] = True
>>> table = frequency_ablation(net, image, mask, bands=[Band("low-pass 4 px", "lowpass", 0.25)])
>>> list(table.band)
['none', 'low-pass 4 px']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError
from nanoseg.explain import frequency as fq
from nanoseg.explain._network import check_image, check_mask, particle_probability

KINDS = ("none", "lowpass", "highpass", "bandstop", "bragg_only", "bragg_removed")


@dataclass
class Band:
    """One ablation.

    Parameters
    ----------
    name : label in tables and figures.
    kind : ``lowpass`` (remove |k| ≥ ``low``), ``highpass`` (remove |k| < ``low``), ``bandstop`` (remove
        ``low`` ≤ |k| ≤ ``high``), ``bragg_only`` / ``bragg_removed`` (keep / remove the reflections at the
        lattice frequencies ``lattice``), or ``none``.
    low, high : frequencies in cycles/px (``high`` only for band-stop).
    lattice : lattice frequencies (cycles/px) for the Bragg kinds.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    lattice: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise NanosegError(f"unknown ablation kind {self.kind!r}", hint=f"choose one of: {', '.join(KINDS)}")
        if self.kind in ("lowpass", "highpass", "bandstop") and self.low is None:
            raise NanosegError(f"ablation {self.name!r}: a {self.kind} band needs a cutoff frequency (low)")
        if self.kind == "bandstop" and (self.high is None or self.high < self.low):
            raise NanosegError(f"ablation {self.name!r}: band-stop needs low ≤ high (cycles/px)")
        if self.kind.startswith("bragg") and not self.lattice:
            raise NanosegError(f"ablation {self.name!r}: Bragg filtering needs lattice frequencies")

    def removed_range(self) -> tuple[float, float]:
        """Removed frequencies (from, to) in cycles/px; NaN for the Bragg kinds (they select spots)."""
        if self.kind == "none":
            return (np.nan, np.nan)
        if self.kind == "lowpass":
            return (float(self.low), fq.MAX_FREQUENCY)
        if self.kind == "highpass":
            return (0.0, float(self.low))
        if self.kind == "bandstop":
            return (float(self.low), float(self.high))
        return (np.nan, np.nan)

    def describe(self) -> str:
        lo, hi = self.removed_range()
        if self.kind == "none":
            return "nothing (reference)"
        if self.kind == "lowpass":
            return f"periods < {1 / lo:.3g} px"
        if self.kind == "highpass":
            return f"periods > {1 / hi:.3g} px and the mean"
        if self.kind == "bandstop":
            return f"periods {1 / hi:.3g}–{1 / lo:.3g} px"
        spacings = ", ".join(f"{1 / f:.3g}" for f in self.lattice)
        if self.kind == "bragg_only":
            return f"everything except the reflections at {spacings} px"
        return f"only the reflections at {spacings} px"

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return np.asarray(image, dtype=np.float32)
        if self.kind == "lowpass":
            return fq.lowpass(image, cutoff_cycles_per_px=self.low)
        if self.kind == "highpass":
            return fq.highpass(image, cutoff_cycles_per_px=self.low)
        if self.kind == "bandstop":
            return fq.bandstop(image, low_cycles_per_px=self.low, high_cycles_per_px=self.high)
        return fq.bragg_filter(image, list(self.lattice), complement=self.kind == "bragg_removed")


def default_bands(lattice_frequencies_cycles_per_px: Sequence[float] = (), *,
                  lowpass_periods_px: Sequence[float] = (3, 6, 12),
                  highpass_periods_px: Sequence[float] = (64, 32, 16),
                  lattice_relative_width: float = 0.1) -> list[Band]:
    """The standard set: reference, low-passes, high-passes, and (with a lattice) band-stops, a low-pass
    below the finest lattice, Bragg-only and Bragg-removed.

    >>> [b.name for b in default_bands(lowpass_periods_px=[4], highpass_periods_px=[32])]
    ['none', 'low-pass: keep periods ≥ 4 px', 'high-pass: keep periods < 32 px']
    """
    bands = [Band("none", "none")]
    for period in lowpass_periods_px:
        bands.append(Band(f"low-pass: keep periods ≥ {period:g} px", "lowpass", 1.0 / float(period)))
    for period in highpass_periods_px:
        bands.append(Band(f"high-pass: keep periods < {period:g} px", "highpass", 1.0 / float(period)))
    lattice = tuple(float(f) for f in lattice_frequencies_cycles_per_px)
    if lattice:
        for f in lattice:
            bands.append(Band(f"band-stop lattice {1 / f:.3g} px", "bandstop",
                              f * (1 - lattice_relative_width), min(f * (1 + lattice_relative_width),
                                                                    fq.MAX_FREQUENCY)))
        finest = min(lattice) * (1 - lattice_relative_width)
        bands.append(Band(f"low-pass below lattice ({1 / finest:.3g} px)", "lowpass", finest))
        bands.append(Band("Bragg only", "bragg_only", lattice=lattice))
        bands.append(Band("Bragg removed", "bragg_removed", lattice=lattice))
    return bands


def _renormalize(filtered: np.ndarray, original: np.ndarray) -> np.ndarray:
    std = float(filtered.std())
    if std < 1e-12:
        return np.full_like(original, original.mean(), dtype=np.float32)
    return ((filtered - filtered.mean()) / std * original.std() + original.mean()).astype(np.float32)


def ablate(image, band: Band, *, renormalize: bool = False) -> tuple[np.ndarray, float]:
    """The ablated image and the fraction of the image's variance the band removed."""
    original = check_image(image)
    filtered = band.apply(original)
    var = float(original.var())
    removed = float((original - filtered).var() / var) if var > 0 else 0.0
    if renormalize and band.kind != "none":
        filtered = _renormalize(filtered, original)
    return filtered, removed


def frequency_ablation(model, images, masks, *, bands: Sequence[Band] | None = None,
                       pixel_size_nm: float | None = None, lattice: Sequence[float] | None = None,
                       threshold: float = 0.5, renormalize: bool = False, smooth: float = 1.0,
                       batch_size: int = 4, return_images: bool = False):
    """Hard Dice of ``model`` on inputs with frequency bands removed, and the drop vs the unablated input.

    Parameters
    ----------
    model : ``nn.Module`` or loaded checkpoint.
    images : one network-input image ``(H, W)`` or a list of them (preprocessed, see ``prepare_input``).
    masks : the true mask(s), same shapes.
    bands : ablations to run (the reference ``none`` is always added first); default :func:`default_bands`
        with the lattice found in the images' mean power spectrum.
    pixel_size_nm : adds the removed periods in nm to the table.
    lattice : lattice frequencies (cycles/px) to use instead of finding them.
    threshold : softmax threshold for the hard masks; ``smooth`` Dice smoothing (1, Sytwu).
    renormalize : rescale each ablated image to the original mean and std (default: leave it as filtered).
    return_images : also return ``{band name: (ablated first image, its probability)}`` for figures.

    Returns
    -------
    DataFrame, one row per band: ``band``, ``kind``, ``removes``, ``from_cycles_per_px``,
    ``to_cycles_per_px``, ``from_period_nm``, ``to_period_nm`` (the removed periods; the "from" frequency
    is the *longest* removed period), ``variance_removed`` (mean fraction of image variance the band held),
    ``dice`` (mean over images), ``dice_std``, ``drop`` (mean per-image Dice(none) − Dice(band)).
    The lattice frequencies used are in ``table.attrs["lattice_frequencies_cycles_per_px"]``.
    """
    from nanoseg.evaluate.pixel import dice

    single = np.ndim(images) == 2
    image_list = [check_image(images)] if single else [check_image(im, f"image {i}") for i, im in enumerate(images)]
    mask_list = [masks] if single else list(masks)
    if len(mask_list) != len(image_list):
        raise NanosegError(f"{len(image_list)} images but {len(mask_list)} masks")
    mask_list = [check_mask(m, im.shape, f"mask {i}") for i, (m, im) in enumerate(zip(mask_list, image_list, strict=True))]
    if not 0 < threshold < 1:
        raise NanosegError(f"threshold must lie between 0 and 1, got {threshold}")

    peaks = _lattice(image_list, pixel_size_nm, lattice)
    if bands is None:
        bands = default_bands(peaks["frequency_cycles_per_px"].tolist())
    bands = [Band("none", "none")] + [b for b in bands if b.kind != "none"]

    per_band: dict[str, list[float]] = {b.name: [] for b in bands}
    removed: dict[str, list[float]] = {b.name: [] for b in bands}
    examples = {}
    for index, (image, mask) in enumerate(zip(image_list, mask_list, strict=True)):
        ablated = [ablate(image, band, renormalize=renormalize) for band in bands]
        probs = particle_probability(model, np.stack([a for a, _ in ablated]), batch_size=batch_size)
        for band, (array, var_removed), prob in zip(bands, ablated, probs, strict=True):
            per_band[band.name].append(dice(prob >= threshold, mask, smooth=smooth))
            removed[band.name].append(var_removed)
            if return_images and index == 0:
                examples[band.name] = (array, prob)
    reference = np.asarray(per_band["none"])
    rows = []
    for band in bands:
        lo, hi = band.removed_range()
        scores = np.asarray(per_band[band.name])
        rows.append({
            "band": band.name, "kind": band.kind, "removes": band.describe(),
            "from_cycles_per_px": lo, "to_cycles_per_px": hi,
            "from_period_nm": _period_nm(lo, pixel_size_nm), "to_period_nm": _period_nm(hi, pixel_size_nm),
            "variance_removed": float(np.mean(removed[band.name])),
            "dice": float(scores.mean()), "dice_std": float(scores.std()),
            "drop": float(np.mean(reference - scores)),
        })
    table = pd.DataFrame(rows)
    table.attrs["lattice_frequencies_cycles_per_px"] = [float(f) for f in peaks["frequency_cycles_per_px"]]
    return (table, examples) if return_images else table


def _period_nm(frequency: float, pixel_size_nm: float | None) -> float:
    if pixel_size_nm is None or not np.isfinite(frequency):
        return np.nan
    return float(np.inf) if frequency == 0 else float(pixel_size_nm / frequency)


def lattice_frequencies(spacings_nm: Sequence[float], pixel_size_nm: float | None) -> list[float]:
    """Known lattice spacings (nm) as frequencies (cycles/px) of an image at ``pixel_size_nm``.

    For materials whose spacings are known (Au: 0.235 nm (111), 0.204 nm (200)), when the power spectrum of a
    few small crystals is too weak for :func:`~nanoseg.explain.frequency.find_lattice_peaks`.

    >>> [round(f, 3) for f in lattice_frequencies([0.235, 0.204], 0.05)]
    [0.213, 0.245]
    """
    if not spacings_nm:
        return []
    if not pixel_size_nm or not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        raise NanosegError("lattice spacings in nm need the image's pixel size",
                           hint="give the pixel size (pixel_size_nm=NM) or the spacings in cycles/px")
    freqs = []
    for spacing in spacings_nm:
        if not np.isfinite(spacing) or spacing <= 0:
            raise NanosegError(f"lattice spacing must be a positive number of nm, got {spacing}")
        frequency = float(pixel_size_nm / spacing)
        if frequency >= 0.5:
            raise NanosegError(
                f"lattice spacing {spacing} nm is not resolved at {pixel_size_nm:.4g} nm/px (its period "
                f"{spacing / pixel_size_nm:.2f} px is below Nyquist, 2 px)",
                hint="fringes need a pixel size under half the spacing; drop this spacing")
        freqs.append(frequency)
    return freqs


def lattice_table(frequencies: Sequence[float], pixel_size_nm: float | None) -> pd.DataFrame:
    """Given lattice frequencies (cycles/px) as a table shaped like ``find_lattice_peaks``' (no ratio/SNR)."""
    freqs = [float(f) for f in frequencies]
    return pd.DataFrame({"frequency_cycles_per_px": freqs, "spacing_px": [1 / f for f in freqs],
                         "spacing_nm": [pixel_size_nm / f if pixel_size_nm else np.nan for f in freqs],
                         "ratio": np.nan, "snr": np.nan})


def _lattice(images: list[np.ndarray], pixel_size_nm: float | None, lattice) -> pd.DataFrame:
    if lattice is not None:
        return lattice_table(lattice, pixel_size_nm)
    shapes = {im.shape for im in images}
    if len(shapes) == 1:
        profile = fq.radial_profile(np.stack(images))
    else:  # different sizes: use the largest image's spectrum
        profile = fq.radial_profile(max(images, key=lambda im: im.size))
    return fq.find_lattice_peaks(None, pixel_size_nm=pixel_size_nm, profile=profile)


__all__ = ["Band", "KINDS", "ablate", "default_bands", "frequency_ablation", "lattice_frequencies",
           "lattice_table"]
