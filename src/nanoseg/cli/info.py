"""``nanoseg info``: what is in a microscope file (shape, calibration, dose, acquisition metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nanoseg.cli._app import app, cli_error_text, console, fail_if

_SHOWN = ("voltage_kV", "magnification", "exposure_s", "acquired", "microscope", "dose_tag", "title",
          "calibration_from", "calibration_note")


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.6g}{unit}"
    return f"{value}{unit}"


@app.command()
def info(
    files: list[Path] = typer.Argument(..., help="Image files (dm3 dm4 emd ser mrc tif png jpg npy)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per file (a JSON list)."),
    signal: str = typer.Option(None, "--signal", help="For files holding several images (Velox, TIA .emi, "
                               "multi-image DM/TIFF): the image to describe, by index or title."),
    pixel_size: float = typer.Option(None, "--pixel-size-nm", help="Pixel size in nm (overrides the file's)."),
) -> None:
    """Show shape, dtype, pixel size (nm), field of view, dose and main metadata of each file.

    Bad files are listed at the end, each with what to do about it, and make the exit code 1. A file
    holding several images lists them: pick one with --signal.

    Example: nanoseg info capture/*.dm4 --json
    """
    from nanoseg._util import BatchReport
    from nanoseg.io import describe

    report = BatchReport()
    results = []
    for path in files:
        with report.item(str(path)):
            results.append(describe(path, signal=signal, pixel_size_nm=pixel_size))
    if as_json:
        typer.echo(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            fov = r["field_of_view_nm"]
            lines = [
                f"[bold]{r['path']}[/] ({r['format']})",
                f"  shape         {' × '.join(str(n) for n in r['shape'])}"
                + (f"  ({r['n_frames']} frames)" if r["n_frames"] > 1 else "") + f"   dtype {r['dtype']}",
                f"  pixel size    {_fmt(r['pixel_size_nm'], ' nm')}"
                + (" (given)" if "pixel_size_from" in r["metadata"] else "")
                + (f"   field of view {fov[0]:.4g} × {fov[1]:.4g} nm" if fov else ""),
                f"  dose          {_fmt(r['dose_e_per_A2'], ' e/Å²')}",
            ]
            meta = r["metadata"]
            if meta.get("signals"):
                lines.append(f"  signal        {meta['signal_index']} of: {'; '.join(meta['signals'])}")
            for key in _SHOWN:
                if key in meta:
                    lines.append(f"  {key:<13} {_fmt(meta[key])}")
            typer.echo("\n".join(console.render_str(line).plain for line in lines))
    if report.failed:
        console.print(cli_error_text(report.summary()), highlight=False)
    fail_if(bool(report.failed), f"{len(report.failed)} of {len(files)} files could not be read")
