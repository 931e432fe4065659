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
    from nanoseg.workflows.evaluate import evaluate_folder

    writable_folder(out)
    run = evaluate_folder(source, dataset, out, threshold=threshold, smooth=smooth, iou_thresholds=iou,
                          reference_sizes=sizes, size_column=size_column, min_diameter_nm=min_diameter, tta=tta,
                          device=device, n_worst=worst, progress=progress,
                          on_start=lambda line: console.print(line, highlight=False))
    for line in run.summary_lines():
        console.print(line, highlight=False)
    written = run.written
    console.print(f"[green]wrote[/] {len(written)} files to {out}", highlight=False)
