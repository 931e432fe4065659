"""Dataset descriptors that may predict a generalization drop before any training (Sytwu; Rangel DaCosta).

Per image, after x-ray removal and per-image standardization (as the network sees it; statistics from
:mod:`nanoseg.simulate.stats`):

* ``contrast`` — median(background) − median(particle) (Sytwu's image contrast; ≈ 0.58 at 884 e/Å² and
  ≈ 0.24 at 80 e/Å² on real 5 nm Au);
* ``roughness`` — Σ|F(k)|²k² / Σ|F(k)|² with k in cycles/px (≈ 0.03–0.05 on real data, 0.17 for white noise);
* ``info_limit_cyc_px`` / ``info_limit_nm`` — the highest spatial frequency where the radially averaged power
  spectrum stands ``snr`` times above its near-Nyquist noise floor (the information limit of the data);
* ``noise`` — robust relative noise of the background: 1.4826·MAD(image − blurred image) / median(image) on the
  raw image (≈ 1/√(electrons per pixel) for pure shot noise). Not the ``noise`` of the out-of-distribution
  checks (:mod:`nanoseg.datasets.imagestats`: the standardized image's noise, stored in model cards).

A dataset's descriptors are the medians over (up to ``max_images``) images. :func:`descriptor_distance` gives
per-descriptor absolute differences and a combined distance (differences scaled by each descriptor's spread over
the study's datasets).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> round(roughness(rng.normal(size=(128, 128))), 2)   # white noise: the mean of k² over the band
0.17
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from nanoseg.datasets import open_dataset
from nanoseg.preprocess import remove_xrays
from nanoseg.simulate import stats

DESCRIPTORS = ("contrast", "roughness", "info_limit_cyc_px", "info_limit_nm", "noise")


def particle_contrast(image, mask) -> float:
    """median(background) − median(particle) of the standardized image (NaN when a class is empty)."""
    mask = np.asarray(mask) > 0
    if mask.all() or not mask.any():
        return float("nan")
    return stats.particle_contrast(image, mask)


def roughness(image) -> float:
    """Fourier roughness Σ|F|²k² / Σ|F|² (k in cycles/px) of the standardized image."""
    return stats.fourier_roughness(image)


def radial_power_spectrum(image, *, n_bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (cycles/px, up to 0.5) and the Hann-windowed radially averaged power of the image."""
    return stats.radial_power_spectrum(image, n_bins=n_bins, window=True)


def information_limit(image, *, snr: float = 3.0, floor_band=(0.42, 0.5)) -> float:
    """Highest frequency (cycles/px) whose radial power exceeds ``snr`` × the near-Nyquist floor (0 if none)."""
    k, ps = radial_power_spectrum(image)
    floor = float(np.median(ps[(k >= floor_band[0]) & (k <= floor_band[1])]))
    above = np.nonzero((ps > snr * floor) & (k > 0.0))[0]
    return float(k[above.max()]) if above.size else 0.0


def noise_level(image, mask=None, *, sigma_px: float = 2.0) -> float:
    """Relative background noise 1.4826·MAD(image − blur(image)) / median(image) (raw image units)."""
    from scipy.ndimage import gaussian_filter

    image = np.asarray(image, dtype=np.float64)
    residual = image - gaussian_filter(image, sigma_px)
    keep = np.ones(image.shape, bool) if mask is None else ~(np.asarray(mask) > 0)
    if not keep.any():
        keep[:] = True
    r = residual[keep]
    level = np.median(image[keep])
    scale = abs(level) if abs(level) > 1e-12 else image.std() or 1.0
    return float(1.4826 * np.median(np.abs(r - np.median(r))) / scale)


def image_descriptors(image, mask, *, pixel_size_nm: float | None = None) -> dict[str, float]:
    """Every descriptor of one image (see the module docstring), after x-ray removal.

    X-ray hits are removed first, as every preprocessing pipeline does before the network sees the image:
    a few spikes would otherwise dominate the standardized image's roughness and contrast.
    """
    image, _ = remove_xrays(image)
    limit = information_limit(image)
    return {
        "contrast": particle_contrast(image, mask),
        "roughness": roughness(image),
        "info_limit_cyc_px": limit,
        "info_limit_nm": (pixel_size_nm / limit) if (pixel_size_nm and limit > 0) else float("nan"),
        "noise": noise_level(image, mask),
    }


def dataset_descriptors(dataset_dir: str | os.PathLike, *, max_images: int = 16) -> dict[str, Any]:
    """Medians of the image descriptors over up to ``max_images`` images spread through the dataset."""
    ds = open_dataset(dataset_dir)
    ids = ds.ids
    if len(ids) > max_images:
        ids = [ids[i] for i in np.linspace(0, len(ids) - 1, max_images).round().astype(int)]
    rows = []
    for image_id in ids:
        mg = ds.micrograph(image_id)
        rows.append(image_descriptors(mg.data, ds.mask(image_id), pixel_size_nm=mg.pixel_size_nm))
    table = pd.DataFrame(rows)
    out: dict[str, Any] = {name: float(table[name].median()) for name in DESCRIPTORS}
    out["n_images"] = len(ids)
    return out


def descriptor_distance(descriptors: pd.DataFrame, train_set: str, test_set: str) -> dict[str, float]:
    """|test − train| per descriptor and ``combined``: the root-mean-square of the differences, each divided
    by that descriptor's standard deviation over all datasets in ``descriptors`` (rows = dataset names)."""
    out: dict[str, float] = {}
    scaled = []
    for name in DESCRIPTORS:
        if name not in descriptors.columns:
            continue
        diff = abs(float(descriptors.loc[test_set, name]) - float(descriptors.loc[train_set, name]))
        out[name] = diff
        spread = float(descriptors[name].std())
        if np.isfinite(diff) and spread > 0:
            scaled.append(diff / spread)
    out["combined"] = float(np.sqrt(np.mean(np.square(scaled)))) if scaled else float("nan")
    return out
