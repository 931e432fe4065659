"""``nanoseg report DIR``: an HTML report for any predict / track / evaluate / study output folder."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder


@app.command()
def report(
    folder: Path = typer.Argument(..., help="Output folder of `nanoseg predict`, `track`, `evaluate` or `study run`."),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write the HTML (default: FOLDER/report.html)."),
) -> None:
    """Build a self-contained HTML report (figures embedded) from a results folder.

    Example: nanoseg report tracked
    """
    from nanoseg.workflows.report import report_folder

    if out is not None:
        writable_folder(out.parent)
    elif folder.is_dir():
        writable_folder(folder)
    path = report_folder(folder, out=out)
    console.print(f"[green]report[/] → {path}")
