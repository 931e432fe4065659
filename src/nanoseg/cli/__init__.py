"""``nanoseg <verb>``: a thin layer over the Python API.

Each verb lives in its own module (``nanoseg.cli.<verb>``) that decorates functions with
``@app.command()``; this package imports the ones listed in :data:`VERBS`. User mistakes raise
:class:`nanoseg.errors.NanosegError`, printed here as one line with exit code 2.
"""

from __future__ import annotations

import importlib
import sys

from nanoseg.cli._app import app, cli_error_text, console
from nanoseg.errors import NanosegError

VERBS = ["demo", "info", "preprocess", "simulate", "train", "predict", "evaluate", "study", "explain",
         "track", "watch", "report", "export"]


def _register_verbs() -> None:
    for verb in VERBS:
        try:
            importlib.import_module(f"nanoseg.cli.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name != f"nanoseg.cli.{verb}":
                raise


_register_verbs()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="nanoseg")
    except NanosegError as exc:
        console.print(f"[bold red]error:[/] {cli_error_text(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main"]
