"""``nanoseg explain [model|study|rf]``: what a segmentation network looks at, as figures, tables and an HTML report.

``nanoseg explain MODEL IMAGE`` is ``nanoseg explain model MODEL IMAGE``; ``explain-study`` and ``explain-rf`` are
hidden aliases of ``explain study`` and ``explain rf`` for one release.
"""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import DefaultCommandGroup, app, console, writable_folder
from nanoseg.errors import NanosegError

LATTICE_HELP = ("Known lattice spacings in nm, comma-separated (Au: 0.235,0.204), for the band-stop and Bragg "
                "ablations; default: the peaks found in the power spectrum.")


def _parse_numbers(text: str, option: str, kind=float) -> list:
    """``"1,2,3"`` → ``[1.0, 2.0, 3.0]`` (``kind`` per item), or a one-line error naming ``option``."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise NanosegError(f"{option} must be numbers separated by commas, got {text!r}",
                           hint=f"e.g. {option} 1,2,3")
    return values


def parse_spacings_nm(text: str | None) -> list[float] | None:
    """``"0.235,0.204"`` → ``[0.235, 0.204]``; None or empty → None.

    >>> parse_spacings_nm("0.235, 0.204")
    [0.235, 0.204]
    """
    if not text or not text.strip():
        return None
    return _parse_numbers(text, "--lattice-nm")


explain_app = typer.Typer(
    cls=DefaultCommandGroup,
    help=("What a segmentation network looks at: `explain model` (one model on images; `nanoseg explain MODEL IMAGE` "
          "for short), `explain study` (the Horwath study), `explain rf` (receptive field vs parameters)."),
    no_args_is_help=True,
)
app.add_typer(explain_app, name="explain")


@explain_app.command("model")
def explain(
    model: str = typer.Argument(..., help="A checkpoint (folder or .nanoseg file), or 'default' for the shipped "
                                          "model."),
    source: Path = typer.Argument(..., help="An image file (dm3/dm4/emd/ser/mrc/tif/png/npy) or a dataset "
                                            "directory (its masks are used).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for report.html, figures and CSV tables."),
    mask: Path | None = typer.Option(None, "--mask", "-m", help="True mask of a single image (png/tif/npy); "
                                                                "without one, ablation Dice is measured "
                                                                "against the model's own prediction."),
    pixel_size: float | None = typer.Option(None, "--pixel-size-nm", help="Pixel size in nm (overrides the "
                                                                       "file's calibration)."),
    max_images: int = typer.Option(4, "--max-images", min=1, help="Dataset images used for the ablation."),
    crop: int = typer.Option(160, "--crop-px", min=16, help="Crop size (px) for the occlusion/saliency maps."),
    occlusion: bool = typer.Option(True, "--occlusion/--no-occlusion",
                                   help="Compute the occlusion map (one forward pass per patch position)."),
    lattice_nm: str | None = typer.Option(None, "--lattice-nm", help=LATTICE_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Raw output maps, frequency ablation (low/high-pass, lattice band-stop, Bragg), occlusion and
    gradient saliency, and line profiles of one model on an image or a dataset, in DIR/report.html.

    Example: nanoseg explain default frame.dm4 --out explain-frame --mask frame_mask.png --pixel-size-nm 0.18

    Known lattice: nanoseg explain default frame.tif --out explain-lattice --pixel-size-nm 0.05 --lattice-nm 0.235,0.204
    """
    from nanoseg.explain.report import explain_report

    writable_folder(out)
    result = explain_report(model, source, out, mask=mask, pixel_size_nm=pixel_size, max_images=max_images,
                            crop_px=crop, occlusion=occlusion, lattice_spacings_nm=parse_spacings_nm(lattice_nm),
                            progress=progress)
    ablation = result.tables["ablation"]
    for row in ablation.itertuples():
        console.print(f"  {row.band:<40} Dice {row.dice:.3f}  drop {row.drop:+.3f}", highlight=False)
    console.print(f"report: {result.report}", highlight=False)


@explain_app.command("study")
def explain_study(
    spec: Path = typer.Argument(..., help="A Horwath-style study spec (examples/studies/horwath.yaml).",
                                show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Study folder (created; reused to resume)."),
    size: str | None = typer.Option(None, "--size", help="The spec's size entry (horwath.yaml: cpu, fringes, "
                                                          "small, full; mini sizes for history)."),
    scheduler: str = typer.Option("sync", "--scheduler",
                                  help="'sync' (this process), 'local' (a Dask LocalCluster) or a scheduler "
                                       "address tcp://host:8786."),
    max_ablation_images: int = typer.Option(4, "--ablation-images", min=1,
                                            help="Test frames used for each model's frequency ablation."),
    lattice_nm: str | None = typer.Option(None, "--lattice-nm", help=LATTICE_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Run the Horwath study: derive the blurred / auto-labelled training sets from simulated frames, train
    every architecture on each (nanoseg.study), and evaluate all models on unblurred test frames (thresholds,
    Otsu, sizes, frequency ablation); writes OUT/report.html and CSV tables. Reruns resume.

    Example: nanoseg explain study examples/studies/horwath.yaml --out runs/horwath --size small

    Fringes resolved: nanoseg explain study examples/studies/horwath.yaml --out runs/horwath-fringes
    --size fringes --lattice-nm 0.235,0.204
    """
    from nanoseg.workflows.horwath import run_horwath

    writable_folder(out)
    result = run_horwath(spec, out, size=size, scheduler=None if scheduler == "local" else scheduler,
                         max_ablation_images=max_ablation_images,
                         lattice_spacings_nm=parse_spacings_nm(lattice_nm), progress=progress)
    console.print(f"report: {result.report}", highlight=False)


@explain_app.command("rf")
def explain_receptive_field(
    train: list[Path] = typer.Argument(..., help="Training dataset directory (or several).", show_default=False),
    test: Path = typer.Option(..., "--test", help="Dataset directory to score every variant on (hard Dice); "
                                                  "keep it separate from the training images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one checkpoint per variant, "
                                                      "receptive_field.csv and receptive_field.png (reruns resume)."),
    architecture: str = typer.Option("sytwu_resunet", "--architecture",
                                     help="sytwu_resunet, norm_unet, twoconv_unet or twoconv_norm_unet."),
    dilations: str = typer.Option("1,2,3", "--dilations",
                                  help="Dilations of the receptive-field axis (parameters fixed)."),
    widths: str = typer.Option("0.5,1,2", "--widths",
                               help="Width factors of the parameter axis (receptive field fixed)."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Epochs per variant."),
    patch_size: int = typer.Option(64, "--patch-size-px", min=8, help="Training patch side (px)."),
    stride: int | None = typer.Option(None, "--stride-px", min=1, help="Patch stride (px); default: the patch size."),
    seeds: str = typer.Option("0", "--seeds", help="Training seeds (the table gives mean and std over them)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Receptive field vs parameter count (Sytwu et al. 2022): train one architecture with growing dilation
    (receptive field up, parameters fixed) and growing width (parameters up, receptive field fixed), then
    score every variant on the test set.

    Example: nanoseg explain rf data/train --test data/test --out runs/rf --dilations 1,2,3 --widths 0.5,1,2
    --epochs 30 --patch-size-px 128 --stride-px 64
    """
    from nanoseg.explain.receptive import receptive_field_study

    writable_folder(out)
    training = {"epochs": epochs, "patch_size": patch_size, "stride": stride}
    table = receptive_field_study([str(t) for t in train], test, out, architecture=architecture,
                                  dilations=_parse_numbers(dilations, "--dilations", int),
                                  width_factors=_parse_numbers(widths, "--widths"),
                                  training={k: v for k, v in training.items() if v is not None},
                                  seeds=_parse_numbers(seeds, "--seeds", int), progress=progress)
    for row in table.itertuples():
        console.print(f"  {row.axis:<16} {row.variant:<24} RF {row.receptive_field_px:>4} px  "
                      f"{row.n_parameters:>7,} parameters  Dice {row.dice:.3f} ± {row.dice_std:.3f}",
                      highlight=False)
    console.print(f"table: {Path(out) / 'receptive_field.csv'}", highlight=False)
