"""Robust preprocessing and prediction on inputs unlike the training set (issue #15 items 3-4).

HAADF-STEM images (dark background, bright particles) where the flat field cannot divide, a predict
pipeline other than the card's, few-grey-level 8-bit/JPEG inputs, unknown scale, empty/flooded masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nanoseg.infer import predict
from nanoseg.io import Micrograph, read
from nanoseg.models import LoadedModel, ModelCard
from nanoseg.preprocess import SYTWU_PIPELINE

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
MULTI_SIGNAL_DM3 = SHARED / "vendor" / "dm" / "multi_signal.dm3"


def haadf_like(shape=(96, 96), discs=((20, 20, 12), (20, 50, 10), (48, 22, 10), (75, 75, 6)), *, seed=0):
    """A HAADF-STEM-like frame: Poisson counts on a near-zero background, bright discs (clustered in one
    corner, so the robust Bézier background dips below zero elsewhere: -5 counts), and its mask."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    for cy, cx, r in discs:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    expected = np.where(mask, 400.0, 0.5)
    return np.random.default_rng(seed).poisson(expected).astype(np.float32), mask


class BrightIsParticle(nn.Module):
    """A hand-made 'network': particle logit = gain·(pixel − level), so bright (standardized) pixels are particles."""

    size_multiple = 4
    architecture = "bright_is_particle"

    def __init__(self, level: float = 0.5, gain: float = 8.0):
        super().__init__()
        self.level, self.gain = level, gain

    def forward(self, x):
        return torch.cat([torch.zeros_like(x), self.gain * (x - self.level)], dim=1)


def _model(card: ModelCard, net: nn.Module | None = None) -> LoadedModel:
    return LoadedModel((net or BrightIsParticle()).eval(), card, path=None)


# ------------------------------------------------------------------------------ 1. flat field never crashes
def test_sytwu_pipeline_on_a_haadf_like_image_subtracts_and_warns():
    image, _ = haadf_like()
    notes: list[str] = []
    out = SYTWU_PIPELINE(image, warnings=notes)
    assert out.shape == image.shape and np.isfinite(out).all()
    assert abs(float(out.mean())) < 1e-3 and abs(float(out.std()) - 1) < 1e-3  # standardized after the fallback
    assert len(notes) == 1 and "flat_field" in notes[0] and "subtract" in notes[0]


def test_pipeline_without_a_collector_warns_in_python():
    image, _ = haadf_like()
    with pytest.warns(UserWarning, match="subtract"):
        SYTWU_PIPELINE(image)


def test_predict_passes_the_flat_field_fallback_into_its_warnings():
    image, truth = haadf_like()
    card = ModelCard(architecture="bright", pixel_size_nm=0.5, preprocessing=SYTWU_PIPELINE.to_spec())
    pred = predict(Micrograph(image, pixel_size_nm=0.5, source="haadf.tif"), _model(card), device="cpu",
                   engine="eager", ood=False)
    assert any("flat_field" in w and "subtract" in w for w in pred.warnings), pred.warnings
    inter = (pred.mask.astype(bool) & truth).sum()
    assert 2 * inter / (pred.mask.sum() + truth.sum()) > 0.9


@pytest.mark.skipif(not MULTI_SIGNAL_DM3.exists(), reason="../shared (vendor files) not present")
def test_real_dm3_haadf_runs_through_the_sytwu_pipeline():
    micrograph = read(MULTI_SIGNAL_DM3)
    notes: list[str] = []
    out = SYTWU_PIPELINE.apply(micrograph, warnings=notes)
    assert out.shape == (512, 512) and np.isfinite(out.data).all()
    assert len(notes) == 1 and "subtract" in notes[0] and out.metadata["preprocessing_warnings"] == notes
