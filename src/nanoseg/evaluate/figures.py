"""The evaluation figures: threshold curves, size-distribution overlays, worst cases with overlays.

Small matplotlib functions (Agg backend, no global state) that take the tables of
:mod:`nanoseg.evaluate.run` and write one PNG each; the HTML report embeds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg.report.figures import pyplot, save_figure

# the shared helpers (kept under their old private names for this module's functions)
_pyplot = pyplot
_save = save_figure


def threshold_curves(thresholds: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Precision, recall, F1 and pixel error (mean ± std over images) against the threshold; Otsu as points."""
    plt = _pyplot()
    fixed = thresholds[thresholds["threshold_name"] != "otsu"].sort_values("threshold_mean")
    otsu = thresholds[thresholds["threshold_name"] == "otsu"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    styles = (("precision", "C0", "-"), ("recall", "C1", "-"), ("f1", "C2", "-"), ("dice", "C3", ":"))
    for name, colour, line in styles:
        x, m, s = fixed["threshold_mean"], fixed[f"{name}_mean"], fixed[f"{name}_std"]
        ax1.plot(x, m, color=colour, linestyle=line, label=name if name != "dice" else "dice (smoothed)")
        ax1.fill_between(x, m - s, m + s, color=colour, alpha=0.15)
        if len(otsu):
            ax1.errorbar(otsu["threshold_mean"], otsu[f"{name}_mean"], yerr=otsu[f"{name}_std"], xerr=otsu[
                "threshold_std"], fmt="o", color=colour, capsize=3)
    ax1.set(xlabel="probability threshold (points: Otsu)", ylabel="score (mean ± std over images)",
            ylim=(0, 1.02))
    ax1.legend(loc="lower center")
    x, m, s = fixed["threshold_mean"], fixed["pixel_error_mean"], fixed["pixel_error_std"]
    ax2.plot(x, m, color="k")
    ax2.fill_between(x, m - s, m + s, color="k", alpha=0.15)
    if len(otsu):
        ax2.errorbar(otsu["threshold_mean"], otsu["pixel_error_mean"], yerr=otsu["pixel_error_std"], fmt="o",
                     color="k", capsize=3)
    ax2.set(xlabel="probability threshold", ylabel="pixel error (fraction of pixels)")
    fig.suptitle(f"pixel scores vs threshold ({int(thresholds['n_images'].max())} images)")
    return _save(fig, path)


def size_distributions(predicted_nm, reference_nm, path: str | os.PathLike, *,
                       reference_label: str = "ground truth") -> Path:
    """Overlaid histograms (same bins) and cumulative distributions of particle diameters in nm."""
    plt = _pyplot()
    pred = np.asarray(predicted_nm, dtype=float)
    ref = np.asarray(reference_nm, dtype=float)
    both = np.concatenate([pred, ref])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if both.size:
        bins = np.histogram_bin_edges(both, bins="auto" if both.size > 5 else 5)
        for values, label, colour in ((ref, reference_label, "C0"), (pred, "predicted", "C3")):
            if values.size:
                ax1.hist(values, bins=bins, alpha=0.5, color=colour, label=f"{label} (n={values.size})")
                ax2.step(np.sort(values), np.arange(1, values.size + 1) / values.size, where="post",
                         color=colour, label=label)
    ax1.set(xlabel="equivalent diameter (nm)", ylabel="particles")
    ax1.legend()
    ax2.set(xlabel="equivalent diameter (nm)", ylabel="cumulative fraction", ylim=(0, 1.02))
    fig.suptitle("particle-size distribution")
    return _save(fig, path)


def worst_cases(worst: list[dict], path: str | os.PathLike, *, threshold: float | str = 0.5) -> Path:
    """One row per image (lowest Dice first): image with true (blue) and predicted (red) outlines, probability."""
    from skimage.segmentation import find_boundaries

    from nanoseg.evaluate.pixel import binarize

    plt = _pyplot()
    fig, axes = plt.subplots(len(worst), 2, figsize=(8, 4 * len(worst)), squeeze=False)
    for (ax_img, ax_prob), case in zip(axes, worst, strict=True):
        image = np.asarray(case["image"], dtype=float)
        lo, hi = np.percentile(image, [1, 99])
        rgb = np.repeat(((np.clip(image, lo, hi) - lo) / max(hi - lo, 1e-12))[..., None], 3, axis=2)
        rgb[find_boundaries(case["truth"], mode="inner")] = (0.2, 0.4, 1.0)
        rgb[find_boundaries(binarize(case["probability"], threshold), mode="inner")] = (1.0, 0.2, 0.2)
        ax_img.imshow(rgb)
        ax_img.set_title(f"{case['id']}: Dice {case['dice']:.3f} (blue truth, red prediction)", fontsize=9)
        ax_prob.imshow(case["probability"], vmin=0, vmax=1, cmap="magma")
        ax_prob.set_title("particle probability", fontsize=9)
        for ax in (ax_img, ax_prob):
            ax.set_axis_off()
    return _save(fig, path)
