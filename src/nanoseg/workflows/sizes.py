"""The size section of a predict report: D10/D50/D90, mean ± sd with bootstrap intervals and a size histogram.

The numbers come from :func:`nanoseg.evaluate.sizes.size_statistics_table` on the particles of every
``<stem>.particles.csv`` of a predict folder, pooled over the images (also for a single micrograph). The
section states what they assume: where each pixel size came from, that particles cut by the frame are left
out (with their Miles–Lantuéjoul weights when the folder has them), the detection limit (the run's
``--min-diameter``), and the per-image quality estimate when the prediction JSON records one.

Example
-------
>>> # section = size_section(predict_folder, figures_dir=predict_folder)   # also writes size_statistics.csv
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg._pixel import above_min_diameter
from nanoseg.report import Section

#: bootstrap replicates and seed of the report's intervals (stated in the section)
REPORT_N_BOOT = 1000
REPORT_SEED = 0


def size_histogram(diameters_nm, weights, stats: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Histogram of the diameters (weighted when ``weights`` is given) with D10/D50/D90 and the detection limit."""
    from nanoseg.report.figures import pyplot, save_figure

    plt = pyplot()
    d = np.asarray(diameters_nm, dtype=float)
    values = stats.set_index("statistic")["value"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if d.size:
        bins = np.histogram_bin_edges(d, bins="auto" if d.size > 5 else 5)
        ax.hist(d, bins=bins, weights=weights, color="C0", alpha=0.7,
                label=f"{d.size} particles" + (" (Miles–Lantuéjoul weighted)" if weights is not None else ""))
        for name, style in (("D10", ":"), ("D50", "-"), ("D90", "--")):
            if np.isfinite(values[name]):
                ax.axvline(values[name], color="k", linestyle=style, label=f"{name} = {values[name]:.2f} nm")
    limit = values.get("detection limit", np.nan)
    if np.isfinite(limit):
        ax.axvline(limit, color="C3", linestyle="-.", label=f"detection limit {limit:g} nm")
    ax.set(xlabel="equivalent-circle diameter (nm)",
           ylabel="particles (weighted)" if weights is not None else "particles")
    ax.legend(fontsize=8)
    ax.set_title("size histogram")
    return save_figure(fig, path)


def _pixel_size_source(meta: dict, settings: dict) -> str:
    """Where the particle table's pixel size came from, in words."""
    if settings.get("pixel_size_nm") is not None:
        return f"--pixel-size-nm {settings['pixel_size_nm']:g} nm (given, replacing the file's)"
    if meta.get("pixel_size_nm") is None and meta.get("particle_table_pixel_size_nm") is not None:
        return (f"assumed: the model's training pixel size {meta['particle_table_pixel_size_nm']:g} nm "
                "(--assume-model-pixel-size)")
    return "pixel size from the file" if meta.get("pixel_size_nm") is not None else "unknown"


def _quality(meta: dict) -> dict:
    """The prediction JSON's per-image quality estimate(s): numeric top-level fields named ``*quality*``."""
    return {k: v for k, v in meta.items() if "quality" in k.lower() and isinstance(v, int | float)}


def size_section(folder: Path, images: list[tuple[str, dict]], *, figures_dir: Path | None = None) -> Section:
    """The "Particle sizes" section for the predict ``folder`` (``images``: (stem, metadata) of each image).

    Writes ``size_statistics.csv`` and ``size_histogram.png`` into ``figures_dir`` (default ``folder``).
    """
    from nanoseg.evaluate.sizes import size_statistics_table
    from nanoseg.workflows.predict import SETTINGS_FILE

    figures_dir = Path(figures_dir or folder)
    settings_path = folder / SETTINGS_FILE
    settings = {}
    if settings_path.exists():
        try:
            settings = json.loads(settings_path.read_text()).get("settings") or {}
        except (json.JSONDecodeError, AttributeError):
            settings = {}
    limit = settings.get("min_diameter_nm")
    tables, per_image, sources, warnings = [], [], {}, []
    for stem, meta in images:
        path = folder / f"{stem}.particles.csv"
        if not path.exists():
            continue
        try:
            table = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            continue
        if "diameter_nm" not in table.columns:
            continue
        table["image"] = stem
        tables.append(table)
        sources.setdefault(_pixel_size_source(meta, settings), []).append(stem)
        one = size_statistics_table(table, n_boot=0, detection_limit_nm=limit).set_index("statistic")["value"]
        per_image.append({"image": stem, "N used": int(one["N used"]), "N border-excluded": int(one["N border-excluded"]),
                          "D50_nm": one["D50"], "mean_nm": one["mean"], "sd_nm": one["sd"], **_quality(meta)})
    if not tables:
        return Section("Particle sizes", text="No particle tables in this folder (no pixel size?), so no sizes.")
    pooled = pd.concat(tables, ignore_index=True)
    weighted = "ml_weight" in pooled.columns and all("ml_weight" in t.columns for t in tables)
    if not weighted and "ml_weight" in pooled.columns:
        pooled = pooled.drop(columns="ml_weight")
        warnings.append("some particle tables lack ml_weight: every particle counts once")
    stats = size_statistics_table(pooled, n_boot=REPORT_N_BOOT, seed=REPORT_SEED, detection_limit_nm=limit)
    from nanoseg._util import atomic_path

    with atomic_path(figures_dir / "size_statistics.csv") as tmp:
        stats.to_csv(tmp, index=False)
    inside = pooled[~pooled["touches_edge"].astype(bool)] if "touches_edge" in pooled.columns else pooled
    inside = inside[above_min_diameter(inside["diameter_nm"], limit)]  # the one minimum-size cut
    figure = size_histogram(inside["diameter_nm"], inside["ml_weight"] if weighted else None, stats,
                            figures_dir / "size_histogram.png")
    border = ("Particles touching the frame border are left out (their size is cut) and every other particle "
              "carries its Miles–Lantuéjoul weight W·H / ((W − w)(H − h)), which corrects for large particles "
              "being cut more often" if weighted else
              "Particles touching the frame border are left out (their size is cut); this folder's tables have "
              "no Miles–Lantuéjoul weights (written by an older nanoseg), so the statistics are not corrected for "
              "large particles being cut more often")
    limit_text = (f"Detection limit: {limit:g} nm, the run's --min-diameter-nm (smaller particles are not counted; "
                  "the model's recall near this size is not measured here)" if limit is not None else
                  "Detection limit: unknown (no predict_settings.json)")
    pixel_text = "; ".join(f"{source}: {', '.join(stems[:5])}{' …' if len(stems) > 5 else ''}"
                           for source, stems in sources.items())
    quality = any(len(row) > 6 for row in per_image)
    quality_text = ("The per-image quality estimate recorded by predict is in the per-image table." if quality else
                    "This predict run records no per-image quality estimate.")
    text = (f"Equivalent-circle diameters pooled over {len(tables)} image(s). D10/D50/D90 are quantiles of the "
            f"number distribution; intervals are {round(100 * stats.attrs['confidence'])} % percentile bootstrap "
            f"intervals ({REPORT_N_BOOT} replicates resampling particles, seed {REPORT_SEED}); sd is the spread of "
            f"the sizes, not the error of the mean.\n\n{border}.\n\n{limit_text}.\n\nPixel size — {pixel_text}."
            f"\n\n{quality_text} Numbers: size_statistics.csv.")
    tables_out = [stats]
    if len(per_image) > 1 or quality:
        tables_out.append(pd.DataFrame(per_image))
    return Section("Particle sizes", text=text, tables=tables_out, warnings=warnings,
                   figures=[(figure, "Size histogram with D10, D50, D90 and the detection limit")])


__all__ = ["size_histogram", "size_section", "REPORT_N_BOOT", "REPORT_SEED"]
