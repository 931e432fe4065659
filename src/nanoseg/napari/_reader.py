"""The napari reader: every format :mod:`nanoseg.io` reads, opened as a calibrated image layer.

A single image becomes a 2-D layer, a stack (an in situ movie) or a folder of frames (a Gatan in situ capture
folder) a lazy 3-D layer (frames, rows, cols) read frame by frame with :func:`nanoseg.io.read_series`. ``scale`` holds the pixel size in nm (``units`` nm), so
napari's scale bar and cursor read nm; the frame axis keeps the frame index (scale 1), and the real frame
times, when the file has them, are in ``metadata["nanoseg"]["times_s"]``. A file without a calibration opens
with scale 1 and ``units`` pixel, and ``pixel_size_nm`` None: the widgets then ask for the pixel size.

Example
-------
>>> import tempfile, pathlib
>>> from nanoseg.io import example_micrograph, write_tiff
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ex.tif"
>>> write_tiff(path, example_micrograph())
>>> [(data, kwargs, kind)] = get_reader(str(path))(str(path))
>>> data.shape, kwargs["scale"], kwargs["units"], kind
((256, 256), (0.02, 0.02), ('nm', 'nm'), 'image')
>>> get_reader("notes.txt") is None
True
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nanoseg.io import FORMATS, Micrograph, read, read_series

#: what napari layer tuples look like: (data, layer keyword arguments, layer type)
LayerDataTuple = tuple[Any, dict[str, Any], str]


def get_reader(path: str | os.PathLike | list) -> Callable[[Any], list[LayerDataTuple]] | None:
    """npe2 reader hook: :func:`read_layers` for a file nanoseg reads or a folder of them (an in situ capture
    folder, opened as one movie), None for anything else."""
    paths = path if isinstance(path, list | tuple) else [path]
    if not paths or not all(_readable(Path(os.fspath(p))) for p in paths):
        return None
    return read_layers


def _readable(path: Path) -> bool:
    if path.is_dir():
        return any(p.suffix.lower() in FORMATS for p in path.rglob("*") if p.is_file())
    return path.suffix.lower() in FORMATS


def read_layers(path: str | os.PathLike | list) -> list[LayerDataTuple]:
    """Read one file (or each file of a list) into calibrated image layer tuples.

    Raises :class:`nanoseg.errors.NanosegError` (naming the file and the fix) for files nanoseg cannot read.
    """
    paths = path if isinstance(path, list | tuple) else [path]
    return [_read_one(Path(os.fspath(p))) for p in paths]


def _read_one(path: Path) -> LayerDataTuple:
    from nanoseg.io import describe

    if path.is_dir():  # every image file below it, in time order (read_series' rules)
        return stack_layer(read_series(path), name=path.name)
    n_frames = describe(path)["n_frames"]
    if n_frames == 1:
        return micrograph_layer(read(path), name=path.stem)
    series = read_series(path)
    return stack_layer(series, name=path.stem)


def micrograph_layer(micrograph: Micrograph, *, name: str) -> LayerDataTuple:
    """A 2-D image layer tuple with the micrograph's pixel size as its scale (nm)."""
    px = micrograph.pixel_size_nm
    meta = {"pixel_size_nm": px, "source": micrograph.source, "dose_e_per_A2": micrograph.dose_e_per_A2,
            "file_metadata": dict(micrograph.metadata)}
    return micrograph.data, {"name": name, **scale_kwargs(px, ndim=2), "metadata": {"nanoseg": meta}}, "image"


def stack_layer(series, *, name: str) -> LayerDataTuple:
    """A lazy 3-D (frames, rows, cols) image layer tuple of a :class:`nanoseg.io.Series` (dask, frame by frame).

    The frame times are recorded only when the series has real ones (``series.timing`` is not ``"index"``):
    the Track movie widget refuses an untimed movie without a frame interval, as ``nanoseg track`` does.
    """
    import dask
    import dask.array as da

    first = series[0]
    frames = [da.from_delayed(dask.delayed(_frame_data)(series, i), shape=first.shape, dtype=np.float32)
              for i in range(len(series))]
    timed = getattr(series, "timing", None) not in (None, "index")
    meta = {"pixel_size_nm": first.pixel_size_nm, "source": series.source,
            "dose_e_per_A2": first.dose_e_per_A2, "timing": getattr(series, "timing", None),
            "times_s": [float(t) for t in series.times_s] if timed else None,
            "file_metadata": dict(first.metadata)}
    kwargs = {"name": name, **scale_kwargs(first.pixel_size_nm, ndim=3), "metadata": {"nanoseg": meta}}
    return da.stack(frames), kwargs, "image"


def _frame_data(series, index: int) -> np.ndarray:
    return series[index].data


def scale_kwargs(pixel_size_nm: float | None, *, ndim: int) -> dict[str, tuple]:
    """``scale``/``units`` of a layer: nm per pixel on the image axes, frames on a leading movie axis."""
    lead_scale, lead_units = ((1.0,), ("pixel",)) if ndim == 3 else ((), ())
    if pixel_size_nm is None:
        return {"scale": lead_scale + (1.0, 1.0), "units": lead_units + ("pixel", "pixel")}
    return {"scale": lead_scale + (pixel_size_nm, pixel_size_nm), "units": lead_units + ("nm", "nm")}
