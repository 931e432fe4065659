"""Gaussian blur of the input: the variable Horwath et al. studied (σ = 0, 1, 2 px)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nanoseg.preprocess._checks import as_image, number


def gaussian_blur(image, *, sigma_px=1.0):
    """Blur with a Gaussian of standard deviation ``sigma_px`` pixels (reflecting borders).

    ``sigma_px = 0`` returns the image unchanged (as float32). Blur suppresses lattice fringes (high
    spatial frequencies) and keeps amplitude contrast.

    >>> img = np.zeros((9, 9)); img[4, 4] = 1.0
    >>> out = gaussian_blur(img, sigma_px=1.0)
    >>> float(round(out.sum(), 5)), bool(out[4, 4] < 1)
    (1.0, True)
    """
    array = as_image(image, step="gaussian_blur")
    sigma_px = number(sigma_px, "sigma_px", step="gaussian_blur", minimum=0, maximum=1000)
    if sigma_px == 0:
        return array.astype(np.float32)
    return ndimage.gaussian_filter(array, sigma=sigma_px, mode="reflect").astype(np.float32)
