"""``nanoseg explain``: what a segmentation network looks at, as figures, tables and an HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console


@app.command()
def explain(
    model: str = typer.Argument(..., help="A checkpoint (folder or .nanoseg file), or 'default' for the shipped "
                                          "model."),
    source: Path = typer.Argument(..., help="An image file (dm3/dm4/emd/ser/mrc/tif/png/npy) or a dataset "
                                            "directory (its masks are used).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for report.html, figures and CSV tables."),
    mask: Path | None = typer.Option(None, "--mask", "-m", help="True mask of a single image (png/tif/npy); "
                                                                "without one, ablation Dice is measured "
                                                                "against the model's own prediction."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Pixel size in nm (overrides the "
                                                                       "file's calibration)."),
    max_images: int = typer.Option(4, "--max-images", min=1, help="Dataset images used for the ablation."),
    crop: int = typer.Option(160, "--crop", min=16, help="Crop size (px) for the occlusion/saliency maps."),
    occlusion: bool = typer.Option(True, "--occlusion/--no-occlusion",
                                   help="Compute the occlusion map (one forward pass per patch position)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Raw output maps, frequency ablation (low/high-pass, lattice band-stop, Bragg), occlusion and
    gradient saliency, and line profiles of one model on an image or a dataset, in DIR/report.html.

    Example: nanoseg explain default frame.dm4 --out explain-frame --mask frame_mask.png --pixel-size 0.18
    """
    from nanoseg.explain.report import explain_report

    result = explain_report(model, source, out, mask=mask, pixel_size_nm=pixel_size, max_images=max_images,
                            crop_px=crop, occlusion=occlusion, progress=progress)
    ablation = result.tables["ablation"]
    for row in ablation.itertuples():
        console.print(f"  {row.band:<40} Dice {row.dice:.3f}  drop {row.drop:+.3f}", highlight=False)
    console.print(f"report: {result.report}", highlight=False)


@app.command("explain-study")
def explain_study(
    spec: Path = typer.Argument(..., help="A Horwath-style study spec (examples/studies/horwath.yaml).",
                                show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Study folder (created; reused to resume)."),
    size: str | None = typer.Option(None, "--size", help="The spec's size entry: small or full."),
    scheduler: str = typer.Option("sync", "--scheduler",
                                  help="'sync' (this process), 'local' (a Dask LocalCluster) or a scheduler "
                                       "address tcp://host:8786."),
    max_ablation_images: int = typer.Option(4, "--ablation-images", min=1,
                                            help="Test frames used for each model's frequency ablation."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Run the Horwath study: derive the blurred / auto-labelled training sets from simulated frames, train
    every architecture on each (nanoseg.study), and evaluate all models on unblurred test frames (thresholds,
    Otsu, sizes, frequency ablation); writes OUT/report.html and CSV tables. Reruns resume.

    Example: nanoseg explain-study examples/studies/horwath.yaml --out runs/horwath --size small
    """
    from nanoseg.explain.horwath import run_horwath

    result = run_horwath(spec, out, size=size, scheduler=None if scheduler == "local" else scheduler,
                         max_ablation_images=max_ablation_images, progress=progress)
    console.print(f"report: {result.report}", highlight=False)
