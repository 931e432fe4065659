"""Readers: microscope files → calibrated :class:`Micrograph` / lazy :class:`Series`.

Formats (by extension): Gatan ``.dm3``/``.dm4``, ``.emd`` (Velox and Berkeley/NCEM), ``.ser``/``.emi``
(TIA), ``.mrc``, ``.img`` (JEOL), ``.tif``/``.tiff``, ``.png``/``.jpg``/``.jpeg``, ``.npy``. Vendor formats
go through RosettaSciIO, TIFF through tifffile (vendor TIFF tags through RosettaSciIO), PNG/JPEG through
imageio. Every failure becomes one :class:`NanosegError` naming the file and what to do; numbers that
cannot be right (reciprocal units, implausible or non-square pixels) are refused, never passed on.

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "img.npy"
>>> np.save(path, np.ones((4, 5)))
>>> read(path).shape
(4, 5)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import json
import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.io.micrograph import Micrograph, Series
from nanoseg.io.units import check_plausible_pixel_nm, is_reciprocal, length_to_nm

FORMATS = {
    ".dm3": "Gatan DigitalMicrograph", ".dm4": "Gatan DigitalMicrograph", ".emd": "EMD",
    ".ser": "TIA SER", ".emi": "TIA EMI", ".mrc": "MRC", ".img": "JEOL IMG", ".tif": "TIFF", ".tiff": "TIFF",
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".npy": "NumPy",
}
#: a signal of a multi-signal file: its position or its title (``General.title``, e.g. ``"HAADF"``)
SignalChoice = int | str | None
_HINT_CORRUPT = "the file may be corrupt or truncated; re-export or copy it again"


@dataclass
class _Opened:
    """What a format opener found: shape (frames first for stacks), a frame getter and calibration."""

    shape: tuple[int, ...]
    dtype: str
    get: Callable[[int | None], np.ndarray]  # None → the whole 2-D image; i → frame i of a stack
    pixel_size_nm: float | None = None
    dose_e_per_A2: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    frame_times_s: list[float] | None = None
    implausible_why: str | None = None  # what an implausible calibration most likely means, for the error


# --------------------------------------------------------------------------------------------- helpers
def _check_path(path: Path) -> str:
    if not path.exists():
        raise NanosegError("file not found", path=path, hint="check the path and spelling")
    if path.is_dir():
        raise NanosegError("is a folder, not an image file", path=path,
                           hint="pass the files inside it, or a glob such as 'folder/*.dm4'")
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise NanosegError(
            f"unknown image format {ext or '(no extension)'!r}", path=path,
            hint="supported: " + ", ".join(sorted(FORMATS)),
        )
    if path.stat().st_size == 0:
        raise NanosegError("the file is empty (0 bytes)", path=path, hint="copy or export it again")
    return ext


def _to_float(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        if isinstance(value, str):
            match = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", value)
            if match:
                return float(match.group())
        return None
    return out if math.isfinite(out) else None


def _lookup(tree: Any, dotted: str) -> Any:
    """Follow ``a.b.c`` through nested dicts, treating spaces and underscores in keys as equal."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        if part in node:
            node = node[part]
            continue
        want = part.replace(" ", "_").lower()
        for key, value in node.items():
            if str(key).replace(" ", "_").lower() == want:
                node = value
                break
        else:
            return None
    return node


def _leaves(tree: Any, prefix: str = ""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree


def _apply_mapping(original: dict, mapping: dict | None) -> dict:
    """Apply a RosettaSciIO ``mapping`` (original path → (HyperSpy path, converter)) to a dict."""
    out: dict = {}
    for source, (target, func) in (mapping or {}).items():
        value = _lookup(original, source)
        if value is None:
            continue
        try:
            value = func(value) if func is not None else value
        except Exception:  # a vendor tag we cannot parse is simply left out
            continue
        if value is None:
            continue
        node = out
        parts = target.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _timestamp(date: str | None, time: str | None) -> tuple[str | None, float | None]:
    if not date and not time:
        return None, None
    try:
        from dateutil import parser

        stamp = parser.parse(f"{date or ''} {time or ''}".strip())
    except Exception:
        return None, None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.UTC)
    return stamp.isoformat(), stamp.timestamp()


def _standard_metadata(hs: dict) -> dict[str, Any]:
    """Pick the acquisition fields nanoseg uses out of HyperSpy-style metadata."""
    meta: dict[str, Any] = {}
    tem = _lookup(hs, "Acquisition_instrument.TEM") or _lookup(hs, "Acquisition_instrument.SEM") or {}
    voltage = _to_float(_lookup(tem, "beam_energy"))
    if voltage:
        meta["voltage_kV"] = voltage
    mag = _to_float(_lookup(tem, "magnification"))
    if mag:
        meta["magnification"] = mag
    exposure = None
    for key in ("Camera.exposure", "Detector.Camera.exposure", "exposure", "Detector.exposure"):
        exposure = _to_float(_lookup(tem, key))
        if exposure:
            break
    if exposure:
        meta["exposure_s"] = exposure
    dwell = _to_float(_lookup(tem, "dwell_time"))
    if dwell:
        meta["dwell_time_s"] = dwell
    for key in ("microscope",):
        value = _lookup(tem, key)
        if value:
            meta[key] = str(value)
    acquired, stamp = _timestamp(_lookup(hs, "General.date"), _lookup(hs, "General.time"))
    if acquired:
        meta["acquired"] = acquired
        meta["timestamp_s"] = stamp
    title = _lookup(hs, "General.title")
    if title:
        meta["title"] = str(title)
    return meta


# tag names that mention dose but hold no dose (dose-fractionation settings, counters, switches)
_NOT_A_DOSE = ("fraction", "frame", "number", "count", "mode", "enable", "limit", "protect", "use", "auto",
               "apply", "save")


def _dose_from_tags(tags: dict, exposure_s: float | None,
                    pixel_size_nm: float | None = None) -> tuple[float | None, str | None]:
    """An explicit dose tag: ``...Dose...`` or a dose *rate* (per second) times the exposure.

    The area unit comes from the tag name: ``nm`` → e/nm² (÷ 100), ``pix``/``px`` → e/pixel (÷ pixel
    area in Å², needs the calibration), otherwise e/Å². Returns (dose in e/Å², tag path)."""
    rate = None
    for key, value in _leaves(tags):
        name = key.rsplit(".", 1)[-1].lower()
        if "dose" not in name or any(word in name for word in _NOT_A_DOSE) or isinstance(value, bool):
            continue
        number = _to_float(value)
        if not number or number <= 0:
            continue
        if "pix" in name or "px" in name:
            if not pixel_size_nm:
                continue
            number /= (pixel_size_nm * 10.0) ** 2
        elif "nm" in name:
            number /= 100.0
        if "rate" in name or "/s" in name:
            if rate is None:
                rate = (number, key)
            continue
        return number, key
    if rate is not None and exposure_s:
        return rate[0] * exposure_s, f"{rate[1]} × exposure"
    return None, None


def _axes_calibration(axes: list[dict], path) -> tuple[float | None, dict[str, Any], list[float] | None]:
    """Pixel size from the two image axes (the last two in the array); frame times from a leading
    frame axis calibrated in seconds."""
    axes = sorted(axes, key=lambda a: int(a.get("index_in_array", 0)))
    meta: dict[str, Any] = {}
    sizes = [length_to_nm(a.get("scale", 1.0), a.get("units"), path=path) for a in axes[-2:]]
    pixel = None
    if len(sizes) == 2 and all(s is not None for s in sizes):
        pixel = sizes[-1]  # columns (x)
        if abs(sizes[0] - sizes[-1]) > 0.01 * sizes[-1]:
            meta["pixel_size_y_nm"] = sizes[0]
    times = None
    if len(axes) == 3:
        unit = str(axes[0].get("units") or "").strip().lower()
        if unit in ("s", "sec", "seconds", "ms"):
            scale = float(axes[0].get("scale", 1.0)) * (1e-3 if unit == "ms" else 1.0)
            if scale > 0:
                times = [round(i * scale, 9) for i in range(int(axes[0]["size"]))]
    return pixel, meta, times


def _not_an_image(signal: dict) -> str | None:
    """Why a RosettaSciIO signal is not a real-space 2-D image or stack of them (None when it is one)."""
    data = signal["data"]
    shape = tuple(getattr(data, "shape", ()))
    units = [str(a.get("units") or "") for a in signal.get("axes", [])]
    if len(shape) not in (2, 3):
        return f"{len(shape)}-D data"
    if np.issubdtype(np.dtype(data.dtype), np.complexfloating):
        return "complex"
    if any(u.strip().lower() in ("ev", "kev") for u in units):
        return "spectrum"
    if any(is_reciprocal(u) for u in units[-2:]):
        return "reciprocal space"
    return None


def _signal_label(index: int, signal: dict) -> str:
    """``2 'iDPC' 2×2 float32`` (plus why it is not an image, if it is not)."""
    title = _lookup(signal.get("metadata") or {}, "General.title") or _lookup(
        signal.get("metadata") or {}, "General.original_filename") or ""
    data = signal["data"]
    shape = "×".join(str(int(n)) for n in getattr(data, "shape", ()))
    dtype = "rgb" if np.dtype(data.dtype).names else str(data.dtype)
    why = _not_an_image(signal)
    return f"{index} {str(title)!r} {shape} {dtype}" + (f" ({why})" if why else "")


def _pick_image(signals: list[dict], path, choice: SignalChoice = None) -> tuple[int, dict]:
    """The signal to read from a (possibly multi-signal) file and its index.

    ``choice`` None: the only real-space image (or stack) in the file; several → an error listing them.
    An int picks by position, a str by title (case-insensitive)."""
    labels = [_signal_label(i, s) for i, s in enumerate(signals)]
    listing = "; ".join(labels)
    if not signals:
        raise NanosegError("the file holds no data", path=path, hint=_HINT_CORRUPT)
    if choice is not None:
        index = _choice_index(signals, choice, path, listing)
    else:
        images = [i for i, s in enumerate(signals) if _not_an_image(s) is None]
        if len(images) == 1:
            index = images[0]
        elif len(signals) == 1:  # not an image: processing it gives the precise reason
            index = 0
        elif not images:
            raise NanosegError(
                f"no real-space 2-D image or image stack among the {len(signals)} signals in this file: {listing}",
                path=path, hint="spectra, FFTs, diffraction patterns and 4-D data are not images nanoseg can "
                "segment; export the image itself")
        else:
            raise NanosegError(
                f"this file holds {len(images)} images; choose one with signal= (its index or title): {listing}",
                path=path, hint=f"e.g. signal={images[0]}; `nanoseg info FILE` lists them")
    signal = signals[index]
    if len(signals) > 1:
        signal = dict(signal)
        signal["metadata"] = dict(signal.get("metadata") or {})
        signal["_nanoseg_signal"] = {"signal_index": index, "signals": labels}
    return index, signal


def _choice_index(signals: list[dict], choice: int | str, path, listing: str) -> int:
    if isinstance(choice, bool) or not isinstance(choice, int | str):
        raise NanosegError(f"signal must be an index or a title, got {choice!r}", path=path)
    if isinstance(choice, int):
        if -len(signals) <= choice < len(signals):
            return choice % len(signals)
        raise NanosegError(f"no signal {choice} in this file; it holds {len(signals)}: {listing}", path=path)
    titles = [str(_lookup(s.get("metadata") or {}, "General.title") or "").strip().lower() for s in signals]
    if choice.strip().lower() in titles:
        return titles.index(choice.strip().lower())
    if choice.strip().lstrip("-").isdigit():
        return _choice_index(signals, int(choice), path, listing)
    raise NanosegError(f"no signal {choice!r} in this file; it holds: {listing}", path=path)


def _missing_package(exc: BaseException) -> str | None:
    """The pip name of an optional package that a reading library said it needs, or None."""
    text = str(exc)
    for pattern in (r"requires the '?([A-Za-z0-9_.-]+)'? (?:package|library|module)",
                    r"'([A-Za-z0-9_.-]+)' (?:library|package|module) (?:was|is) not (?:found|installed)",
                    r"No module named '([A-Za-z0-9_.-]+)'"):
        match = re.search(pattern, text)
        if match:
            return match.group(1).split(".")[0]
    if isinstance(exc, ImportError) and getattr(exc, "name", None):
        return str(exc.name).split(".")[0]
    return None


def _structured_rgb_to_grey(array: np.ndarray) -> np.ndarray:
    """RosettaSciIO's RGB(A) records (fields R, G, B[, A]) → grey, as for RGB PNGs."""
    rgb = np.stack([array[name] for name in ("R", "G", "B")], axis=-1)
    return _rgb_to_grey(rgb)


def _from_rsciio(signal: dict, path, extra_meta: dict | None = None, original_tags: dict | None = None) -> _Opened:
    data = signal["data"]
    shape = tuple(int(n) for n in data.shape)
    if len(shape) not in (2, 3):
        raise NanosegError(f"expected a 2-D image or a 3-D stack, got {len(shape)}-D data of shape {shape}",
                           path=path, hint="spectra and 4-D STEM data are not images nanoseg can segment")
    kind = np.dtype(data.dtype)
    if np.issubdtype(kind, np.complexfloating):
        raise NanosegError(f"the data are complex numbers ({kind}): an FFT or exit wave, not a micrograph",
                           path=path, hint="export the real-space image itself")
    if kind == np.bool_:
        raise NanosegError("the data are booleans (a binary mask), not a micrograph", path=path,
                           hint="read masks with nanoseg.io.read_mask; export the micrograph itself")
    pixel, meta, times = _axes_calibration(signal.get("axes", []), path)
    hs = dict(signal.get("metadata") or {})
    mapped = _apply_mapping(signal.get("original_metadata") or {}, signal.get("mapping"))
    _merge(hs, mapped)
    meta.update(_standard_metadata(hs))
    meta.update(extra_meta or {})
    dose, dose_tag = _dose_from_tags(original_tags if original_tags is not None
                                     else (signal.get("original_metadata") or {}), meta.get("exposure_s"),
                                     pixel)
    if dose_tag:
        meta["dose_tag"] = dose_tag
    meta.update(signal.get("_nanoseg_signal") or {})

    def get(index: int | None) -> np.ndarray:
        part = data if index is None else data[index]
        # synchronous: a memory-mapped slice is cheap, and it must not be shipped to a Dask cluster
        array = np.asarray(part.compute(scheduler="synchronous") if hasattr(part, "compute") else part)
        return _structured_rgb_to_grey(array) if array.dtype.names else array

    return _Opened(shape, str(data.dtype), get, pixel, dose, meta, times)


def _merge(into: dict, other: dict) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


# --------------------------------------------------------------------------------------------- openers
def _lazy_frames(file_reader, path: Path, choice: SignalChoice = None) -> dict:
    """Open memory-mapped (DM, MRC) data lazily with one chunk per frame, so that reading frame i
    of a stack touches only that frame (RosettaSciIO's automatic chunks can span the whole file).
    RGB(A) DM images cannot be opened lazily by RosettaSciIO: those are read whole."""
    try:
        signals = file_reader(str(path), lazy=True)
    except ValueError as exc:
        if "lazy" not in str(exc).lower():
            raise
        return _pick_image(file_reader(str(path), lazy=False), path, choice)[1]
    index, signal = _pick_image(signals, path, choice)
    data = signal["data"]
    if data.ndim == 3 and getattr(data, "chunks", None) is not None and max(data.chunks[0]) > 1:
        _, signal = _pick_image(file_reader(str(path), lazy=True, chunks=(1, -1, -1)), path, index)
    return signal


def _check_dm_length(path: Path) -> None:
    """A DM3/DM4 header holds the length of its tag tree, which follows the 12- or 16-byte header
    (then up to 8 bytes of end padding): a shorter file was cut off (RosettaSciIO would read what is
    there, or fail with an obscure error)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    version = int.from_bytes(head[:4], "big") if len(head) >= 4 else None
    if version not in (3, 4) or len(head) < 16:
        raise NanosegError("not a DigitalMicrograph file (its header does not say DM3 or DM4)", path=path,
                           hint=_HINT_CORRUPT)
    root = int.from_bytes(head[4:8], "big") if version == 3 else int.from_bytes(head[4:12], "big")
    expected = root + (12 if version == 3 else 16)
    size = path.stat().st_size
    if size < expected:
        raise NanosegError(f"the DM{version} file is truncated ({size} of {expected} bytes)", path=path,
                           hint=_HINT_CORRUPT)


def _open_dm(path: Path, choice: SignalChoice = None) -> _Opened:
    from rsciio.digitalmicrograph import file_reader

    _check_dm_length(path)
    signal = _lazy_frames(file_reader, path, choice)
    image_tags = _lookup(signal.get("original_metadata") or {}, "ImageList.TagGroup0.ImageTags") or {}
    extra: dict[str, Any] = {}
    # DM keeps the exposure in one of a few places depending on the camera software
    for key in ("DataBar.Exposure Time (s)", "Acquisition.Parameters.High Level.Exposure (s)",
                "Acquisition.Parameters.Detector.exposure_s"):
        value = _to_float(_lookup(image_tags, key))
        if value:
            extra["exposure_s"] = value
            break
    for key in ("Microscope Info.Indicated Magnification", "Microscope Info.Actual Magnification"):
        value = _to_float(_lookup(image_tags, key))
        if value:
            extra["magnification"] = value
            break
    return _from_rsciio(signal, path, extra, original_tags=image_tags)


def _open_emd(path: Path, choice: SignalChoice = None) -> _Opened:
    from rsciio.emd import file_reader

    try:
        signals = file_reader(str(path), lazy=True, sum_frames=False)
    except TypeError:
        signals = file_reader(str(path), lazy=True)
    _, signal = _pick_image(signals, path, choice)
    original = signal.get("original_metadata") or {}
    extra: dict[str, Any] = {}
    # Velox: voltage in V, nominal magnification, acquisition start as Unix time
    volt = _to_float(_lookup(original, "Optics.AccelerationVoltage"))
    if volt:
        extra["voltage_kV"] = volt / 1e3
    mag = _to_float(_lookup(original, "Optics.NominalMagnification"))
    if mag:
        extra["magnification"] = mag
    detector = _lookup(original, "BinaryResult.DetectorIndex")
    exposure = _to_float(_lookup(original, f"Detectors.Detector-{detector}.ExposureTime"))
    if exposure:
        extra["exposure_s"] = exposure
    start = _to_float(_lookup(original, "Acquisition.AcquisitionStartDatetime.DateTime"))
    if start:
        extra["timestamp_s"] = start
        extra["acquired"] = _dt.datetime.fromtimestamp(start, _dt.UTC).isoformat()
    return _from_rsciio(signal, path, extra)


_SER_NAME = re.compile(r"^(?P<stem>.+)_\d+$")


def _companion_emi(path: Path) -> Path | None:
    """``name_1.ser`` → ``name.emi`` beside it (TIA keeps units and acquisition metadata there)."""
    match = _SER_NAME.match(path.stem)
    if match is None:
        return None
    for candidate in path.parent.glob(glob.escape(match["stem"]) + ".*"):
        if candidate.suffix.lower() == ".emi" and candidate.is_file():
            return candidate
    return None


def _open_ser(path: Path, choice: SignalChoice = None) -> _Opened:
    """A TIA ``.ser``: read through its ``.emi`` when it lies beside it (the units, nm or 1/nm, and the
    acquisition metadata live there). Without one, RosettaSciIO assumes metres, which turns a
    diffraction pattern's 1/m calibration into an absurd pixel size: that is refused."""
    from rsciio.tia import file_reader

    emi = _companion_emi(path)
    if emi is not None:
        with _quiet_rsciio():
            signals = file_reader(str(emi), lazy=False)
        mine = [s for s in signals if _lookup(s.get("metadata") or {}, "General.original_filename") == path.name]
        if len(mine) == 1:
            opened = _from_rsciio(_pick_image(mine, path, choice)[1], path)
            opened.metadata["calibration_from"] = emi.name
            return opened
    # RosettaSciIO's SER reader loads every element of the file even when lazy, so read it once
    _, signal = _pick_image(file_reader(str(path), lazy=False), path, choice)
    opened = _from_rsciio(signal, path)
    opened.metadata["calibration_note"] = "no .emi beside the .ser: units assumed to be metres"
    opened.implausible_why = ("without its .emi a .ser cannot say whether it is an image (m) or a diffraction "
                              "pattern (1/m), and this calibration looks like a diffraction pattern; put the .emi "
                              "written with it in the same folder")
    return opened


def _open_emi(path: Path, choice: SignalChoice = None) -> _Opened:
    """A TIA ``.emi`` with its ``name_N.ser`` data files (one signal per .ser)."""
    from rsciio.tia import file_reader

    with _quiet_rsciio():
        signals = file_reader(str(path), lazy=False)
    if not signals:
        raise NanosegError("no data files (name_1.ser, ...) beside this .emi", path=path,
                           hint="copy the .ser files written with it into the same folder")
    _, signal = _pick_image(signals, path, choice)
    return _from_rsciio(signal, path)


def _open_jeol(path: Path, choice: SignalChoice = None) -> _Opened:
    """A JEOL Analysis Station ``.img`` image."""
    from rsciio.jeol import file_reader

    _, signal = _pick_image(file_reader(str(path), lazy=False), path, choice)
    return _from_rsciio(signal, path)


@contextlib.contextmanager
def _quiet_rsciio():
    """RosettaSciIO warns (UserWarning) about guesses it makes; nanoseg reports its own assumptions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _open_mrc(path: Path, choice: SignalChoice = None) -> _Opened:
    from rsciio.mrc import file_reader

    expected = _mrc_expected_size(path)
    if expected is not None and path.stat().st_size < expected:
        raise NanosegError(f"the MRC file is truncated ({path.stat().st_size} of {expected} bytes)",
                           path=path, hint=_HINT_CORRUPT)
    signal = _lazy_frames(file_reader, path, choice)
    opened = _from_rsciio(signal, path)
    header = (signal.get("original_metadata") or {}).get("std_header", {})
    if "fei_header" not in (signal.get("original_metadata") or {}):
        # an MRC without a cell size (Xlen = 0 or MX = 0) has no calibration; RosettaSciIO reports 1 nm then
        def first(key):
            return _to_float(np.ravel(header.get(key, [0]))[0])

        if not first("Xlen") or not first("MX"):
            opened.pixel_size_nm = None
    else:
        fei = signal["original_metadata"]["fei_header"]
        mag = _to_float(np.ravel(fei.get("magnification", [0]))[0])
        if mag:
            opened.metadata["magnification"] = mag
        exposure = _to_float(np.ravel(fei.get("exp_time", [0]))[0])
        if exposure:
            opened.metadata["exposure_s"] = exposure
    return opened


def _mrc_expected_size(path: Path) -> int | None:
    header = np.fromfile(path, dtype="<i4", count=56)
    if header.size < 56:
        raise NanosegError("the MRC header is incomplete (file shorter than 1024 bytes)", path=path,
                           hint=_HINT_CORRUPT)
    nx, ny, nz, mode = (int(v) for v in header[:4])
    itemsize = {0: 1, 1: 2, 2: 4, 4: 8, 6: 2, 12: 2}.get(mode)
    if itemsize is None or min(nx, ny, nz) <= 0:
        raise NanosegError(f"not a valid MRC header (nx={nx}, ny={ny}, nz={nz}, mode={mode})", path=path,
                           hint=_HINT_CORRUPT)
    return 1024 + int(header[23]) + nx * ny * nz * itemsize


def _tiff_series_choice(series_list, path, choice: SignalChoice) -> tuple[int, bool, list[str]]:
    """Which TIFF series to read, and whether the file's pages are the frames of one stack.

    Single-page series of one shape and dtype (pages appended one by one, no ImageJ/shaped metadata)
    are one stack. Series that differ (e.g. Olympus SIS: an RGB preview and the raw data) are separate
    signals, chosen like those of other multi-signal files."""
    if len(series_list) == 1:
        if choice not in (None, 0, "0"):
            raise NanosegError(f"no signal {choice!r}: this TIFF holds one image (series)", path=path)
        return 0, False, []
    same = {(tuple(x.shape), str(x.dtype)) for x in series_list}
    if len(same) == 1 and all(len(x.pages) == 1 for x in series_list) and choice is None:
        return 0, True, []
    labels = [f"{i} {'×'.join(str(n) for n in x.shape)} {x.dtype} ({x.axes})" for i, x in enumerate(series_list)]
    listing = "; ".join(labels)
    if choice is None:
        raise NanosegError(f"this TIFF holds {len(series_list)} images; choose one with signal= (its index): "
                           f"{listing}", path=path, hint="e.g. signal=1; `nanoseg info FILE` lists them")
    index = int(choice) if isinstance(choice, int) or str(choice).strip().lstrip("-").isdigit() else None
    if index is None or not -len(series_list) <= index < len(series_list):
        raise NanosegError(f"no signal {choice!r} in this TIFF; it holds: {listing}", path=path)
    return index % len(series_list), False, labels


def _tiff_vendor_calibration(path: Path, series_index: int) -> dict | None:
    """RosettaSciIO's reading of vendor TIFF tags (DigitalMicrograph, JEOL SightX, FEI/Thermo, TVIPS,
    Olympus SIS, Zeiss, ImageJ) for one series: its signal dict (lazy), or None when it has no
    calibrated axis or RosettaSciIO cannot parse the file."""
    try:
        from rsciio.tiff import file_reader

        with _quiet_rsciio():
            signals = file_reader(str(path), lazy=True)
    except Exception:  # nanoseg's own TIFF parsing still applies
        return None
    if series_index >= len(signals):
        return None
    signal = signals[series_index]
    if not any(a.get("units") for a in signal.get("axes", [])[-2:]):
        return None
    return signal


class _Recorder(logging.Handler):
    """Collects the problems tifffile logs instead of raising (it drops a page or tag it cannot read)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.thread = threading.get_ident()  # only this reader's records, when threads read in parallel

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tiff_problems(path: Path):
    """Turn the damage tifffile only logs (invalid page or tag offsets: a cut-off file) into one error,
    rather than reading what is left and silently losing frames or the calibration."""
    logger = logging.getLogger("tifffile")
    recorder = _Recorder()
    logger.addHandler(recorder)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
    damage = [m for m in recorder.messages if "offset" in m.lower()]
    if damage:
        why = " ".join(damage[0].split())[:200]
        raise NanosegError(f"the TIFF is damaged or truncated ({why})", path=path, hint=_HINT_CORRUPT)


def _check_tiff_extent(series_list, path: Path) -> None:
    """The pixel data of each series (its first and last page, or its contiguous block) must lie inside the
    file: tifffile reads a cut-off strip without complaint, as zeros or garbage."""
    size = path.stat().st_size
    for series in series_list:
        ends = []
        if getattr(series, "dataoffset", None) is not None:
            ends.append(int(series.dataoffset) + int(series.nbytes))
        last = len(series) - 1  # series[i] is page i, read without loading the pages in between
        for page in {id(p): p for p in (series[0], series[last]) if p is not None}.values() if last >= 0 else ():
            offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
            ends.extend(int(o) + int(c) for o, c in zip(offsets, counts, strict=False) if c)
        if ends and max(ends) > size:
            raise NanosegError(f"the TIFF is truncated (its pixel data runs to byte {max(ends)}, the file has {size})",
                               path=path, hint=_HINT_CORRUPT)


def _open_tiff(path: Path, choice: SignalChoice = None) -> _Opened:
    import tifffile

    with _tiff_problems(path), tifffile.TiffFile(path) as tif:
        series_list = list(tif.series)
        _check_tiff_extent(series_list, path)
        series_index, pages_are_frames, labels = _tiff_series_choice(series_list, path, choice)
        series = series_list[series_index]
        shape = tuple(int(n) for n in series.shape)
        if pages_are_frames:
            shape = (len(series_list), *shape)
        dtype = str(series.dtype)
        axes = ("I" if pages_are_frames else "") + series.axes
        page = series.pages[0]
        meta: dict[str, Any] = {}
        if labels:
            meta.update(signal_index=series_index, signals=labels)
        dose = None
        ij = tif.imagej_metadata or {}
        info = ij.get("Info")
        stored = None
        if isinstance(info, str) and info.startswith("{"):
            try:
                stored = json.loads(info).get("nanoseg")
            except ValueError:
                stored = None
        if isinstance(stored, dict):
            dose = _to_float(stored.get("dose_e_per_A2"))
            meta.update({k: v for k, v in (stored.get("metadata") or {}).items()})
            if dose:
                meta["dose_tag"] = "ImageJ Info nanoseg.dose_e_per_A2"
        # ImageJ files (nanoseg's own included) are read here; other TIFFs may carry vendor tags
        vendor = None if isinstance(stored, dict) or tif.is_imagej else _tiff_vendor_calibration(path, series_index)
        times = None
        if vendor is not None:  # vendor tags, read by RosettaSciIO
            pixel, axis_meta, times = _axes_calibration(vendor["axes"], path)
            meta.update(axis_meta)
            hs = dict(vendor.get("metadata") or {})
            _merge(hs, _apply_mapping(vendor.get("original_metadata") or {}, vendor.get("mapping")))
            meta.update({k: v for k, v in _standard_metadata(hs).items() if k != "title"})
        else:
            pixel = _tiff_pixel_size(tif, page, path, meta)
        tag = page.tags.get("DateTime")
        if tag is not None and "timestamp_s" not in meta:
            try:
                stamp = _dt.datetime.strptime(str(tag.value), "%Y:%m:%d %H:%M:%S").replace(tzinfo=_dt.UTC)
                meta["acquired"], meta["timestamp_s"] = stamp.isoformat(), stamp.timestamp()
            except ValueError:
                pass
        interval = _to_float(ij.get("finterval"))
    # planar samples (tifffile's "SYX"): a 3- or 4-frame stack written without metadata is stored this
    # way, indistinguishable from planar RGB; taken as frames, so that no frame silently vanishes
    if "S" in axes and axes != "SYX" and shape[-1] in (3, 4):  # interleaved RGB(A) TIFF → grey, in get
        shape = shape[:-1]
    squeezed = tuple(n for n in shape if n != 1) if len(shape) > 3 else shape
    if len(squeezed) not in (2, 3):
        raise NanosegError(f"expected a 2-D image or a 3-D stack, got a TIFF of shape {shape} ({axes})",
                           path=path, hint="save one image or one stack of images per file")
    if len(squeezed) == 3 and interval and times is None:
        times = [i * interval for i in range(squeezed[0])]
    if times is not None and len(times) != (squeezed[0] if len(squeezed) == 3 else 1):
        times = None
    rgb = "S" in axes and axes != "SYX"

    def get(index: int | None) -> np.ndarray:
        with tifffile.TiffFile(path) as tif:
            if pages_are_frames:
                array = tif.series[0 if index is None else index].asarray()
            elif index is None:
                array = tif.series[series_index].asarray()
            else:  # one frame of a stack, without reading the others (pages or contiguous data)
                import zarr

                with tif.series[series_index].aszarr() as store:
                    stack = zarr.open(store, mode="r")
                    if stack.shape[0] == squeezed[0]:
                        array = stack[index]
                    else:  # singleton axes before the frame axis (e.g. ImageJ TZCYX): squeeze first
                        array = np.squeeze(np.asarray(stack))[index]
        array = np.asarray(array)
        if rgb and array.ndim >= 3 and array.shape[-1] in (3, 4):
            array = _rgb_to_grey(array)
        return np.squeeze(array) if array.ndim > 2 else array

    return _Opened(squeezed, dtype, get, pixel, dose, meta, times)


def _tiff_pixel_size(tif, page, path, meta: dict) -> float | None:
    """ImageJ (resolution + unit), FEI/Thermo (PixelWidth in m) or cm resolution tags."""
    fei = getattr(tif, "fei_metadata", None)
    if fei:
        width = _to_float(_lookup(fei, "Scan.PixelWidth") or _lookup(fei, "EScan.PixelWidth"))
        if width:
            volt = _to_float(_lookup(fei, "EBeam.HV") or _lookup(fei, "Beam.HV"))
            if volt:
                meta["voltage_kV"] = volt / 1e3
            return length_to_nm(width, "m", path=path)
    tags = page.tags
    xres = tags.get("XResolution")
    if xres is None:
        return None
    num, den = xres.value if isinstance(xres.value, tuple) else (xres.value, 1)
    if not num or not den:
        return None
    pixels_per_unit = num / den
    ij = tif.imagej_metadata or {}
    unit_tag = tags.get("ResolutionUnit")
    res_unit = int(unit_tag.value) if unit_tag is not None else 2
    if ij.get("unit"):
        unit = str(ij["unit"]).replace("\\u00B5", "µ").replace("\\u00C5", "Å")
        if unit.lower() in ("pixel", "pixels", ""):
            return None
        return length_to_nm(1.0 / pixels_per_unit, unit, path=path)
    if res_unit == 3:  # centimetre
        return length_to_nm(1.0 / pixels_per_unit, "cm", path=path)
    # inch-based resolution is a print/screen DPI written by image editors, never a TEM calibration
    return None


def _rgb_to_grey(array: np.ndarray) -> np.ndarray:
    rgb = array[..., :3].astype(np.float32)
    return rgb @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


def _open_imageio(path: Path) -> _Opened:
    import imageio.v3 as iio

    array = np.asarray(iio.imread(path))
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = _rgb_to_grey(array)
    elif array.ndim == 3 and array.shape[-1] == 2:  # grey + alpha
        array = array[..., 0]
    dtype = str(array.dtype)
    return _Opened(array.shape, dtype, lambda i: array if i is None else array[i], None, None, {}, None)


def _open_npy(path: Path) -> _Opened:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.ndim not in (2, 3):
        raise NanosegError(f"expected a 2-D image or a 3-D stack, got an array of shape {array.shape}",
                           path=path, hint="save one image (rows, cols) or a stack (frames, rows, cols)")
    return _Opened(array.shape, str(array.dtype), lambda i: np.array(array if i is None else array[i]),
                   None, None, {}, None)


_OPENERS = {".dm3": _open_dm, ".dm4": _open_dm, ".emd": _open_emd, ".ser": _open_ser, ".emi": _open_emi,
            ".mrc": _open_mrc, ".img": _open_jeol, ".tif": _open_tiff, ".tiff": _open_tiff}
_SINGLE_SIGNAL = {".png": _open_imageio, ".jpg": _open_imageio, ".jpeg": _open_imageio, ".npy": _open_npy}


_VENDOR_EXTRA = ("imagecodecs", "sparse")  # pyproject's optional 'vendor' dependencies


def _library_failure(exc: Exception, path: Path, fmt: str, what: str) -> NanosegError:
    """One clear error for a reading library's exception: a missing optional package, or a bad file."""
    package = _missing_package(exc)
    if package is not None:
        return NanosegError(f"reading this {fmt} file needs the optional package '{package}', which is not "
                            "installed (the file itself may be fine)", path=path,
                            hint=f"install it: pip install {package}"
                            + (" (or nanoseg's extra: pip install 'nanoseg[vendor]')" if package in _VENDOR_EXTRA else ""))
    why = " ".join(str(exc).split())[:300]
    return NanosegError(f"cannot read {what} ({type(exc).__name__}: {why})", path=path, hint=_HINT_CORRUPT)


def _apply_pixel_size(path: Path, opened: _Opened, pixel_size_nm: float | None) -> None:
    """A given pixel size replaces the file's; the file's must be square and plausible."""
    if pixel_size_nm is not None:
        value = _to_float(pixel_size_nm)
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
          pixel_size_nm: float | None = None) -> tuple[Path, _Opened]:
    path = Path(path)
    ext = _check_path(path)
    fmt = FORMATS[ext]
    logging.getLogger("rsciio").setLevel(logging.CRITICAL)
    try:
        if ext in _SINGLE_SIGNAL:
            if signal not in (None, 0, "0"):
                raise NanosegError(f"no signal {signal!r}: a {fmt} file holds one image", path=path)
            opened = _SINGLE_SIGNAL[ext](path)
        else:
            opened = _OPENERS[ext](path, signal)
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
        raise _library_failure(exc, path, fmt, f"this {fmt} file") from None
    return path, opened


def _load(path: Path, opened: _Opened, index: int | None) -> np.ndarray:
    try:
        return opened.get(index)
    except NanosegError:
        raise
    except MemoryError:
        raise NanosegError("not enough memory to load the pixel data", path=path) from None
    except Exception as exc:
        raise _library_failure(exc, path, FORMATS[path.suffix.lower()], "the pixel data") from None


def _micrograph(path: Path, opened: _Opened, array: np.ndarray, extra: dict | None = None) -> Micrograph:
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


def _expand(paths_or_stack) -> list[Path]:
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
    paths = _expand(paths_or_stack)
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
