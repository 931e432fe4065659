"""``nanoseg demo``: the end-to-end demonstration (grows as modules land)."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for the demo's outputs.")) -> None:
    """Run the embedded end-to-end demo.

    Example: nanoseg demo --out demo-output
    """
    from nanoseg.demo import run_demo

    report = run_demo(out)
    console.print(f"[green]demo finished[/] → {report}")
