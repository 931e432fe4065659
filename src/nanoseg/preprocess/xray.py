"""X-ray / hot-pixel removal: isolated pixels far above the image median are replaced."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nanoseg.preprocess._checks import as_image, choice, number

_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)
_MAD_TO_SIGMA = 1.4826


def robust_sigma(image) -> float:
    """Noise level from the median absolute deviation (1.4826 × MAD), insensitive to outliers.

    >>> float(round(robust_sigma(np.array([[0.0, 1.0], [2.0, 100.0]])), 4))
    1.4826
    """
    array = np.asarray(image, dtype=np.float64)
    return float(_MAD_TO_SIGMA * np.median(np.abs(array - np.median(array))))


def remove_xrays(image, *, threshold=None, n_sigma=8.0, max_passes=2, method="neighbour_mean"):
    """Replace x-ray hits and hot pixels (values above ``median + T``) by their surroundings.

    Parameters
    ----------
    image : 2-D array
        The raw micrograph (any intensity unit).
    threshold : float, optional
        ``T`` in the image's own intensity units: a pixel is an outlier when it exceeds
        ``median(image) + T``. When None, ``T = n_sigma × robust sigma`` (1.4826 × median absolute
        deviation), so the rule adapts to dose and gain.
    n_sigma : float
        Used only when ``threshold`` is None. The default 8 keeps false hits in a 4096² Gaussian-noise
        frame far below one.
    max_passes : int
        Replace, re-detect and replace again up to this many times (the Sytwu protocol uses 2); stops
        early once no outlier is left.
    method : {"neighbour_mean", "median"}
        ``"neighbour_mean"``: the mean of the 8 neighbours that are not outliers themselves (a pixel
        whose neighbours are all outliers waits for the next pass; after the last pass it gets the 3×3
        median). ``"median"``: the 3×3 median of the neighbourhood.

    Returns
    -------
    cleaned : float32 array, same shape
    n_found : int
        Number of distinct pixels that were replaced.

    Example
    -------
    >>> img = np.ones((5, 5)); img[2, 2] = 100.0
    >>> cleaned, n = remove_xrays(img, threshold=10.0)
    >>> n, float(cleaned[2, 2])
    (1, 1.0)
    """
    step = "remove_xrays"
    array = as_image(image, step=step)
    threshold = number(threshold, "threshold", step=step, minimum=0, strict_min=True, allow_none=True)
    n_sigma = number(n_sigma, "n_sigma", step=step, minimum=0, strict_min=True)
    max_passes = number(max_passes, "max_passes", step=step, minimum=1, integer=True)
    choice(method, "method", ("neighbour_mean", "median"), step=step)

    median = float(np.median(array))
    if threshold is None:
        sigma = robust_sigma(array)
        if sigma == 0:  # more than half the pixels identical: use the spread of the rest
            sigma = float(np.std(array))
        threshold = n_sigma * sigma
    limit = median + threshold
    cleaned = array.copy()
    found = np.zeros(array.shape, dtype=bool)
    for _ in range(max_passes):
        outliers = cleaned > limit
        if not outliers.any():
            break
        found |= outliers
        if method == "median":
            cleaned[outliers] = ndimage.median_filter(cleaned, size=3, mode="mirror")[outliers]
            continue
        good = (~outliers).astype(np.float64)
        total = ndimage.convolve(cleaned * good, _NEIGHBOURS, mode="mirror")
        count = ndimage.convolve(good, _NEIGHBOURS, mode="mirror")
        fixable = outliers & (count > 0)
        cleaned[fixable] = total[fixable] / count[fixable]
    remaining = cleaned > limit
    if remaining.any() and method == "neighbour_mean":
        # clusters larger than the pass limit can clear: fall back to the local median
        cleaned[remaining] = ndimage.median_filter(cleaned, size=3, mode="mirror")[remaining]
    return cleaned.astype(np.float32), int(found.sum())
