"""nanoseg's machine-local caches: where they live and what identifies the machine.

Both the simulator's FFTW plans (:mod:`nanoseg.simulate.fftplans`) and the inference engine calibration
(:mod:`nanoseg.infer.engine`) are measured on this machine and kept in :func:`cache_dir`
(``$NANOSEG_CACHE_DIR``, default ``$XDG_CACHE_HOME/nanoseg`` or ``~/.cache/nanoseg``), keyed by
:func:`cpu_model` and the versions they depend on. Deleting the folder only costs measuring again.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def cache_dir() -> Path:
    """Folder of nanoseg's machine-local caches (``$NANOSEG_CACHE_DIR``, default ``~/.cache/nanoseg``)."""
    env = os.environ.get("NANOSEG_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nanoseg"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else the platform's word for it)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(("model name", "Hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown-cpu"
