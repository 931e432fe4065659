"""Shared fixtures: small, deterministic, fast."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def disks_image(shape=(128, 128), centers_radii=((40, 40, 10), (90, 80, 14)), *, background=1.0,
                particle=0.6, noise=0.05, seed=0):
    """A noisy bright background with dark disks (HRTEM-like amplitude contrast) and its true mask."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    for cy, cx, r in centers_radii:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    image = np.where(mask, particle, background).astype(np.float32)
    image += np.random.default_rng(seed).normal(0, noise, shape).astype(np.float32)
    return image, mask


@pytest.fixture
def disks():
    return disks_image()
