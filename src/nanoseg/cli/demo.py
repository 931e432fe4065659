"""``nanoseg demo``: the end-to-end demonstration that ``make demo`` runs."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for the demo's outputs."),
    frames: int = typer.Option(48, "--frames", min=3, help="Frames in the simulated movie."),
    model: str = typer.Option(None, "--model", help="Checkpoint to use instead of the shipped default model."),
) -> None:
    """Segment an example micrograph, then simulate, segment, track and analyse a coarsening movie.

    Writes OUT/report.html (self-contained) plus every table and figure. About 2–5 minutes on 2 CPU cores.

    Example: nanoseg demo --out demo-output
    """
    from nanoseg.workflows.demo import DemoSettings, run_demo

    writable_folder(out)
    report = run_demo(out, settings=DemoSettings(n_frames=frames), model=model)
    console.print(f"[green]demo finished[/] → open {report}")
