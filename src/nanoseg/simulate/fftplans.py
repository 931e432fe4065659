"""FFT backend of the simulator: FFTW plans that are fast *and* the same in every process.

abTEM's multislice spends most of its time in 2-D FFTs. NumPy's FFT is ~6× slower than FFTW on this
work (512² complex64: 17.6 ms vs 2.7 ms per transform, measured here), so the simulator uses FFTW through
pyFFTW when it is installed. FFTW picks its algorithm by *timing* candidates (``FFTW_MEASURE``); two
processes may pick different algorithms, whose float32 results differ in the last bits, and a last-bit
change of the image intensity changes the Poisson draws of the camera model (NumPy's Poisson sampler is a
rejection sampler: one changed acceptance shifts the whole random stream). Without care, the same spec and
seed would give different images in different processes.

The fix is FFTW *wisdom* (the record of the chosen plans), shared:

* every process loads the machine's wisdom file on first use (:func:`use_fftw`) and adds to it the plans it
  makes (:func:`save_wisdom`), so once a grid size has been planned on a machine, every later run there uses
  the same plan;
* :func:`nanoseg.simulate.generate_dataset` plans every grid size of a dataset in the client *before* any
  worker starts and ships the wisdom with each task (:func:`export_wisdom` / :func:`import_wisdom`), so all
  workers of one run agree even on a fresh machine.

The wisdom file lives in ``$NANOSEG_CACHE_DIR`` (default ``~/.cache/nanoseg``), one per CPU model and FFTW
build. Without pyFFTW the simulator falls back to NumPy's FFT (deterministic, slower).

Example
-------
>>> backend = use_fftw()
>>> backend in ("fftw", "numpy")
True
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import platform
from pathlib import Path

from nanoseg._cache import cache_dir
from nanoseg._cache import cpu_model as _cpu_model
from nanoseg._util import atomic_path

_STATE: dict = {"backend": None, "saved": None, "imported": set()}


def _pyfftw():
    try:
        import pyfftw
    except ImportError:  # pragma: no cover - pyFFTW is a dependency; the fallback keeps odd platforms working
        return None
    return pyfftw


def wisdom_path() -> Path:
    """The wisdom file of this machine (keyed by CPU model, architecture and pyFFTW version)."""
    pyfftw = _pyfftw()
    key = "|".join([platform.machine(), _cpu_model(), getattr(pyfftw, "__version__", "none")])
    return cache_dir() / f"fftw-wisdom-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"


def export_wisdom() -> str | None:
    """This process's FFTW wisdom as a small JSON string (None without pyFFTW)."""
    pyfftw = _pyfftw()
    if pyfftw is None:
        return None
    return json.dumps([base64.b64encode(part).decode("ascii") for part in pyfftw.export_wisdom()])


def import_wisdom(wisdom: str | None) -> None:
    """Add wisdom from :func:`export_wisdom` to this process (each distinct string is imported once)."""
    pyfftw = _pyfftw()
    if pyfftw is None or not wisdom or wisdom in _STATE["imported"]:
        return
    try:
        parts = tuple(base64.b64decode(part) for part in json.loads(wisdom))
    except (ValueError, TypeError):
        return  # a corrupt wisdom string only costs planning time
    pyfftw.import_wisdom(parts)
    _STATE["imported"].add(wisdom)


def use_fftw() -> str:
    """Point abTEM at FFTW (one thread, measured plans) with this machine's wisdom; returns the backend name.

    Falls back to NumPy's FFT when pyFFTW is not installed. Cheap after the first call.
    """
    import abtem

    if _STATE["backend"] is None:
        pyfftw = _pyfftw()
        _STATE["backend"] = "numpy" if pyfftw is None else "fftw"
        if pyfftw is not None:
            path = wisdom_path()
            # an unreadable wisdom file only costs planning time
            with contextlib.suppress(OSError):
                import_wisdom(path.read_text(encoding="utf-8"))
            _STATE["saved"] = export_wisdom()
    settings = {"fft": _STATE["backend"]}
    if _STATE["backend"] == "fftw":
        settings.update({"fftw.threads": 1, "fftw.planning_effort": "FFTW_MEASURE"})
    abtem.config.set(settings)
    return _STATE["backend"]


def save_wisdom() -> bool:
    """Merge new plans of this process into the machine's wisdom file (atomic); True when it wrote.

    The file's wisdom is imported first, so the file only grows; two processes that plan the same new
    grid at the same moment may still disagree once (``generate_dataset`` avoids that by planning first).
    """
    if _STATE["backend"] != "fftw":
        return False
    current = export_wisdom()
    if current == _STATE["saved"]:
        return False
    path = wisdom_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            import_wisdom(path.read_text(encoding="utf-8"))
            current = export_wisdom()
        with atomic_path(path) as tmp:
            tmp.write_text(current, encoding="utf-8")
    except OSError:
        return False  # a read-only home only costs planning time in the next process
    _STATE["saved"] = current
    return True
