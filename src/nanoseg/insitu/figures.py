"""Figures of a tracking run (PNG, matplotlib Agg): sizes over time, PSD evolution, kinetics fit, frame strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg._util import atomic_path

__all__ = ["write_figures", "plot_size_vs_time", "plot_psd_evolution", "plot_kinetics", "plot_frame_strip",
           "write_annotated_gif"]

_FATE_COLORS = {"survived": "tab:blue", "vanished": "tab:red", "coalescence": "tab:orange", "split": "tab:purple",
                "left_field": "tab:gray", "lost": "tab:brown"}


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def plot_size_vs_time(tracks: pd.DataFrame, lineage: pd.DataFrame, ax=None):
    """Diameter of every track over time, coloured by how the track ended."""
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    fate = dict(zip(lineage["track_id"], lineage["end"], strict=True)) if len(lineage) else {}
    tcol = "time_s" if "time_s" in tracks.columns else "frame"
    for tid, g in tracks.groupby("track_id"):
        ax.plot(g[tcol], g["diameter_nm"], lw=0.8, alpha=0.8, color=_FATE_COLORS.get(fate.get(tid), "k"))
    for name, color in _FATE_COLORS.items():
        ax.plot([], [], color=color, label=name)
    ax.set_xlabel("time (s)" if tcol == "time_s" else "frame")
    ax.set_ylabel("equivalent diameter (nm)")
    ax.set_title("particle size over time (colour = fate)")
    ax.legend(fontsize=7, ncol=3)
    return fig or ax.figure


def plot_psd_evolution(psd: pd.DataFrame, ax=None):
    """Size distributions of r/⟨r⟩ per time window (bootstrap 95 % bands when present) with the LSW shape."""
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    cmap = plt.get_cmap("viridis")
    windows = sorted(psd["window"].unique()) if len(psd) else []
    for w in windows:
        g = psd[psd["window"] == w]
        color = cmap(w / max(len(windows) - 1, 1))
        ax.step(g["bin_center"], g["density"], where="mid", color=color,
                label=f"{g['t_start_s'].iloc[0]:.3g}–{g['t_end_s'].iloc[0]:.3g} s (n={int(g['n'].iloc[0])})")
        if "density_lo" in g.columns:
            ax.fill_between(g["bin_center"], g["density_lo"], g["density_hi"], step="mid", color=color, alpha=0.15)
    if windows:
        from nanoseg.insitu.theory import lsw_distribution

        u = np.linspace(0, 2.5, 300)
        ax.plot(u, lsw_distribution(u), "k--", lw=1.5, label="LSW")
    ax.set_xlabel("r / ⟨r⟩")
    ax.set_ylabel("probability density")
    ax.set_title("size distribution over time")
    ax.legend(fontsize=7)
    return fig or ax.figure


def plot_kinetics(stats: pd.DataFrame, fits: pd.DataFrame, axes=None):
    """⟨r⟩(t) with error bars and the fitted laws; ⟨r⟩³ vs t on the right."""
    import matplotlib.pyplot as plt

    from nanoseg.insitu.kinetics import coarsening_radius

    fig = None
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    s = stats[stats["n_particles"] >= 2]
    t = s["time_s"].to_numpy(float)
    axes[0].errorbar(t, s["mean_radius_nm"], yerr=s["radius_sem_nm"], fmt="o", ms=3, color="k", label="⟨r⟩")
    tt = np.linspace(0, t.max() - t.min() if len(t) else 1, 200)
    for row, color in zip(fits.itertuples(), ["tab:red", "tab:blue", "tab:green", "tab:purple"], strict=False):
        label = f"{row.model}: n={row.n:.2f}±{row.n_std:.2f}, k={row.k:.3g}±{row.k_std:.2g}, ΔAIC={row.delta_aic:.1f}"
        axes[0].plot(tt + (t.min() if len(t) else 0), coarsening_radius(tt, row.r0_nm, row.k, row.n), color=color, label=label)
    axes[0].set_xlabel("time (s)")
    axes[0].set_ylabel("mean radius (nm)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("⟨r⟩ⁿ − ⟨r₀⟩ⁿ = k t")
    axes[1].plot(t, s["mean_radius_nm"] ** 3, "o", ms=3, color="k")
    three = fits[fits["model"] == "n=3"]
    if len(three):
        r = three.iloc[0]
        axes[1].plot(tt + t.min(), r.r0_nm**3 + r.k * tt, color="tab:blue", label=f"n=3: k={r.k:.3g} nm³/s")
        axes[1].legend(fontsize=7)
    axes[1].set_xlabel("time (s)")
    axes[1].set_ylabel("⟨r⟩³ (nm³)")
    return fig or axes[0].figure


def plot_frame_strip(series, tracks: pd.DataFrame, *, pixel_size_nm: float, n_frames: int = 4, max_labels: int = 60):
    """A strip of frames (evenly spaced) with each particle circled and labelled with its track id."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    n = len(series)
    picks = np.unique(np.linspace(0, n - 1, min(n_frames, n)).round().astype(int))
    fig, axes = plt.subplots(1, len(picks), figsize=(3.6 * len(picks), 3.8), squeeze=False)
    for ax, i in zip(axes[0], picks, strict=True):
        frame = series[int(i)]
        img = frame.data
        lo, hi = np.percentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        rows = tracks[tracks["frame"] == i]
        for k, r in enumerate(rows.itertuples()):
            cy, cx = r.y_nm / pixel_size_nm, r.x_nm / pixel_size_nm
            ax.add_patch(Circle((cx, cy), r.diameter_nm / 2 / pixel_size_nm, fill=False, color="yellow", lw=0.7))
            if k < max_labels:
                ax.text(cx, cy, str(r.track_id), color="cyan", fontsize=6, ha="center", va="center")
        ax.set_title(f"frame {i}  t = {series.times_s[i]:.3g} s", fontsize=9)
        ax.set_axis_off()
    return fig


def write_figures(result, *, series=None, gif: bool = False) -> dict[str, Path]:
    """Write the figures of a :class:`~nanoseg.insitu.stream.TrackResult` into ``out_dir/figures``
    (``tracks.gif`` too with ``gif=True``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    out = Path(result.out_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    paths = {"size_vs_time": _save(plot_size_vs_time(result.tracks, result.lineage), out / "size_vs_time.png")}
    if len(result.psd):
        paths["psd_evolution"] = _save(plot_psd_evolution(result.psd), out / "psd_evolution.png")
    if len(result.fits):
        paths["kinetics_fit"] = _save(plot_kinetics(result.stats, result.fits), out / "kinetics_fit.png")
    px = result.summary.get("pixel_size_nm")
    if series is not None and px:
        paths["frame_strip"] = _save(plot_frame_strip(series, result.tracks, pixel_size_nm=px),
                                     out / "frame_strip.png")
        if gif:
            paths["tracks_gif"] = write_annotated_gif(series, result.tracks, out / "tracks.gif", pixel_size_nm=px)
    return paths


def write_annotated_gif(series, tracks: pd.DataFrame, path, *, pixel_size_nm: float, max_frames: int = 40,
                        max_size_px: int = 384, fps: float = 5.0) -> Path:
    """An animated GIF of the movie with every tracked particle circled in its track's colour.

    A particle keeps its colour as long as it keeps its track id, so identity switches are visible by eye.
    At most ``max_frames`` evenly spaced frames, block-averaged to at most ``max_size_px`` per side; frames are
    loaded one at a time.
    """
    import imageio.v3 as iio
    from skimage.draw import circle_perimeter

    n = len(series)
    picks = np.unique(np.linspace(0, n - 1, min(max_frames, n)).round().astype(int))
    palette = (np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                         [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                         [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
                         [170, 255, 195]], dtype=np.uint8))
    images = []
    for i in picks:
        img = series[int(i)].data
        b = max(1, int(np.ceil(max(img.shape) / max_size_px)))
        h, w = (img.shape[0] // b) * b, (img.shape[1] // b) * b
        small = img[:h, :w].reshape(h // b, b, w // b, b).mean(axis=(1, 3))
        lo, hi = np.percentile(small, [1, 99])
        gray = (np.clip((small - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        for r in tracks[tracks["frame"] == i].itertuples():
            rr, cc = circle_perimeter(int(round(r.y_nm / pixel_size_nm / b)), int(round(r.x_nm / pixel_size_nm / b)),
                                      max(1, int(round(r.diameter_nm / 2 / pixel_size_nm / b))), shape=rgb.shape[:2])
            rgb[rr, cc] = palette[int(r.track_id) % len(palette)]
        images.append(rgb)
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(images), extension=".gif", duration=1000.0 / fps, loop=0)
    return path
