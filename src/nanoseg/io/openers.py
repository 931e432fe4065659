"""Format openers: one per microscope file format, each returning an :class:`Opened` (shape, a lazy frame
getter, calibration, metadata), and the choice of the image in a multi-signal file.

:mod:`nanoseg.io.readers` turns an :class:`Opened` into a :class:`~nanoseg.io.Micrograph` / ``Series``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import json
import logging
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.io.tags import (
    apply_mapping,
    axes_calibration,
    dose_from_tags,
    lookup,
    standard_metadata,
    to_float,
)
from nanoseg.io.units import is_reciprocal, length_to_nm

FORMATS = {
    ".dm3": "Gatan DigitalMicrograph", ".dm4": "Gatan DigitalMicrograph", ".emd": "EMD",
    ".ser": "TIA SER", ".emi": "TIA EMI", ".mrc": "MRC", ".img": "JEOL IMG", ".tif": "TIFF", ".tiff": "TIFF",
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".npy": "NumPy",
}
#: a signal of a multi-signal file: its position or its title (``General.title``, e.g. ``"HAADF"``)
SignalChoice = int | str | None
HINT_CORRUPT = "the file may be corrupt or truncated; re-export or copy it again"


@dataclass
class Opened:
    """What a format opener found: shape (frames first for stacks), a frame getter and calibration."""

    shape: tuple[int, ...]
    dtype: str
    get: Callable[[int | None], np.ndarray]  # None → the whole 2-D image; i → frame i of a stack
    pixel_size_nm: float | None = None
    dose_e_per_A2: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    frame_times_s: list[float] | None = None
    implausible_why: str | None = None  # what an implausible calibration most likely means, for the error


def check_path(path: Path) -> str:
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
    title = lookup(signal.get("metadata") or {}, "General.title") or lookup(
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
        raise NanosegError("the file holds no data", path=path, hint=HINT_CORRUPT)
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
    titles = [str(lookup(s.get("metadata") or {}, "General.title") or "").strip().lower() for s in signals]
    if choice.strip().lower() in titles:
        return titles.index(choice.strip().lower())
    if choice.strip().lstrip("-").isdigit():
        return _choice_index(signals, int(choice), path, listing)
    raise NanosegError(f"no signal {choice!r} in this file; it holds: {listing}", path=path)


def missing_package(exc: BaseException) -> str | None:
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


def _from_rsciio(signal: dict, path, extra_meta: dict | None = None, original_tags: dict | None = None) -> Opened:
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
    pixel, meta, times = axes_calibration(signal.get("axes", []), path)
    hs = dict(signal.get("metadata") or {})
    mapped = apply_mapping(signal.get("original_metadata") or {}, signal.get("mapping"))
    _merge(hs, mapped)
    meta.update(standard_metadata(hs))
    meta.update(extra_meta or {})
    dose, dose_tag = dose_from_tags(original_tags if original_tags is not None
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

    return Opened(shape, str(data.dtype), get, pixel, dose, meta, times)


def _merge(into: dict, other: dict) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


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
                           hint=HINT_CORRUPT)
    root = int.from_bytes(head[4:8], "big") if version == 3 else int.from_bytes(head[4:12], "big")
    expected = root + (12 if version == 3 else 16)
    size = path.stat().st_size
    if size < expected:
        raise NanosegError(f"the DM{version} file is truncated ({size} of {expected} bytes)", path=path,
                           hint=HINT_CORRUPT)


def _open_dm(path: Path, choice: SignalChoice = None) -> Opened:
    from rsciio.digitalmicrograph import file_reader

    _check_dm_length(path)
    signal = _lazy_frames(file_reader, path, choice)
    image_tags = lookup(signal.get("original_metadata") or {}, "ImageList.TagGroup0.ImageTags") or {}
    extra: dict[str, Any] = {}
    # DM keeps the exposure in one of a few places depending on the camera software
    for key in ("DataBar.Exposure Time (s)", "Acquisition.Parameters.High Level.Exposure (s)",
                "Acquisition.Parameters.Detector.exposure_s"):
        value = to_float(lookup(image_tags, key))
        if value:
            extra["exposure_s"] = value
            break
    for key in ("Microscope Info.Indicated Magnification", "Microscope Info.Actual Magnification"):
        value = to_float(lookup(image_tags, key))
        if value:
            extra["magnification"] = value
            break
    return _from_rsciio(signal, path, extra, original_tags=image_tags)


def _open_emd(path: Path, choice: SignalChoice = None) -> Opened:
    from rsciio.emd import file_reader

    try:
        signals = file_reader(str(path), lazy=True, sum_frames=False)
    except TypeError:
        signals = file_reader(str(path), lazy=True)
    _, signal = _pick_image(signals, path, choice)
    original = signal.get("original_metadata") or {}
    extra: dict[str, Any] = {}
    # Velox: voltage in V, nominal magnification, acquisition start as Unix time
    volt = to_float(lookup(original, "Optics.AccelerationVoltage"))
    if volt:
        extra["voltage_kV"] = volt / 1e3
    mag = to_float(lookup(original, "Optics.NominalMagnification"))
    if mag:
        extra["magnification"] = mag
    detector = lookup(original, "BinaryResult.DetectorIndex")
    exposure = to_float(lookup(original, f"Detectors.Detector-{detector}.ExposureTime"))
    if exposure:
        extra["exposure_s"] = exposure
    start = to_float(lookup(original, "Acquisition.AcquisitionStartDatetime.DateTime"))
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


def _open_ser(path: Path, choice: SignalChoice = None) -> Opened:
    """A TIA ``.ser``: read through its ``.emi`` when it lies beside it (the units, nm or 1/nm, and the
    acquisition metadata live there). Without one, RosettaSciIO assumes metres, which turns a
    diffraction pattern's 1/m calibration into an absurd pixel size: that is refused."""
    from rsciio.tia import file_reader

    emi = _companion_emi(path)
    if emi is not None:
        with _quiet_rsciio():
            signals = file_reader(str(emi), lazy=False)
        mine = [s for s in signals if lookup(s.get("metadata") or {}, "General.original_filename") == path.name]
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


def _open_emi(path: Path, choice: SignalChoice = None) -> Opened:
    """A TIA ``.emi`` with its ``name_N.ser`` data files (one signal per .ser)."""
    from rsciio.tia import file_reader

    with _quiet_rsciio():
        signals = file_reader(str(path), lazy=False)
    if not signals:
        raise NanosegError("no data files (name_1.ser, ...) beside this .emi", path=path,
                           hint="copy the .ser files written with it into the same folder")
    _, signal = _pick_image(signals, path, choice)
    return _from_rsciio(signal, path)


def _open_jeol(path: Path, choice: SignalChoice = None) -> Opened:
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


def _open_mrc(path: Path, choice: SignalChoice = None) -> Opened:
    from rsciio.mrc import file_reader

    expected = _mrc_expected_size(path)
    if expected is not None and path.stat().st_size < expected:
        raise NanosegError(f"the MRC file is truncated ({path.stat().st_size} of {expected} bytes)",
                           path=path, hint=HINT_CORRUPT)
    signal = _lazy_frames(file_reader, path, choice)
    opened = _from_rsciio(signal, path)
    header = (signal.get("original_metadata") or {}).get("std_header", {})
    if "fei_header" not in (signal.get("original_metadata") or {}):
        # an MRC without a cell size (Xlen = 0 or MX = 0) has no calibration; RosettaSciIO reports 1 nm then
        def first(key):
            return to_float(np.ravel(header.get(key, [0]))[0])

        if not first("Xlen") or not first("MX"):
            opened.pixel_size_nm = None
    else:
        fei = signal["original_metadata"]["fei_header"]
        mag = to_float(np.ravel(fei.get("magnification", [0]))[0])
        if mag:
            opened.metadata["magnification"] = mag
        exposure = to_float(np.ravel(fei.get("exp_time", [0]))[0])
        if exposure:
            opened.metadata["exposure_s"] = exposure
    return opened


def _mrc_expected_size(path: Path) -> int | None:
    header = np.fromfile(path, dtype="<i4", count=56)
    if header.size < 56:
        raise NanosegError("the MRC header is incomplete (file shorter than 1024 bytes)", path=path,
                           hint=HINT_CORRUPT)
    nx, ny, nz, mode = (int(v) for v in header[:4])
    itemsize = {0: 1, 1: 2, 2: 4, 4: 8, 6: 2, 12: 2}.get(mode)
    if itemsize is None or min(nx, ny, nz) <= 0:
        raise NanosegError(f"not a valid MRC header (nx={nx}, ny={ny}, nz={nz}, mode={mode})", path=path,
                           hint=HINT_CORRUPT)
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
        raise NanosegError(f"the TIFF is damaged or truncated ({why})", path=path, hint=HINT_CORRUPT)


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
                               path=path, hint=HINT_CORRUPT)


def _open_tiff(path: Path, choice: SignalChoice = None) -> Opened:
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
            dose = to_float(stored.get("dose_e_per_A2"))
            meta.update({k: v for k, v in (stored.get("metadata") or {}).items()})
            if dose:
                meta["dose_tag"] = "ImageJ Info nanoseg.dose_e_per_A2"
        # ImageJ files (nanoseg's own included) are read here; other TIFFs may carry vendor tags
        vendor = None if isinstance(stored, dict) or tif.is_imagej else _tiff_vendor_calibration(path, series_index)
        times = None
        if vendor is not None:  # vendor tags, read by RosettaSciIO
            pixel, axis_meta, times = axes_calibration(vendor["axes"], path)
            meta.update(axis_meta)
            hs = dict(vendor.get("metadata") or {})
            _merge(hs, apply_mapping(vendor.get("original_metadata") or {}, vendor.get("mapping")))
            meta.update({k: v for k, v in standard_metadata(hs).items() if k != "title"})
        else:
            pixel = _tiff_pixel_size(tif, page, path, meta)
        tag = page.tags.get("DateTime")
        if tag is not None and "timestamp_s" not in meta:
            try:
                stamp = _dt.datetime.strptime(str(tag.value), "%Y:%m:%d %H:%M:%S").replace(tzinfo=_dt.UTC)
                meta["acquired"], meta["timestamp_s"] = stamp.isoformat(), stamp.timestamp()
            except ValueError:  # not the TIFF "YYYY:MM:DD HH:MM:SS" form: no acquisition time, kept as text
                meta["datetime_text"] = str(tag.value)
        interval = to_float(ij.get("finterval"))
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

    return Opened(squeezed, dtype, get, pixel, dose, meta, times)


def _tiff_pixel_size(tif, page, path, meta: dict) -> float | None:
    """ImageJ (resolution + unit), FEI/Thermo (PixelWidth in m) or cm resolution tags."""
    fei = getattr(tif, "fei_metadata", None)
    if fei:
        width = to_float(lookup(fei, "Scan.PixelWidth") or lookup(fei, "EScan.PixelWidth"))
        if width:
            volt = to_float(lookup(fei, "EBeam.HV") or lookup(fei, "Beam.HV"))
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


def _open_imageio(path: Path) -> Opened:
    import imageio.v3 as iio

    array = np.asarray(iio.imread(path))
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = _rgb_to_grey(array)
    elif array.ndim == 3 and array.shape[-1] == 2:  # grey + alpha
        array = array[..., 0]
    dtype = str(array.dtype)
    return Opened(array.shape, dtype, lambda i: array if i is None else array[i], None, None, {}, None)


def _open_npy(path: Path) -> Opened:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.ndim not in (2, 3):
        raise NanosegError(f"expected a 2-D image or a 3-D stack, got an array of shape {array.shape}",
                           path=path, hint="save one image (rows, cols) or a stack (frames, rows, cols)")
    return Opened(array.shape, str(array.dtype), lambda i: np.array(array if i is None else array[i]),
                   None, None, {}, None)


OPENERS = {".dm3": _open_dm, ".dm4": _open_dm, ".emd": _open_emd, ".ser": _open_ser, ".emi": _open_emi,
            ".mrc": _open_mrc, ".img": _open_jeol, ".tif": _open_tiff, ".tiff": _open_tiff}
SINGLE_SIGNAL = {".png": _open_imageio, ".jpg": _open_imageio, ".jpeg": _open_imageio, ".npy": _open_npy}


_VENDOR_EXTRA = ("imagecodecs", "sparse")  # pyproject's optional 'vendor' dependencies


def library_failure(exc: Exception, path: Path, fmt: str, what: str) -> NanosegError:
    """One clear error for a reading library's exception: a missing optional package, or a bad file."""
    package = missing_package(exc)
    if package is not None:
        return NanosegError(f"reading this {fmt} file needs the optional package '{package}', which is not "
                            "installed (the file itself may be fine)", path=path,
                            hint=f"install it: pip install {package}"
                            + (" (or nanoseg's extra: pip install 'nanoseg[vendor]')" if package in _VENDOR_EXTRA else ""))
    why = " ".join(str(exc).split())[:300]
    return NanosegError(f"cannot read {what} ({type(exc).__name__}: {why})", path=path, hint=HINT_CORRUPT)
