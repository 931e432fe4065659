"""Input and parameter checks shared by the preprocessing steps (user mistakes → NanosegError)."""

from __future__ import annotations

import numbers

import numpy as np

from nanoseg.errors import NanosegError


def as_image(image, *, step: str) -> np.ndarray:
    """Return ``image`` as a finite 2-D float64 array, or raise a clear error naming the step."""
    if hasattr(image, "data") and hasattr(image, "pixel_size_nm"):  # a Micrograph passed by mistake
        image = image.data
    array = np.asarray(image)
    if array.ndim != 2:
        raise NanosegError(f"{step}: expected a 2-D image, got an array of shape {array.shape}",
                           hint="pass one frame (rows, cols)")
    if array.size == 0:
        raise NanosegError(f"{step}: the image is empty (0 pixels)")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise NanosegError(f"{step}: image data must be real numbers, got dtype {array.dtype}")
    array = np.asarray(array, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise NanosegError(f"{step}: image contains {int(bad.sum())} NaN/inf pixels of {bad.size}",
                           hint="the file may be corrupt; re-export it or mask the bad pixels first")
    return array


def number(value, name: str, *, step: str, minimum=None, maximum=None, strict_min=False,
           integer=False, allow_none=False):
    """Check that a parameter is a real number (or int) in range; return it as float/int."""
    if value is None and allow_none:
        return None
    ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok_type or not np.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise NanosegError(f"{step}: parameter {name} must be {kind}, got {value!r}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        rel = ">" if strict_min else ">="
        raise NanosegError(f"{step}: parameter {name} must be {rel} {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise NanosegError(f"{step}: parameter {name} must be <= {maximum}, got {value!r}")
    return int(value) if integer else float(value)


def choice(value, name: str, options, *, step: str):
    if value not in options:
        raise NanosegError(f"{step}: parameter {name} must be one of {list(options)}, got {value!r}")
    return value


FEW_GREY_LEVELS = 64  # an input with at most this many distinct values is flagged as coarsely quantized
_LEVEL_SAMPLE = 1 << 20  # grey levels are counted on at most this many pixels (a regular subsample)


def grey_levels(image) -> int:
    """The number of distinct values of an image, counted on a regular subsample of ≤ 2²⁰ pixels."""
    array = np.asarray(image)
    step = max(1, int(np.ceil(np.sqrt(array.size / _LEVEL_SAMPLE))))
    return int(np.unique(array[::step, ::step]).size)


def quantization_notes(micrograph) -> list[str]:
    """Warnings about coarse intensities: few grey levels (an 8-bit export, a low-dose frame of few counts) and
    lossy JPEG compression. Reading and preprocessing handle such inputs (ties and flat regions do not fail),
    but the network was trained on finely graded intensities, so its output deserves a look.

    >>> from nanoseg.io import Micrograph
    >>> quantization_notes(Micrograph(np.arange(64.0).reshape(8, 8) // 4))[0][:28]
    'the input has only 16 grey l'
    """
    notes = []
    n = grey_levels(micrograph.data)
    if n <= FEW_GREY_LEVELS:
        notes.append(f"the input has only {n} grey levels (coarsely quantized, e.g. an 8-bit export or few counts): "
                     "intensity differences smaller than one level are lost, so faint particles may be missed")
    if str(micrograph.metadata.get("format", "")).upper() == "JPEG":
        notes.append("the input is a lossy JPEG: its 8×8-block compression artifacts blur fine detail and can look "
                     "like texture; use the original (TIFF, DM, ...) where there is one")
    return notes
