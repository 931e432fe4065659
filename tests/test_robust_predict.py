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

from nanoseg.errors import NanosegError
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


# ------------------------------------------------------------------------------ 4. unknown scale
def dark_discs(diameter_px=16, shape=(128, 128), *, seed=0):
    """Dark discs of one diameter on a bright, noisy background (bright-field TEM-like) and the mask."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, dtype=bool)
    step = int(diameter_px * 2)
    for cy in range(step // 2, shape[0] - diameter_px // 2, step):
        for cx in range(step // 2, shape[1] - diameter_px // 2, step):
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter_px / 2) ** 2
    image = np.where(mask, 0.5, 1.0) + np.random.default_rng(seed).normal(0, 0.05, shape)
    return image.astype(np.float32), mask


CALIBRATED_CARD = {"architecture": "dark", "pixel_size_nm": 0.1, "particle_diameter_range_nm": (1.0, 4.0),
                   "preprocessing": [{"name": "standardize"}]}  # typical training diameter: √(1·4) = 2 nm


def _dark_model(**card) -> LoadedModel:
    return _model(ModelCard(**{**CALIBRATED_CARD, **card}), BrightIsParticle(level=-0.5, gain=-8.0))


def test_predict_without_pixel_size_estimates_it_from_the_particle_size():
    image, truth = dark_discs(16)
    pred = predict(Micrograph(image, source="uncalibrated.png"), _dark_model(), device="cpu", engine="eager",
                   ood=False)
    assert pred.pixel_size_nm == pytest.approx(2.0 / 16, rel=0.25)  # puts 16 px at the typical 2 nm
    note = next(w for w in pred.warnings if w.startswith("no pixel size in uncalibrated.png"))
    assert "assumed" in note and "estimated particle diameter of" in note
    assert "pixel_size_nm=" in note and "particle_diameter_px=" in note  # the CLI names its flags instead
    assert pred.metadata["pixel_size_source"] == "estimated from the particle size"
    inter = (pred.mask.astype(bool) & truth).sum()
    assert 2 * inter / (pred.mask.sum() + truth.sum()) > 0.9


def test_a_given_particle_diameter_sets_the_assumed_pixel_size():
    image, _ = dark_discs(16)
    pred = predict(Micrograph(image, source="u.png"), _dark_model(), particle_diameter_px=20, device="cpu",
                   engine="eager", ood=False)
    assert pred.pixel_size_nm == pytest.approx(0.1)  # 2 nm / 20 px
    assert any("from the given particle diameter of 20 px" in w for w in pred.warnings)
    assert pred.metadata["pixel_size_source"] == "particle_diameter_px"
    # a known pixel size wins, and the ignored option is mentioned
    known = predict(Micrograph(image, pixel_size_nm=0.2), _dark_model(), particle_diameter_px=20, device="cpu",
                    engine="eager", ood=False)
    assert known.pixel_size_nm == 0.2 and any("ignored" in w for w in known.warnings)


def test_no_pixel_size_and_no_visible_particles_is_one_clear_error():
    noise = np.random.default_rng(0).normal(1, 0.05, (64, 64))
    with pytest.raises(NanosegError, match="no pixel size") as err:
        predict(Micrograph(noise, source="noise.png"), _dark_model(), device="cpu", engine="eager")
    assert "noise.png" in str(err.value) and "particle_diameter_px=" in str(err.value)
    # the old decision still works: the model's pixel size, said in a warning
    pred = predict(Micrograph(noise, source="noise.png"), _dark_model(), assume_model_pixel_size=True,
                   device="cpu", engine="eager", ood=False)
    assert pred.pixel_size_nm is None and any("assumed the model's" in w for w in pred.warnings)


# ------------------------------------------------------------------------------ 5. never a silent empty mask
def test_an_empty_mask_comes_with_a_warning():
    image, _ = dark_discs(16)
    never = _model(ModelCard(**CALIBRATED_CARD), BrightIsParticle(level=50.0))
    pred = predict(Micrograph(image, pixel_size_nm=0.1), never, device="cpu", engine="eager", ood=False)
    assert pred.mask.sum() == 0
    assert any("empty" in w for w in pred.warnings), pred.warnings


def test_a_flooded_mask_comes_with_a_warning():
    image, _ = dark_discs(16)
    always = _model(ModelCard(**CALIBRATED_CARD), BrightIsParticle(level=-50.0))
    pred = predict(Micrograph(image, pixel_size_nm=0.1), always, device="cpu", engine="eager", ood=False)
    assert pred.mask.mean() > 0.99
    assert any("covers 100% of the field" in w for w in pred.warnings), pred.warnings


def test_particles_outside_the_trained_sizes_come_with_a_warning():
    image, _ = dark_discs(16)  # 16 px at 0.1 nm/px = 1.6 nm: inside the trained 1-4 nm
    inside = predict(Micrograph(image, pixel_size_nm=0.1), _dark_model(), device="cpu", engine="eager", ood=False)
    assert not any("trained" in w for w in inside.warnings), inside.warnings
    small = predict(Micrograph(image, pixel_size_nm=0.1), _dark_model(particle_diameter_range_nm=(3.0, 10.0)),
                    device="cpu", engine="eager", ood=False)
    assert any("smaller than the smallest trained" in w for w in small.warnings), small.warnings
    large = predict(Micrograph(image, pixel_size_nm=0.1), _dark_model(particle_diameter_range_nm=(0.2, 0.8)),
                    device="cpu", engine="eager", ood=False)
    assert any("larger than the largest trained" in w for w in large.warnings), large.warnings


# ------------------------------------------------------------------------------ 3. 8-bit and JPEG inputs
def _quantized_files(tmp_path, n_levels=17):
    """A 17-grey-level uint8 PNG and a JPEG of it (no pixel size in either), dark 12 px discs."""
    from PIL import Image

    image, _ = dark_discs(12)
    steps = np.round((image - image.min()) / (image.max() - image.min()) * (n_levels - 1))
    pixels = (steps * (255 // (n_levels - 1))).astype(np.uint8)
    pixels[0, :n_levels] = np.arange(n_levels) * (255 // (n_levels - 1))  # every level occurs
    assert len(np.unique(pixels)) == n_levels
    Image.fromarray(pixels).save(tmp_path / "levels.png")
    Image.fromarray(pixels).save(tmp_path / "levels.jpg", quality=75)
    return tmp_path / "levels.png", tmp_path / "levels.jpg"


def test_predict_runs_on_a_17_level_png_and_a_jpeg_and_says_so(tmp_path):
    png, jpg = _quantized_files(tmp_path)
    model = _dark_model(preprocessing=SYTWU_PIPELINE.to_spec())
    for path in (png, jpg):
        micrograph = read(path)
        pred = predict(micrograph, model, device="cpu", engine="eager", ood=False)
        assert pred.mask.shape == micrograph.shape and 0.05 < pred.mask.mean() < 0.5
        assert pred.pixel_size_nm == pytest.approx(2.0 / 12, rel=0.25)
    png_pred = predict(read(png), model, device="cpu", engine="eager", ood=False)
    assert any("only 17 grey levels" in w for w in png_pred.warnings), png_pred.warnings
    jpg_pred = predict(read(jpg), model, device="cpu", engine="eager", ood=False)
    assert any("JPEG" in w for w in jpg_pred.warnings), jpg_pred.warnings


# ------------------------------------------------------------------------------ 2. predict --pipeline
@pytest.fixture
def cli_checkpoint(tmp_path):
    from nanoseg.models import build_model, save_model

    torch.manual_seed(0)
    card = ModelCard(**{**CALIBRATED_CARD, "architecture": "unet3"})
    return save_model(tmp_path / "model", build_model("unet3"), card)


def _cli(*args):
    from typer.testing import CliRunner

    from nanoseg.cli import app

    return CliRunner().invoke(app, ["predict", *map(str, args), "--no-progress"])


def test_predict_cli_pipeline_file_and_particle_diameter(tmp_path, cli_checkpoint):
    import json

    from nanoseg.io import write_tiff

    write_tiff(tmp_path / "u.tif", dark_discs(16, (64, 64))[0])  # no pixel size in the file
    spec = tmp_path / "train.yaml"  # the format of a training spec's preprocessing: list
    spec.write_text("preprocessing:\n  - {name: gaussian_blur, sigma_px: 1.0}\n  - {name: standardize}\n")
    out = tmp_path / "out"
    result = _cli(tmp_path / "u.tif", "--out", out, "--model", cli_checkpoint, "--pipeline", spec,
                  "--particle-diameter-px", 20)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "u.json").read_text())
    assert meta["preprocessing"]["source"] == "--pipeline" and meta["preprocessing"]["differs_from_card"]
    assert meta["preprocessing"]["steps"] == [{"name": "gaussian_blur", "sigma_px": 1.0}, {"name": "standardize"}]
    assert meta["pixel_size_nm"] == pytest.approx(0.1) and meta["pixel_size_source"] == "particle_diameter_px"
    assert "instead of the model card's" in result.output
    assert "--particle-diameter-px" in result.output  # the warning names the flag, not the Python parameter


def test_predict_cli_named_pipeline_and_a_bad_one(tmp_path, cli_checkpoint):
    import json

    from nanoseg.io import write_tiff

    write_tiff(tmp_path / "c.tif", dark_discs(16, (64, 64))[0], pixel_size_nm=0.1)
    result = _cli(tmp_path / "c.tif", "--out", tmp_path / "a", "--model", cli_checkpoint, "--pipeline", "sytwu")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "a" / "c.json").read_text())["preprocessing"]
    assert record["name"] == "sytwu" and record["differs_from_card"]
    plain = _cli(tmp_path / "c.tif", "--out", tmp_path / "b", "--model", cli_checkpoint)
    record = json.loads((tmp_path / "b" / "c.json").read_text())["preprocessing"]
    assert record == {"source": "card", "name": None, "steps": [{"name": "standardize"}], "differs_from_card": False}
    assert plain.exit_code == 0 and "instead of the model card's" not in plain.output
    bad = _cli(tmp_path / "c.tif", "--out", tmp_path / "c", "--model", cli_checkpoint, "--pipeline", "nonesuch")
    assert bad.exit_code != 0 and "sytwu" in str(bad.exception) and "nonesuch" in str(bad.exception)


def test_predict_help_lists_the_builtin_pipelines():
    from typer.testing import CliRunner

    from nanoseg.cli import app
    from nanoseg.preprocess import BUILTIN

    text = " ".join(CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "--pipeline" in text and "--particle-diameter-px" in text
    assert all(name in text for name in BUILTIN)
