"""``nanoseg predict``: segment microscope files with a model, an ensemble, or the default model."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, cli_error_text, console, fail_if, writable_folder
from nanoseg.errors import NanosegError


def parse_threshold(text: str) -> float | str:
    """'otsu' or a number in (0, 1)."""
    if text.strip().lower() == "otsu":
        return "otsu"
    try:
        value = float(text)
    except ValueError:
        raise NanosegError(f"--threshold must be a number in (0, 1) or 'otsu', got {text!r}") from None
    if not 0 < value < 1:
        raise NanosegError(f"--threshold must lie strictly between 0 and 1, got {value}")
    return value


@app.command()
def predict(
    inputs: list[Path] = typer.Argument(..., help="Microscope files (dm3/dm4/emd/ser/mrc/tif/png/npy).",
                                        show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if needed)."),
    model: str = typer.Option(None, "--model", "-m",
                              help="auto (default): the shipped model that fits each image (HRTEM below 0.1 nm/px "
                                   "or with lattice fringes, else bf_tem for dark particles, haadf_stem for bright "
                                   "ones; said per file); default (the HRTEM model), bf_tem, haadf_stem; or a "
                                   "checkpoint folder, .nanoseg file, or an .onnx/.pt file of `nanoseg export`."),
    ensemble: Path = typer.Option(None, "--ensemble",
                                  help="Folder of checkpoints (e.g. the k fold models): mean probability "
                                       "+ per-pixel variance."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: average the 8 rotations/flips."),
    pixel_size: float = typer.Option(None, "--pixel-size-nm", help="Pixel size in nm (overrides the file's)."),
    assume_model_pixel_size: bool = typer.Option(
        False, "--assume-model-pixel-size",
        help="For files without a pixel size: assume the model's training pixel size."),
    particle_diameter: float = typer.Option(
        None, "--particle-diameter-px",
        help="For files without a pixel size: their typical particle diameter in pixels; the pixel size is then "
             "assumed to put it at the model's typical training particle size (default: estimated from the image)."),
    pipeline: str = typer.Option(
        None, "--pipeline",
        help="Preprocessing instead of the model card's: a built-in pipeline (sytwu, horwath, default) or a "
             "YAML/JSON file with the step list (steps: [...], or a training spec's preprocessing: [...] as in "
             "examples/train/default_model.yaml). Each <stem>.json records what ran."),
    threshold: str = typer.Option("0.5", "--threshold", "-t", help="Probability threshold in (0, 1), or 'otsu'."),
    min_diameter: float = typer.Option(0.5, "--min-diameter-nm", help="Smallest particle kept in the tables (nm)."),
    tile_size: str = typer.Option("auto", "--tile-size-px", help="Tile side in pixels at the model's pixel size; "
                                                             "0 = whole frame in one pass; auto = 4096 on CPU, "
                                                             "2048 on GPU (docs/performance.md)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Tiles per forward pass (default 1 CPU, 8 GPU)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    engine: str = typer.Option("auto", "--engine", help="auto, eager, fused, jit, compile, onnx or cuda "
                                                        "(see docs/performance.md)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786)."),
    workers: int = typer.Option(None, "--workers", help="Run on a local Dask cluster with this many workers."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo finished inputs, also with new settings (default: skip = resume, same "
                                                        "settings only)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Segment nanoparticles in microscope files.

    Writes per input: <stem>.mask.tif (calibrated), <stem>.probability.tif, <stem>.particles.csv,
    <stem>.overlay.png and <stem>.json (warnings, out-of-distribution flags); <stem>.variance.tif with
    --ensemble or --tta. Bad files are skipped and listed (exit code 1); reruns with the same settings skip
    finished files, reruns with another model, threshold, --tta, --pixel-size-nm, --tile-size-px or --min-diameter-nm are
    refused (--overwrite redoes them).

    Example: nanoseg predict frames/*.dm4 --out masks --ensemble runs/cv5 --tta --pixel-size-nm 0.02
    """
    from nanoseg.workflows.predict import predict_files

    writable_folder(out)
    if model is not None and ensemble is not None:
        raise NanosegError("give either --model or --ensemble, not both")
    chosen = str(ensemble) if ensemble is not None else (model or "auto")
    extra = _scale_and_pipeline(particle_diameter, pipeline)
    result = predict_files(
        inputs, out, chosen, overwrite=overwrite, progress=progress, scheduler=scheduler, workers=workers,
        min_diameter_nm=min_diameter, threshold=parse_threshold(threshold), tta=tta, pixel_size_nm=pixel_size,
        assume_model_pixel_size=assume_model_pixel_size, tile_size=_tile_size(tile_size), batch_size=batch_size,
        device=device, engine=engine, **extra,
    )
    if pipeline is not None:
        console.print(f"preprocessing: --pipeline {pipeline} ran instead of the model card's (see each <stem>.json)",
                      highlight=False)
    for name, notes in result.warnings.items():
        for note in notes:
            console.print(f"[yellow]warning:[/] {name}: {cli_error_text(note)}", highlight=False)
    console.print(cli_error_text(result.report.summary()), highlight=False)
    fail_if(not result.ok)


def _scale_and_pipeline(particle_diameter: float | None, pipeline: str | None) -> dict:
    """The predict options of --particle-diameter-px and --pipeline (the pipeline as its step list, so that a
    resumed folder compares what ran, not a file name); only those given, so older folders still resume."""
    extra: dict = {}
    if particle_diameter is not None:
        if not particle_diameter > 0:
            raise NanosegError(f"--particle-diameter-px must be a positive number of pixels, got {particle_diameter}")
        extra["particle_diameter_px"] = float(particle_diameter)
    if pipeline is not None:
        from nanoseg.preprocess import Pipeline

        extra["pipeline"] = Pipeline.from_spec(pipeline).to_spec()
    return extra


def _tile_size(text: str) -> int | str | None:
    """``--tile-size-px``: "auto", 0 (whole frame) or a positive number of pixels."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise NanosegError(f"--tile-size-px must be 'auto' or a whole number of pixels, got {text!r}") from None
    if value < 0:
        raise NanosegError(f"--tile-size-px must be ≥ 0, got {value}", hint="0 runs the whole frame in one pass")
    return value or None

