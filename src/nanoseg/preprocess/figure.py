"""The preprocessing figure the demo writes: raw, cleaned + flat-fielded, background, auto-labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nanoseg._util import atomic_path
from nanoseg.preprocess.flatfield import flat_field
from nanoseg.preprocess.labels import auto_label
from nanoseg.preprocess.normalize import standardize
from nanoseg.preprocess.xray import remove_xrays


def _nice_length(max_nm: float) -> float:
    """The largest 1-2-5 × 10^k length not above ``max_nm``."""
    exponent = np.floor(np.log10(max_nm))
    for mantissa in (5, 2, 1):
        if mantissa * 10**exponent <= max_nm:
            return float(mantissa * 10**exponent)
    return float(10 ** (exponent - 1) * 5)


def _scale_bar(ax, shape, pixel_size_nm) -> None:
    from matplotlib.patches import Rectangle

    rows, cols = shape
    if pixel_size_nm is None:
        ax.text(0.02, 0.03, "pixel size unknown", transform=ax.transAxes, color="white", fontsize=8,
                bbox={"facecolor": "black", "alpha": 0.6, "lw": 0})
        return
    length_nm = _nice_length(0.25 * cols * pixel_size_nm)
    length_px = length_nm / pixel_size_nm
    height = max(2.0, rows * 0.015)
    x0, y0 = cols * 0.04, rows * 0.94 - height
    ax.add_patch(Rectangle((x0, y0), length_px, height, color="white", ec="black", lw=0.5))
    label = f"{length_nm:g} nm  ({pixel_size_nm:.4g} nm/px)"
    ax.text(x0, y0 - rows * 0.015, label, color="white", fontsize=8, va="bottom",
            bbox={"facecolor": "black", "alpha": 0.5, "lw": 0, "pad": 1})


def demo_figure(micrograph, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Write a 2×2 PNG figure of the preprocessing of one micrograph and return its path.

    Panels: the raw image; after x-ray removal and flat-field correction (Sytwu protocol, with the
    number of x-rays found); the fitted illumination background; the Horwath auto-label overlaid on
    the corrected image. Each image panel carries a scale bar in nm (or says the pixel size is unknown).
    The PNG is written atomically (a half-written figure never appears under ``path``).

    >>> import tempfile, pathlib
    >>> from nanoseg.io import Micrograph
    >>> yy, xx = np.mgrid[:64, :64]
    >>> m = Micrograph(np.where((yy - 32) ** 2 + (xx - 30) ** 2 < 100, 60.0, 100.0), pixel_size_nm=0.1)
    >>> out = demo_figure(m, pathlib.Path(tempfile.mkdtemp()) / "fig.png")
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    micrograph.check_finite()
    raw = micrograph.data
    cleaned, n_xrays = remove_xrays(raw, n_sigma=8.0, max_passes=2)
    corrected, background = flat_field(cleaned, order=(2, 2), scale=0.25, n_reweight=2)
    mask = auto_label(corrected, sigma_px=2.0, opening_radius_px=5)
    shown = standardize(corrected)

    fig = Figure(figsize=(9, 9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    lo, hi = np.percentile(raw, [0.5, 99.5])
    panels = [
        (raw, f"raw ({raw.shape[0]}×{raw.shape[1]})", {"vmin": lo, "vmax": hi}),
        (shown, f"x-rays removed ({n_xrays} px) + flat field", {"vmin": -3, "vmax": 3}),
        (background, "fitted background (Bézier 2×2, robust)", {}),
        (shown, f"auto-label (Horwath): {100 * mask.mean():.1f} % particle", {"vmin": -3, "vmax": 3}),
    ]
    for ax, (image, title, limits) in zip(axes.flat, panels, strict=True):
        handle = ax.imshow(image, cmap="gray", interpolation="nearest", **limits)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, image.shape, micrograph.pixel_size_nm)
        if image is background:
            fig.colorbar(handle, ax=ax, shrink=0.8, label="intensity (raw units)")
    overlay = np.zeros((*mask.shape, 4))
    overlay[mask.astype(bool)] = (1.0, 0.35, 0.0, 0.45)
    axes[1, 1].imshow(overlay, interpolation="nearest")
    name = Path(micrograph.source).name if micrograph.source else "micrograph"
    dose = "" if micrograph.dose_e_per_A2 is None else f", {micrograph.dose_e_per_A2:g} e/Å²"
    fig.suptitle(f"nanoseg preprocessing: {name}{dose}")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
