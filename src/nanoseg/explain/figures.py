"""Figures for the explain tools (matplotlib, written atomically as PNG). Each returns the path written.

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> from nanoseg.explain.maps import RawOutput
>>> raw = RawOutput(np.zeros((8, 8)), np.ones((8, 8)), np.full((8, 8), 0.7))
>>> out = plot_raw_outputs(np.zeros((8, 8)), raw, pathlib.Path(tempfile.mkdtemp()) / "raw.png")
>>> out.suffix
'.png'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg.report.figures import figure, save_figure

# the shared helpers (kept under their old private names for this module's functions)
_figure = figure
_save = save_figure


def _show(ax, array, title, cmap="gray", **kw):
    if cmap == "gray" and "vmin" not in kw and np.size(array):
        # a few hot pixels (x-rays) must not turn the whole frame black
        kw["vmin"], kw["vmax"] = np.percentile(np.asarray(array, dtype=np.float64), [0.5, 99.5])
    im = ax.imshow(array, cmap=cmap, interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _contour(ax, mask):
    if mask is not None and np.any(mask) and not np.all(mask):
        ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors="tab:green", linewidths=0.7)


def plot_raw_outputs(image, raw, path, *, mask=None) -> Path:
    """Input, background logit, particle logit and softmax side by side (Horwath's raw-map diagnosis)."""
    fig, axes = _figure(4)
    _show(axes[0, 0], image, "network input")
    _contour(axes[0, 0], mask)
    for ax, array, title in ((axes[0, 1], raw.background_logit, "raw output 0 (background)"),
                             (axes[0, 2], raw.particle_logit, "raw output 1 (particle)")):
        low, high = np.percentile(np.asarray(array, dtype=np.float64), [0.5, 99.5])  # hot pixels saturate
        fig.colorbar(_show(ax, array, title, cmap="magma", vmin=low, vmax=high), ax=ax, fraction=0.046)
    fig.colorbar(_show(axes[0, 3], raw.probability, "softmax particle", cmap="viridis", vmin=0, vmax=1),
                 ax=axes[0, 3], fraction=0.046)
    _contour(axes[0, 3], mask)
    return _save(fig, path)


def plot_spectrum(profile: pd.DataFrame, peaks: pd.DataFrame, path, *, pixel_size_nm: float | None = None) -> Path:
    """Radially averaged power spectrum with the lattice peaks marked (spacing in nm when known)."""
    fig, axes = _figure(1, size=4.5)
    ax = axes[0, 0]
    ax.semilogy(profile["frequency_cycles_per_px"], profile["power"], lw=1)
    for _, row in peaks.iterrows():
        f = row["frequency_cycles_per_px"]
        label = f"{row['spacing_nm']:.3f} nm" if pixel_size_nm else f"{1 / f:.2f} px"
        ax.axvline(f, color="tab:red", lw=0.8, ls="--")
        ax.text(f, ax.get_ylim()[1], label, rotation=90, va="top", ha="right", fontsize=8, color="tab:red")
    ax.set_xlabel("spatial frequency (cycles/px)")
    ax.set_ylabel("radially averaged power")
    ax.set_title("power spectrum" + ("" if len(peaks) else " (no lattice peaks found)"), fontsize=9)
    return _save(fig, path)


def plot_ablation(table: pd.DataFrame, path, *, examples: dict | None = None, mask=None,
                  max_examples: int = 6) -> Path:
    """Bar chart of Dice per ablated band; with ``examples`` also the ablated inputs and their predictions."""
    names = list(table["band"])
    shown = [n for n in names if examples and n in examples][:max_examples]
    ncols = max(1, len(shown))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 1 + (2 if shown else 0)
    fig = plt.figure(figsize=(max(8.0, 2.4 * ncols), 3.6 + 2.4 * (rows - 1)))
    grid = fig.add_gridspec(rows, ncols, height_ratios=[1.5] + [1] * (rows - 1))
    ax = fig.add_subplot(grid[0, :])
    colors = ["tab:gray" if k == "none" else "tab:blue" for k in table["kind"]]
    ax.barh(range(len(names)), table["dice"], xerr=table.get("dice_std"), color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("hard Dice")
    ax.set_title("frequency ablation", fontsize=9)
    for i, name in enumerate(shown):
        array, prob = examples[name]
        a1 = fig.add_subplot(grid[1, i])
        _show(a1, array, name[:30])
        a1.title.set_fontsize(7)
        a2 = fig.add_subplot(grid[2, i])
        _show(a2, prob, "probability", cmap="viridis", vmin=0, vmax=1)
        _contour(a2, mask)
    return _save(fig, path)


def plot_saliency(image, path, *, occlusion=None, saliency=None, probability=None, mask=None) -> Path:
    """Input with the occlusion map and the gradient saliency (and the probability) beside it."""
    panels = [("network input", image, "gray", {})]
    if probability is not None:
        panels.append(("softmax particle", probability, "viridis", {"vmin": 0, "vmax": 1}))
    if occlusion is not None:
        lim = float(np.abs(occlusion).max()) or 1.0
        panels.append(("occlusion: score drop", occlusion, "RdBu_r", {"vmin": -lim, "vmax": lim}))
    if saliency is not None:
        panels.append(("|gradient| saliency", saliency, "inferno", {}))
    fig, axes = _figure(len(panels))
    for ax, (title, array, cmap, kw) in zip(axes[0], panels, strict=False):
        im = _show(ax, array, title, cmap=cmap, **kw)
        if title != "network input":
            fig.colorbar(im, ax=ax, fraction=0.046)
        _contour(ax, mask)
    return _save(fig, path)


def plot_line_profiles(profiles: pd.DataFrame, path, *, image=None, lines=None) -> Path:
    """Intensity and probability along each profile line (one panel per particle), plus the lines."""
    particles = sorted(profiles["particle"].unique()) if len(profiles) else []
    ncols = max(1, len(particles)) + (1 if image is not None else 0)
    fig, axes = _figure(ncols, size=3.4)
    col = 0
    if image is not None:
        _show(axes[0, 0], image, "profile lines")
        for line in lines or []:
            axes[0, 0].plot([line.start[1], line.end[1]], [line.start[0], line.end[0]], color="tab:orange", lw=1)
            axes[0, 0].text(line.start[1], line.start[0], str(line.particle), color="tab:orange", fontsize=8)
        col = 1
    use_nm = len(profiles) and profiles["distance_nm"].notna().all()
    for particle in particles:
        ax = axes[0, col]
        col += 1
        part = profiles[profiles["particle"] == particle]
        x = part["distance_nm"] if use_nm else part["distance_px"]
        ax.plot(x, part["intensity"], color="0.3", lw=1, label="intensity")
        ax.set_xlabel("distance (nm)" if use_nm else "distance (px)")
        ax.set_ylabel("network input", fontsize=8)
        twin = ax.twinx()
        twin.plot(x, part["probability"], color="tab:blue", lw=1.2, label="probability")
        if part["truth"].notna().any():
            twin.fill_between(x, 0, part["truth"], color="tab:green", alpha=0.15, step="mid", label="truth")
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel("particle probability", fontsize=8, color="tab:blue")
        ax.set_title(f"particle {particle}", fontsize=9)
    if not particles:
        axes[0, -1].text(0.5, 0.5, "no particle", ha="center", va="center")
    return _save(fig, path)


def plot_receptive_field(table: pd.DataFrame, path) -> Path:
    """Dice vs receptive field (fixed parameters) and vs parameters (fixed receptive field)."""
    fig, axes = _figure(2, size=4.0)
    for ax, axis, x, label in ((axes[0, 0], "receptive_field", "receptive_field_px", "receptive field (px)"),
                               (axes[0, 1], "parameters", "n_parameters", "parameters")):
        part = table[table["axis"] == axis].sort_values(x)
        if len(part):
            ax.errorbar(part[x], part["dice"], yerr=part.get("dice_std"), marker="o", capsize=3)
        ax.set_xlabel(label)
        ax.set_ylabel("hard Dice")
        ax.set_ylim(0, 1)
        ax.set_title(f"vary {label.split(' (')[0]}", fontsize=9)
        if axis == "parameters" and len(part) and part[x].max() > 10 * max(part[x].min(), 1):
            from matplotlib.ticker import FuncFormatter, NullFormatter

            ax.set_xscale("log")
            ax.set_xticks(part[x].tolist())  # label the variants' counts only (minor labels overlap)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
    return _save(fig, path)


__all__ = ["plot_ablation", "plot_line_profiles", "plot_raw_outputs", "plot_receptive_field", "plot_saliency",
           "plot_spectrum"]
