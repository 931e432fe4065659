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
