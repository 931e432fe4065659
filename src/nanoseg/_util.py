"""Small shared helpers: progress bars, atomic file writes, skip-and-report batches.

Library functions take ``progress: bool`` and use :func:`progress_iter`; the CLI turns it on.

Example
-------
>>> report = BatchReport()
>>> with report.item("a.tif"):
...     raise NanosegError("cannot read")
>>> report.failed
[('a.tif', 'cannot read')]
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from nanoseg.errors import NanosegError, SettingsMismatchError

T = TypeVar("T")


def progress_iter(items: Iterable[T], description: str = "working", *, total: int | None = None,
                  enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a Rich progress bar (to stderr) when ``enabled``."""
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix or ".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should follow the umask
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class BatchReport:
    """Collect per-item outcomes of a batch job: user errors are recorded and the batch goes on."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.skipped: list[str] = []
        self.failed: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def item(self, name: str) -> Iterator[None]:
        try:
            yield
        except NanosegError as exc:  # the message and its hint (what to do); the path only if it is another
            text = str(exc) if exc.path not in (None, str(name)) else (
                f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
            self.failed.append((str(name), text))
        else:
            self.done.append(str(name))

    def skip(self, name: str) -> None:
        self.skipped.append(str(name))

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"{len(self.done)} done, {len(self.skipped)} skipped (already finished), {len(self.failed)} failed"]
        lines += [f"  FAILED {name}: {why}" for name, why in self.failed]
        return "\n".join(lines)


def probe_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (with parents) and prove a file can be written in it; OS errors propagate.

    >>> import tempfile
    >>> probe_writable(Path(tempfile.mkdtemp()) / "new" / "out").is_dir()
    True
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        import errno

        raise NotADirectoryError(errno.ENOTDIR, "it exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    tempfile.TemporaryFile(dir=folder).close()  # created and removed: the folder takes new files
    return folder


def settings_digest(settings: dict) -> str:
    """A short sha1 of ``settings`` as canonical JSON (sorted keys): equal settings, equal digest.

    >>> settings_digest({"b": 1, "a": 0.5}) == settings_digest({"a": 0.5, "b": 1})
    True
    """
    import hashlib
    import json

    text = json.dumps(settings, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def require_same_settings(stored: dict | None, settings: dict, *, path, hint: str) -> None:
    """Refuse to resume a run whose recorded ``stored`` settings differ from ``settings``; name what changed.

    Both sides are compared as JSON (what was written to disk), so tuples and lists, or ints and floats
    that print alike, do not count as changes.

    >>> require_same_settings({"threshold": 0.5}, {"threshold": 0.5}, path="out", hint="use --overwrite")
    >>> require_same_settings({"threshold": 0.5}, {"threshold": 0.3}, path="out", hint="use --overwrite")
    Traceback (most recent call last):
    ...
    nanoseg.errors.SettingsMismatchError: out: this folder holds a run with other settings (threshold: 0.5 → 0.3) (use --overwrite)
    """
    import json

    def as_json(value):
        return json.loads(json.dumps(value, default=str))

    old, new = as_json(stored or {}), as_json(settings)
    if old == new:
        return
    changed = [f"{key}: {old.get(key, 'unset')} → {new.get(key, 'unset')}"
               for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    shown = "; ".join(change if len(change) <= 120 else change[:117] + "..." for change in changed[:4])
    more = f"; {len(changed) - 4} more" if len(changed) > 4 else ""
    raise SettingsMismatchError(f"this folder holds a run with other settings ({shown}{more})", path=path, hint=hint)


def local_cluster(n_workers: int, *, processes: bool = True, **kwargs):
    """A Dask ``LocalCluster`` of ``n_workers`` one-thread workers, with glibc's malloc left at its defaults.

    Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker, which also switches off glibc's
    adaptive mmap threshold: every array above 128 kB is then a fresh ``mmap`` whose pages fault in on first
    touch. nanoseg's tasks allocate many MB-sized arrays (FFT grids, image tiles), and that cost was measured
    here at +0.7 s of system time per 512² simulated image (1.5 → 2.2 s; 40× the page faults), so the
    variable is unset for nanoseg's own clusters (a cluster you start yourself keeps your settings).

    Example
    -------
    >>> # with local_cluster(2) as cluster: Client(cluster).submit(...)
    """
    import dask
    from distributed import LocalCluster

    kwargs.setdefault("dashboard_address", ":0")
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=processes, **kwargs)

