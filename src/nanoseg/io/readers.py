"""Readers: microscope files → calibrated :class:`Micrograph` / lazy :class:`Series`.

Formats (by extension): Gatan ``.dm3``/``.dm4``, ``.emd`` (Velox and Berkeley/NCEM), ``.ser``/``.emi``
(TIA), ``.mrc``, ``.img`` (JEOL), ``.tif``/``.tiff``, ``.png``/``.jpg``/``.jpeg``, ``.npy``. Vendor formats
go through RosettaSciIO, TIFF through tifffile (vendor TIFF tags through RosettaSciIO), PNG/JPEG through
imageio. Every failure becomes one :class:`NanosegError` naming the file and what to do; numbers that
cannot be right (reciprocal units, implausible or non-square pixels) are refused, never passed on.

The jobs live in their own modules: :mod:`nanoseg.io.tags` (vendor metadata → standard metadata),
:mod:`nanoseg.io.openers` (one opener per format), :mod:`nanoseg.io.series` (which files make a movie, their
order and times); this module turns their results into micrographs and series and re-exports the names
other modules import from it.

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "img.npy"
>>> np.save(path, np.ones((4, 5)))
>>> read(path).shape
(4, 5)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.io.micrograph import Micrograph, Series
from nanoseg.io.openers import (
    FORMATS,
    OPENERS,
    SINGLE_SIGNAL,
    Opened,
    SignalChoice,
    check_path,
    library_failure,
)
from nanoseg.io.series import expand_paths, insitu_times, natural_key
from nanoseg.io.tags import to_float
from nanoseg.io.units import check_plausible_pixel_nm

# what other modules import from here (the split modules own most of it)
__all__ = ["FORMATS", "SignalChoice", "describe", "insitu_times", "natural_key", "read", "read_series"]


def _apply_pixel_size(path: Path, opened: Opened, pixel_size_nm: float | None) -> None:
    """A given pixel size replaces the file's; the file's must be square and plausible."""
    if pixel_size_nm is not None:
        value = to_float(pixel_size_nm)
        if value is None or value <= 0:
            raise NanosegError(f"pixel_size_nm must be a positive number of nm, got {pixel_size_nm!r}", path=path)
        check_plausible_pixel_nm(value, path=path, source="pixel_size_nm")
        if opened.pixel_size_nm is not None:
            opened.metadata["file_pixel_size_nm"] = opened.pixel_size_nm
        if "pixel_size_y_nm" in opened.metadata:
            opened.metadata["file_pixel_size_y_nm"] = opened.metadata.pop("pixel_size_y_nm")
        opened.pixel_size_nm = value
        opened.metadata["pixel_size_from"] = "given (pixel_size_nm)"
        return
    y_nm = opened.metadata.get("pixel_size_y_nm")
    if y_nm is not None and opened.pixel_size_nm is not None:
        raise NanosegError(
            f"the pixels are not square ({opened.pixel_size_nm:.6g} nm wide, {y_nm:.6g} nm high): nanoseg "
            "measures areas with square pixels", path=path,
            hint="resample the image to square pixels, or pass the pixel size yourself (pixel_size_nm=NM) if the "
            "file's calibration is wrong")
    try:
        check_plausible_pixel_nm(opened.pixel_size_nm, path=path)
    except NanosegError as exc:
        if opened.implausible_why is None:
            raise
        raise NanosegError(f"{exc.message}; {opened.implausible_why}", path=path, hint=exc.hint) from None


def _open(path: str | os.PathLike, signal: SignalChoice = None,
          pixel_size_nm: float | None = None) -> tuple[Path, Opened]:
    path = Path(path)
    ext = check_path(path)
    fmt = FORMATS[ext]
    logging.getLogger("rsciio").setLevel(logging.CRITICAL)
    try:
        if ext in SINGLE_SIGNAL:
            if signal not in (None, 0, "0"):
                raise NanosegError(f"no signal {signal!r}: a {fmt} file holds one image", path=path)
            opened = SINGLE_SIGNAL[ext](path)
        else:
            opened = OPENERS[ext](path, signal)
        if any(n == 0 for n in opened.shape):
            raise NanosegError(f"the image has no pixels (shape {opened.shape})", path=path)
        _apply_pixel_size(path, opened, pixel_size_nm)
    except NanosegError as exc:
        if exc.path is None:
            exc = NanosegError(exc.message, path=path, hint=exc.hint)
        raise exc from None
    except MemoryError:
        raise NanosegError(f"not enough memory to open this {fmt} file", path=path) from None
    except Exception as exc:  # any library failure on a bad file becomes one clear line
        raise library_failure(exc, path, fmt, f"this {fmt} file") from None
    return path, opened


def _load(path: Path, opened: Opened, index: int | None) -> np.ndarray:
    try:
        return opened.get(index)
    except NanosegError:
        raise
    except MemoryError:
        raise NanosegError("not enough memory to load the pixel data", path=path) from None
    except Exception as exc:
        raise library_failure(exc, path, FORMATS[path.suffix.lower()], "the pixel data") from None


def _micrograph(path: Path, opened: Opened, array: np.ndarray, extra: dict | None = None) -> Micrograph:
    meta = dict(opened.metadata)
    meta["format"] = FORMATS[path.suffix.lower()]
    meta["file_dtype"] = opened.dtype
    meta.update(extra or {})
    m = Micrograph(array, pixel_size_nm=opened.pixel_size_nm, dose_e_per_A2=opened.dose_e_per_A2,
                   metadata=meta, source=str(path))
    return m.check_finite()


# --------------------------------------------------------------------------------------------- public
def read(path: str | os.PathLike, *, frame: int | None = None, signal: SignalChoice = None,
         pixel_size_nm: float | None = None) -> Micrograph:
    """Read one image file into a calibrated :class:`Micrograph`.

    Parameters
    ----------
    path : an image file: ``.dm3 .dm4 .emd .ser .emi .mrc .img .tif .tiff .png .jpg .jpeg .npy``.
    frame : for a file holding a stack of frames (an in situ movie), the frame to take (0-based,
        negative counts from the end). A stack read without ``frame`` is an error: use
        :func:`read_series` for movies.
    signal : for a file holding several images (Velox HAADF + DF, a TIA .emi with BF and DF, DM
        files with several images), which one: its index or its title. Without it, a file with one
        real-space image (others being spectra, FFTs or plots) gives that image, and a file with
        several is an error that lists them (``nanoseg info`` lists them too).
    pixel_size_nm : the pixel size in nm, replacing the file's calibration (for uncalibrated files,
        or ones whose calibration is wrong); recorded in ``metadata["pixel_size_from"]``.

    Returns
    -------
    Micrograph with ``pixel_size_nm`` from the file's calibration (None when it has none),
    ``dose_e_per_A2`` from an explicit dose tag (None otherwise), and ``metadata`` holding
    what the file says (``voltage_kV``, ``magnification``, ``exposure_s``, ``acquired``, ...).

    Raises
    ------
    NanosegError
        missing, empty, truncated, corrupt, unknown-format, NaN-filled or 3-D-without-``frame`` files;
        diffraction patterns and FFTs (reciprocal units, complex data); non-square or implausible
        pixel sizes; an optional package that the file needs and is missing (named, with its pip
        command); several images and no ``signal``.

    Example
    -------
    >>> from nanoseg.io import example_micrograph, write_tiff
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ex.tif"
    >>> write_tiff(path, example_micrograph())
    >>> read(path).pixel_size_nm
    0.02
    """
    path, opened = _open(path, signal, pixel_size_nm)
    if len(opened.shape) == 3:
        n = opened.shape[0]
        if frame is None:
            raise NanosegError(
                f"this file holds a stack of {n} frames of {opened.shape[1]}×{opened.shape[2]} px, "
                "not one image", path=path,
                hint="read it with nanoseg.io.read_series(path), or pick one frame with read(path, frame=0)",
            )
        if not -n <= frame < n:
            raise NanosegError(f"frame {frame} does not exist; the stack has {n} frames (0…{n - 1})", path=path)
        index = frame % n
        extra = {"frame_index": index, "n_frames": n}
        if opened.frame_times_s:
            extra["time_s"] = opened.frame_times_s[index]
        return _micrograph(path, opened, _load(path, opened, index), extra)
    if frame not in (None, 0, -1):
        raise NanosegError(f"frame {frame} requested, but the file holds a single image", path=path)
    return _micrograph(path, opened, _load(path, opened, None))


def describe(path: str | os.PathLike, *, signal: SignalChoice = None,
             pixel_size_nm: float | None = None) -> dict[str, Any]:
    """A summary of one file without loading a whole stack: what ``nanoseg info`` shows.

    Returns a dict with ``path, format, shape, dtype, n_frames, pixel_size_nm, field_of_view_nm,
    dose_e_per_A2, metadata``. The first (or only) image is loaded and checked for NaN. ``signal``
    and ``pixel_size_nm`` as for :func:`read`; ``metadata["signals"]`` lists a multi-signal file's
    signals.

    Example
    -------
    >>> from nanoseg.io import example_micrograph, write_npy
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> write_npy(p, example_micrograph())
    >>> describe(p)["shape"]
    [256, 256]
    """
    path, opened = _open(path, signal, pixel_size_nm)
    first = _micrograph(path, opened, _load(path, opened, 0 if len(opened.shape) == 3 else None))
    rows, cols = opened.shape[-2:]
    fov = None
    if opened.pixel_size_nm is not None:
        fov = [round(rows * opened.pixel_size_nm, 6), round(cols * opened.pixel_size_nm, 6)]
    return {
        "path": str(path),
        "format": FORMATS[path.suffix.lower()],
        "shape": [int(n) for n in opened.shape],
        "dtype": opened.dtype,
        "n_frames": int(opened.shape[0]) if len(opened.shape) == 3 else 1,
        "pixel_size_nm": opened.pixel_size_nm,
        "field_of_view_nm": fov,
        "dose_e_per_A2": opened.dose_e_per_A2,
        "metadata": {k: v for k, v in first.metadata.items() if k not in ("format", "file_dtype")},
    }


# ------------------------------------------------------------------------------------------ series
def read_series(paths_or_stack, *, frame_interval_s: float | None = None, signal: SignalChoice = None,
                pixel_size_nm: float | None = None) -> Series:
    """Open a movie lazily: one stacked file, a list of single-frame files, a glob pattern (``**``
    allowed), or a folder (all image files below it, e.g. a Gatan in situ capture folder).

    Frames are loaded only when accessed (a list of files is never held in memory at once; a
    stacked DM/MRC/NPY file is memory-mapped, a TIFF stack read page by page).

    Order and timestamps, first that applies:

    1. in situ capture names ``..._Hour_HH_Minute_MM_Second_SS_Frame_FFFF`` (see :func:`insitu_times`);
    2. acquisition times in the files' metadata, when every file has one and they are all distinct;
    3. natural sort of the names, times ``i · frame_interval_s`` (1 s per frame if not given).

    For a stacked file: a time axis in the file, else ``i · frame_interval_s`` (1 s if not given).
    ``series.timing`` says which rule was used. ``signal`` and ``pixel_size_nm`` as for :func:`read`
    (applied to every file).

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "movie.npy"
    >>> np.save(p, np.zeros((5, 8, 8), np.float32))
    >>> s = read_series(p, frame_interval_s=0.1)
    >>> len(s), s.frame_interval_s, s[2].shape
    (5, 0.1, (8, 8))
    """
    if frame_interval_s is not None and not frame_interval_s > 0:
        raise NanosegError(f"frame_interval_s must be > 0 s, got {frame_interval_s}")
    paths = expand_paths(paths_or_stack)
    if len(paths) == 1:
        path, opened = _open(paths[0], signal, pixel_size_nm)
        if len(opened.shape) == 2:
            n, timing = 1, "single"
            times = [0.0]
        else:
            n = opened.shape[0]
            if opened.frame_times_s is not None and frame_interval_s is None:
                times, timing = opened.frame_times_s, "metadata"
            else:
                step = 1.0 if frame_interval_s is None else frame_interval_s
                times = [i * step for i in range(n)]
                timing = "index" if frame_interval_s is None else "interval"

        def load_stack(i: int) -> Micrograph:
            index = None if len(opened.shape) == 2 else i
            extra = {"frame_index": i, "n_frames": n, "time_s": float(times[i])}
            return _micrograph(path, opened, _load(path, opened, index), extra)

        series = Series(load_stack, times, source=str(path))
        series.timing = timing
        return series

    names = [str(p) for p in paths]
    times = insitu_times(names, frame_interval_s=frame_interval_s)
    timing = "filename"
    if times is None:
        stamps = []
        for p in paths:
            _, opened = _open(p, signal, pixel_size_nm)
            if len(opened.shape) != 2:
                raise NanosegError(f"expected one image per file in a list of frames, found shape {opened.shape}",
                                   path=p, hint="pass a stacked file on its own")
            stamps.append(opened.metadata.get("timestamp_s"))
        if all(s is not None for s in stamps) and len(set(stamps)) == len(stamps):
            times = [s - min(stamps) for s in stamps]
            timing = "metadata"
        else:
            order = sorted(range(len(paths)), key=lambda i: natural_key(names[i]))
            paths = [paths[i] for i in order]
            step = 1.0 if frame_interval_s is None else frame_interval_s
            times = [i * step for i in range(len(paths))]
            timing = "index" if frame_interval_s is None else "interval"
    order = sorted(range(len(paths)), key=lambda i: (times[i], natural_key(str(paths[i]))))
    paths = [paths[i] for i in order]
    times = [float(times[i]) for i in order]

    def load_file(i: int) -> Micrograph:
        m = read(paths[i], signal=signal, pixel_size_nm=pixel_size_nm)
        m.metadata.update({"frame_index": i, "time_s": times[i]})
        return m

    series = Series(load_file, times, source=os.path.commonpath([str(p) for p in paths]) if paths else None)
    series.timing = timing
    series.paths = paths
    return series
