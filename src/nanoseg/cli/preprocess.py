"""``nanoseg preprocess``: run a preprocessing pipeline over many microscope files."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, cli_error_text, console, fail_if, writable_folder


@app.command()
def preprocess(
    inputs: list[Path] = typer.Argument(..., help="Microscope files (dm3/dm4/emd/ser/mrc/tif/png/npy).",
                                        show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if needed)."),
    pipeline: str = typer.Option("default", "--pipeline", "-p",
                                 help="Pipeline spec: a YAML file with a 'steps:' list, or a built-in name "
                                      "(sytwu, horwath, default)."),
    fmt: str = typer.Option("tif", "--format", "-f",
                            help="Output format: tif (calibrated ImageJ TIFF) or npy (+ a .json sidecar "
                                 "with pixel size, dose and the pipeline)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that already exist "
                                                              "(by default they are skipped, so reruns resume)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Preprocess microscope images with a pipeline; outputs keep the input's stem and calibration.

    Unreadable or bad files are skipped and listed at the end (exit code 1 if any failed).

    Example: nanoseg preprocess raw/*.dm4 --out pre --pipeline examples/pipelines/sytwu.yaml
    """
    from nanoseg.preprocess import process_files

    writable_folder(out)
    report = process_files(inputs, out, pipeline=pipeline, fmt=fmt, overwrite=overwrite, progress=progress)
    console.print(cli_error_text(report.summary()), highlight=False)
    fail_if(not report.ok)
