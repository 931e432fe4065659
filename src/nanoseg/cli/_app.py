"""The Typer application and the console shared by every verb module in ``nanoseg.cli``."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="nanoseg",
    help=(
        "Segment nanoparticles in HRTEM images, know when to trust the result, and turn in situ movies "
        "into coarsening kinetics.\n\nStart with `nanoseg demo`, or `nanoseg info FILE`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


def fail_if(report_failed: bool, message: str = "some items failed; see the list above") -> None:
    """Exit with code 1 after a batch where some items failed (finished items are kept)."""
    if report_failed:
        console.print(f"[yellow]{message}[/]")
        raise typer.Exit(code=1)
