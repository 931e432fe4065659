"""The Typer application and the console shared by every verb module in ``nanoseg.cli``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from nanoseg.errors import NanosegError

app = typer.Typer(
    name="nanoseg",
    help=(
        "Segment nanoparticles in HRTEM images, know when to trust the result, and turn in situ movies "
        "into coarsening kinetics.\n\nStart with `nanoseg demo`, or `nanoseg info frame.dm4` on one of your files."
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


def writable_folder(folder: Path, option: str = "--out") -> Path:
    """Create ``folder`` (with parents) and prove a file can be written in it, before any work starts.

    Any failure (a regular file in the way, no permission, a read-only disk) becomes one
    :class:`NanosegError` line: ``cannot write to OUT: <reason>; choose another --out``.
    """
    from nanoseg._util import probe_writable

    folder = Path(folder)
    try:
        probe_writable(folder)
    except OSError as exc:
        raise NanosegError(f"cannot write to {folder}: {exc.strerror or exc}; choose another {option}") from None
    return folder
