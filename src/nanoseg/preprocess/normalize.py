"""Intensity normalization: standardize, min–max, percentile clip."""

from __future__ import annotations

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.preprocess._checks import as_image, number


def standardize(image):
    """Shift and scale to mean 0, standard deviation 1 (the per-image normalization of Sytwu et al.).

    Raises :class:`~nanoseg.errors.NanosegError` for a constant image (std 0), which cannot be scaled.

    >>> out = standardize(np.array([[1.0, 3.0], [5.0, 7.0]]))
    >>> [[round(float(v), 4) for v in row] for row in out]
    [[-1.3416, -0.4472], [0.4472, 1.3416]]
    """
    array = as_image(image, step="standardize")
    std = array.std()
    if not std > 0:
        raise NanosegError("standardize: the image is constant (standard deviation 0)",
                           hint="check the file: a blank or saturated frame cannot be normalized")
    return ((array - array.mean()) / std).astype(np.float32)


def minmax(image):
    """Scale linearly to [0, 1] (minimum → 0, maximum → 1). A constant image raises an error.

    >>> minmax(np.array([[2.0, 4.0], [6.0, 10.0]])).tolist()
    [[0.0, 0.25], [0.5, 1.0]]
    """
    array = as_image(image, step="minmax")
    low, high = array.min(), array.max()
    if not high > low:
        raise NanosegError("minmax: the image is constant (minimum = maximum)",
                           hint="check the file: a blank or saturated frame cannot be normalized")
    return ((array - low) / (high - low)).astype(np.float32)


def percentile_clip(image, *, low=0.5, high=99.5):
    """Clip intensities to the [``low``, ``high``] percentiles (in %), keeping the image's own units.

    Useful before :func:`minmax` so that a few hot or dead pixels do not set the scale.

    >>> clipped = percentile_clip(np.arange(101.0).reshape(1, 101), low=10, high=90)
    >>> float(clipped.min()), float(clipped.max()), clipped.dtype.name
    (10.0, 90.0, 'float32')
    """
    step = "percentile_clip"
    array = as_image(image, step=step)
    low = number(low, "low", step=step, minimum=0, maximum=100)
    high = number(high, "high", step=step, minimum=0, maximum=100)
    if not low < high:
        raise NanosegError(f"percentile_clip: low ({low}) must be below high ({high})")
    lo_value, hi_value = np.percentile(array, [low, high])
    return np.clip(array, lo_value, hi_value).astype(np.float32)
