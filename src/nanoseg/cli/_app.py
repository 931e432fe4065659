"""The Typer application and the console shared by every verb module in ``nanoseg.cli``.

One vocabulary for every verb: units in flag names (``--pixel-size-nm``, ``--min-diameter-nm``,
``--frame-interval-s``), ``-o/--out`` for the output, ``--overwrite`` to start an output folder again,
sub-commands instead of hyphenated verbs (``nanoseg explain study``). The spellings they replaced are hidden
aliases for one release (:data:`FLAG_ALIASES`, :data:`VERB_ALIASES`), rewritten before a command parses its
arguments. Library errors name parameters (``pixel_size_nm=NM``); :func:`cli_error_text` names the flags
instead (:data:`PARAMETER_FLAGS`), so no library module needs to know the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
import typer.core
from rich.console import Console

from nanoseg.errors import NanosegError

# old flag → new flag (None: the old flag asked for the default and is dropped); applied to a command only
# when it has the new flag, so one table serves every verb
FLAG_ALIASES: dict[str, str | None] = {
    "--pixel-size": "--pixel-size-nm",
    "--min-diameter": "--min-diameter-nm",
    "--dt": "--frame-interval-s",
    "--assume-dt": "--assume-frame-interval-s",
    "--restart": "--overwrite",
    "--no-resume": "--overwrite",
    "--resume": None,
    "--tile-size": "--tile-size-px",
    "--crop": "--crop-px",
    "--patch-size": "--patch-size-px",
    "--stride": "--stride-px",
    "--poll": "--poll-s",
    "--idle-timeout": "--idle-timeout-s",
    "--report-every": "--report-every-s",
}
# old verb → its new words
VERB_ALIASES: dict[str, list[str]] = {"explain-study": ["explain", "study"], "explain-rf": ["explain", "rf"]}

# library parameter (as written in error hints: ``name=VALUE``) → the flag that sets it
PARAMETER_FLAGS: dict[str, str] = {
    "pixel_size_nm": "--pixel-size-nm",
    "assume_model_pixel_size": "--assume-model-pixel-size",
    "particle_diameter_px": "--particle-diameter-px",
    "min_diameter_nm": "--min-diameter-nm",
    "frame_interval_s": "--frame-interval-s",
    "assume_dt_s": "--assume-frame-interval-s",
    "poll_s": "--poll-s",
    "overwrite": "--overwrite",
    "restart": "--overwrite",
    "resume": "--overwrite",  # resume=False
    "out_dir": "--out",
    "out": "--out",
    "signal": "--signal",
    "device": "--device",
    "engine": "--engine",
    "tile_size": "--tile-size-px",
    "fmt": "--format",
    "workers": "--workers",
    "n_workers": "--workers",
    "scheduler": "--scheduler",
    "model": "--model",
    "mask": "--mask",
    "lattice_spacings_nm": "--lattice-nm",
    "pipeline": "--pipeline",
    "threshold": "--threshold",
}
_PARAMETER = re.compile(r"`?\b(" + "|".join(sorted(PARAMETER_FLAGS, key=len, reverse=True)) + r")=([^\s,;)`]*)`?")


def cli_error_text(message: str) -> str:
    """A library error with its parameters named as flags: ``pixel_size_nm=NM`` → ``--pixel-size-nm NM``.

    ``name=True`` / ``name=False`` become the bare flag (``resume=False`` → ``--overwrite``).

    >>> cli_error_text("pass pixel_size_nm=NM, or assume_model_pixel_size=True; or resume=False")
    'pass --pixel-size-nm NM, or --assume-model-pixel-size; or --overwrite'
    """
    def flag(match: re.Match) -> str:
        name, value = match[1], match[2]
        if value in ("True", "False", ""):
            return PARAMETER_FLAGS[name]
        return f"{PARAMETER_FLAGS[name]} {value.strip(chr(39))}"

    return _PARAMETER.sub(flag, message)


def _flags_of(command) -> set[str]:
    return {opt for param in getattr(command, "params", []) for opt in (*param.opts, *param.secondary_opts)}


def rewrite_aliases(command, args: list[str]) -> list[str]:
    """``args`` for ``command`` with the old flag spellings of :data:`FLAG_ALIASES` replaced by the new ones."""
    known, out = _flags_of(command), []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        name, eq, value = arg.partition("=")
        if name in FLAG_ALIASES and name not in known:
            new = FLAG_ALIASES[name]
            if new is None:
                continue
            if new in known:
                arg = new + eq + value
        out.append(arg)
    return out


class AliasGroup(typer.core.TyperGroup):
    """A command group that accepts the hidden old spellings of verbs and flags."""

    def resolve_command(self, ctx, args):
        if args and args[0] in VERB_ALIASES:
            args = [*VERB_ALIASES[args[0]], *args[1:]]
        name, command, rest = super().resolve_command(ctx, args)
        return name, command, rewrite_aliases(command, rest)


class DefaultCommandGroup(AliasGroup):
    """A group whose first sub-command also runs without its name: ``nanoseg explain MODEL IMAGE`` is
    ``nanoseg explain model MODEL IMAGE`` (the sub-commands' names are never model paths)."""

    default_command = "model"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] != "--help":
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=AliasGroup,
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
