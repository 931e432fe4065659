"""Unknown scale: the particle diameter in pixels estimated from the image, and the pixel size it implies."""

from __future__ import annotations

import numpy as np
import pytest

from nanoseg.errors import NanosegError
from nanoseg.infer.scale import assumed_pixel_size_nm, estimate_particle_diameter_px, typical_diameter_nm
from nanoseg.models import ModelCard


def discs_field(diameter_px: float, *, shape=(256, 256), bright=False, noise=0.08, n=14, seed=0, spread=0.1):
    """Non-overlapping discs of about ``diameter_px`` (±``spread``) placed at random, with Gaussian noise
    and a slow illumination gradient; dark on bright (BF-TEM) or bright on dark (HAADF)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    placed: list[tuple[float, float, float]] = []
    for _ in range(4000):
        if len(placed) == n:
            break
        r = diameter_px / 2 * rng.uniform(1 - spread, 1 + spread)
        cy, cx = rng.uniform(r, shape[0] - r), rng.uniform(r, shape[1] - r)
        if all((cy - y) ** 2 + (cx - x) ** 2 > (r + q + 2) ** 2 for y, x, q in placed):
            placed.append((cy, cx, r))
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    base = 1.0 + 0.2 * xx / shape[1]
    image = np.where(mask, 1.6 if bright else 0.6, 1.0) * base if not bright else np.where(mask, 1.0, 0.1) * base
    return image + rng.normal(0, noise, shape), len(placed)


@pytest.mark.parametrize("diameter_px", [6, 12, 24, 48])
@pytest.mark.parametrize("bright", [False, True])
def test_estimated_diameter_within_25_percent(diameter_px, bright):
    n = 14 if diameter_px < 40 else 6
    image, placed = discs_field(diameter_px, bright=bright, n=n, seed=diameter_px)
    assert placed >= 4
    estimate = estimate_particle_diameter_px(image)
    assert estimate.polarity == ("bright" if bright else "dark")
    assert estimate.diameter_px == pytest.approx(diameter_px, rel=0.25), estimate


def test_estimate_on_a_large_frame_is_binned_and_still_right():
    image, _ = discs_field(40, shape=(1500, 1400), n=60, seed=3)
    estimate = estimate_particle_diameter_px(image, max_side_px=512)
    assert estimate.binning == 3 and estimate.diameter_px == pytest.approx(40, rel=0.25)


def test_blank_or_noise_only_image_gives_no_estimate():
    noise = np.random.default_rng(0).normal(1, 0.05, (128, 128))
    with pytest.raises(NanosegError, match="particle"):
        estimate_particle_diameter_px(np.ones((64, 64)))
    estimate = estimate_particle_diameter_px(noise, source="noise.png")
    assert estimate.diameter_px is None and estimate.n_blobs == 0


def test_pixel_size_puts_the_particle_at_the_typical_training_size():
    card = ModelCard(architecture="x", pixel_size_nm=0.04, particle_diameter_range_nm=(1.0, 16.0))
    assert typical_diameter_nm(card) == pytest.approx(4.0)  # geometric mean of the trained range
    px, notes = assumed_pixel_size_nm(20.0, card, image_shape=(256, 256))
    assert px == pytest.approx(0.2) and notes == []
    # a frame whose model grid would exceed the cap is resampled less, and says so
    px, notes = assumed_pixel_size_nm(4.0, card, image_shape=(2048, 2048), max_grid_pixels=4096**2)
    assert px == pytest.approx(0.08) and "capped" in notes[0]
    with pytest.raises(NanosegError, match="particle_diameter_range_nm"):
        assumed_pixel_size_nm(20.0, ModelCard(architecture="x", pixel_size_nm=0.04), image_shape=(64, 64))
