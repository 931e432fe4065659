"""``nanoseg evaluate``: score predictions (or a model) against a dataset's ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder


@app.command()
def evaluate(
    source: str = typer.Argument(..., help="A folder written by `nanoseg predict`, or a model to run first "
                                           "(checkpoint folder, .nanoseg file, folder of checkpoints, 'default')."),
    dataset: Path = typer.Argument(..., help="A nanoseg dataset folder (images.zarr, masks.zarr, meta.parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for tables and figures."),
    threshold: str = typer.Option("0.5", "--threshold", "-t", help="Operating threshold in (0, 1), or 'otsu'."),
    smooth: float = typer.Option(1.0, "--smooth", help="Dice smoothing s: (2|A∩B|+s)/(|A|+|B|+s)."),
    iou: list[float] = typer.Option([0.5, 0.75], "--iou", help="IoU thresholds for particle matching."),
    sizes: Path = typer.Option(None, "--sizes", help="CSV of manual particle sizes (nm) to compare the "
                                                     "predicted size distribution against."),
    size_column: str = typer.Option(None, "--size-column", help="Column of --sizes holding the sizes in nm."),
    min_diameter: float = typer.Option(0.5, "--min-diameter-nm", help="Ignore particles smaller than this "
                                                                   "equivalent diameter (nm), both sides."),
    tta: bool = typer.Option(False, "--tta", help="With a model: test-time augmentation."),
    device: str = typer.Option("auto", "--device", help="With a model: auto, cpu or cuda."),
    worst: int = typer.Option(4, "--worst", help="How many worst images to show in worst_cases.png."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Score segmentations: pixel, particle and size-distribution metrics, threshold curves, worst cases.

    Writes metrics.csv (one row per image), summary.csv (mean ± std over images, pooled scores, size
    distributions), thresholds.csv, particles_pred.csv / particles_true.csv, threshold_curves.png,
    size_distribution.png and worst_cases.png.

    Example: nanoseg evaluate default data/au5 --out eval --sizes manual_sizes.csv
    """
    from nanoseg.cli.predict import parse_threshold
    from nanoseg.datasets import open_dataset
    from nanoseg.evaluate import (
        evaluate_dataset,
        read_size_measurements,
        resolve_predictions,
        write_evaluation,
    )

    writable_folder(out)
    ds = open_dataset(dataset)
    loader, kind = resolve_predictions(source, ds, tta=tta, device=device)
    reference = None if sizes is None else read_size_measurements(sizes, column=size_column)
    console.print(f"evaluating {len(ds)} images ({'running model ' + source if kind == 'model' else source})",
                  highlight=False)
    ev = evaluate_dataset(ds, loader, threshold=parse_threshold(threshold), smooth=smooth, iou_thresholds=iou,
                          min_diameter_nm=min_diameter, reference_sizes_nm=reference, n_worst=worst,
                          progress=progress)
    written = write_evaluation(ev, out)
    s = ev.summary.set_index(["metric", "kind"])["mean"]
    std = ev.summary.set_index(["metric", "kind"])["std"]
    for name in ("dice", "f1@0.5", "pq@0.5"):
        if (name, "per-image mean") in s.index:
            console.print(f"{name}: {s[(name, 'per-image mean')]:.3f} ± {std[(name, 'per-image mean')]:.3f} "
                          "(per-image mean ± std)", highlight=False)
    if ("dice", "pooled") in s.index:
        console.print(f"dice (pooled over all pixels): {s[('dice', 'pooled')]:.3f}", highlight=False)
    sc = ev.size_comparison
    if sc.get("n_pred") and sc.get("n_ref"):
        console.print(f"sizes: mean {sc['mean_pred_nm']:.2f} nm vs {sc['mean_ref_nm']:.2f} nm ({sc['reference']}), "
                      f"KS {sc['ks_statistic']:.3f}, Wasserstein {sc['wasserstein_nm']:.3f} nm"
                      + (f"; {sc['note']}" if sc.get("note") else ""), highlight=False)
    console.print(f"[green]wrote[/] {len(written)} files to {out}", highlight=False)
