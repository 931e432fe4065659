"""Series ordering: which files make a movie (globs, folders, lists) and in which order, with which times
(in situ capture names, natural sort).

:func:`nanoseg.io.read_series` opens the frames in this order.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from nanoseg.errors import NanosegError
from nanoseg.io.openers import FORMATS

_INSITU = re.compile(r"Hour_(\d+)_Minute_(\d+)_Second_(\d+)_Frame_(\d+)", re.IGNORECASE)


def natural_key(text: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10``.

    >>> sorted(["f10.tif", "f2.tif", "f1.tif"], key=natural_key)
    ['f1.tif', 'f2.tif', 'f10.tif']
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


def insitu_times(names: Sequence[str], *, frame_interval_s: float | None = None) -> list[float] | None:
    """Capture times (s, from the first frame) of in situ frames named ``..._Hour_HH_Minute_MM_Second_SS_Frame_FFFF``.

    The frame number counts frames within one second, so a frame's time is
    ``3600·HH + 60·MM + SS + FFFF·Δt``, with Δt = ``frame_interval_s`` or, when not given,
    1 / (the most frames found in any one second). Returns None if any name lacks the pattern.

    Example
    -------
    >>> insitu_times(["x_Hour_00_Minute_00_Second_01_Frame_0000.dm4", "x_Hour_00_Minute_00_Second_00_Frame_0001.dm4",
    ...               "x_Hour_00_Minute_00_Second_00_Frame_0000.dm4"])
    [1.0, 0.5, 0.0]
    """
    parsed = []
    for name in names:
        match = _INSITU.search(Path(name).name)
        if match is None:
            return None
        h, m, s, f = (int(g) for g in match.groups())
        parsed.append((3600 * h + 60 * m + s, f))
    if frame_interval_s is None:
        per_second: dict[int, int] = {}
        for second, f in parsed:
            per_second[second] = max(per_second.get(second, 0), f + 1)
        frame_interval_s = 1.0 / max(per_second.values())
    times = [second + f * frame_interval_s for second, f in parsed]
    start = min(times)
    return [round(t - start, 9) for t in times]


def expand_paths(paths_or_stack) -> list[Path]:
    items = [paths_or_stack] if isinstance(paths_or_stack, str | os.PathLike) else list(paths_or_stack)
    out: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if any(ch in text for ch in "*?[") and not Path(text).exists():
            found = sorted(glob.glob(text, recursive=True), key=natural_key)
            if not found:
                raise NanosegError("no files match this pattern", path=text,
                                   hint="check the folder and the pattern, e.g. 'capture/**/*.dm4'")
            out.extend(Path(f) for f in found)
        elif Path(text).is_dir():  # an in situ capture folder (Gatan nests Hour_*/Minute_*/Second_*)
            found = sorted((p for p in Path(text).rglob("*") if p.suffix.lower() in FORMATS
                            and p.is_file() and not p.name.startswith(".")), key=lambda p: natural_key(str(p)))
            if not found:
                raise NanosegError("no image files in this folder", path=text,
                                   hint="supported: " + ", ".join(sorted(FORMATS)))
            out.extend(found)
        else:
            out.append(Path(text))
    if not out:
        raise NanosegError("no frames given", hint="pass a stacked file, a list of files or a glob pattern")
    return out
