"""nanoseg.train: a tiny dataset trains a small model; resume, cross-validation, cards, CLI, losses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import disks_image
from nanoseg.datasets import DatasetWriter
from nanoseg.errors import NanosegError
from nanoseg.models import load_model
from nanoseg.train import TrainConfig, cross_validate, hard_dice, soft_dice, train_model
from nanoseg.train.losses import SegmentationLoss, inverse_frequency_weights


@pytest.fixture(autouse=True)
def _one_thread():
    """Small convolutions run faster on one thread, especially on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def disks_dataset(tmp_path_factory):
    """10 noisy 64² images of dark disks (raw counts around 100 e/px), two per session."""
    root = tmp_path_factory.mktemp("data") / "disks"
    rng = np.random.default_rng(0)
    with DatasetWriter(root) as w:
        for i in range(10):
            disks = [(int(rng.integers(10, 54)), int(rng.integers(10, 54)), int(rng.integers(5, 10))) for _ in range(3)]
            image, mask = disks_image((64, 64), disks, noise=0.15, seed=i)
            w.add(f"im{i}", np.clip(image, 0, None) * 100, mask,
                  {"pixel_size_nm": 0.05, "material": "Au" if i % 2 else "Pt", "dose_e_per_A2": 400.0 + i,
                   "voltage_kV": 300.0, "diameter_nm": 0.8, "detector": "counting", "session": f"s{i // 2}"})
    return root


SMALL = {"model": "sytwu_resunet", "model_config": {"depth": 2, "filters": [8, 8, 8]}, "patch_size": 32,
         "lr": 1e-2, "batch_size": 8, "device": "cpu"}


def test_tiny_model_learns(disks_dataset, tmp_path):
    cfg = TrainConfig(**SMALL, epochs=6)
    out = train_model([disks_dataset], cfg, tmp_path / "run", progress=False)
    history = pd.read_csv(out / "history.csv")
    assert history["train_loss"].iloc[-1] < 0.5 * history["train_loss"].iloc[0]
    loaded = load_model(out)
    card = loaded.card
    # held-out (test) patches: hard Dice far above the best constant predictor
    split = json.loads((out / "split.json").read_text())
    from nanoseg.datasets import open_dataset

    ds = open_dataset(disks_dataset)
    scores, const_all, const_none = [], [], []
    for image_id in split["test"]:
        image, mask = ds.image(image_id), ds.mask(image_id)
        x = torch.from_numpy((image - image.mean()) / image.std())[None, None]
        labels = torch.from_numpy(mask.astype(np.int64))[None]
        with torch.no_grad():
            scores.append(float(hard_dice(loaded.module(x), labels)[0]))
        ones = torch.zeros(1, 2, 64, 64)
        ones[:, 1] = 1
        const_all.append(float(hard_dice(ones, labels)[0]))
        const_none.append(float(hard_dice(-ones, labels)[0]))
    baseline = max(np.mean(const_all), np.mean(const_none))
    assert np.mean(scores) > baseline + 0.3 and np.mean(scores) > 0.7
    assert card.metrics["test_hard_dice"] > baseline + 0.3
    # the card describes the training distribution from the metadata
    assert card.architecture == "sytwu_resunet" and card.n_parameters > 0 and card.receptive_field_px == 44
    assert card.pixel_size_nm == 0.05 and card.materials == ["Au", "Pt"] and card.detectors == ["counting"]
    assert card.dose_range_e_per_A2[0] >= 400 and card.dose_range_e_per_A2[1] <= 409
    assert card.voltage_range_kV == (300.0, 300.0) and card.particle_diameter_range_nm == (0.8, 0.8)
    assert card.training["n_images"] == {"train": 7, "val": 1, "test": 2}
    assert card.training["best_epoch"] >= 1 and "CPU" in card.training["machine"]
    assert card.preprocessing == [{"name": "standardize"}] and card.seed == 0
    assert (out / "curves.png").stat().st_size > 1000 and (out / "last.pt").exists()
    # rerunning a finished run returns at once
    assert train_model([disks_dataset], cfg, out, progress=False) == out


def test_selection_last_keeps_the_final_epoch(disks_dataset, tmp_path):
    cfg = TrainConfig(**{**SMALL, "model_config": {"depth": 2, "filters": [4, 4, 4]}}, epochs=3, selection="last")
    out = train_model([disks_dataset], cfg, tmp_path / "run", progress=False)
    card = load_model(out).card
    assert card.training["best_epoch"] == 3 and card.training["selection"] == "last"
    final = torch.load(out / "last.pt", weights_only=True)["model"]
    kept = load_model(out).module.state_dict()
    for key in kept:
        torch.testing.assert_close(kept[key], final[key], rtol=0, atol=0)


def test_resume_after_interruption_gives_the_same_weights(disks_dataset, tmp_path):
    cfg = TrainConfig(**{**SMALL, "model_config": {"depth": 2, "filters": [4, 4, 4]}}, epochs=3,
                      augmentation={"dihedral": True, "noise_rho_max": 0.5}, schedule="cosine")
    full = train_model([disks_dataset], cfg, tmp_path / "full", progress=False)

    class Crash(Exception):
        pass

    def crash_after_two(epoch, row):
        if epoch == 2:
            raise Crash

    with pytest.raises(Crash):
        train_model([disks_dataset], cfg, tmp_path / "cut", progress=False, on_epoch_end=crash_after_two)
    assert not (tmp_path / "cut" / "card.json").exists()
    state = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)  # no pickled code inside
    assert state["epoch"] == 1
    resumed = train_model([disks_dataset], cfg, tmp_path / "cut", progress=False)
    a, b = load_model(full).module.state_dict(), load_model(resumed).module.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    ha, hb = pd.read_csv(full / "history.csv"), pd.read_csv(resumed / "history.csv")
    np.testing.assert_allclose(ha["train_loss"], hb["train_loss"], rtol=1e-6)
    # a different config in the same directory is refused
    with pytest.raises(NanosegError, match="different config"):
        (resumed / "card.json").unlink()
        train_model([disks_dataset], cfg.with_overrides(lr=1e-3), resumed, progress=False)


def test_cross_validation_is_grouped_and_summarised(disks_dataset, tmp_path):
    cfg = TrainConfig(**{**SMALL, "model_config": {"depth": 2, "filters": [4, 4, 4]}}, epochs=1,
                      group_by="session", seed=5)
    summary = cross_validate([disks_dataset], cfg, tmp_path / "cv", folds=3, progress=False)
    folds = summary[summary["fold"].isin([0, 1, 2])]
    assert len(folds) == 3 and list(summary["fold"].iloc[-2:]) == ["mean", "std"]
    assert list(folds["seed"]) == [5, 6, 7]
    assert (tmp_path / "cv" / "summary.csv").exists()
    tested = []
    for fold in range(3):
        split = json.loads((tmp_path / "cv" / f"fold{fold}" / "split.json").read_text())
        parts = [{f"s{int(i[2:]) // 2}" for i in split[k]} for k in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])  # no session leaks
        tested += split["test"]
        assert (tmp_path / "cv" / f"fold{fold}" / "weights.safetensors").exists()
    assert sorted(tested) == sorted(f"im{i}" for i in range(10))


def test_config_errors(tmp_path, disks_dataset):
    with pytest.raises(NanosegError, match="unknown model"):
        TrainConfig.from_dict({"model": "resnet"})
    with pytest.raises(NanosegError, match="loss"):
        TrainConfig.from_dict({"loss": "focal"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(NanosegError, match="cannot parse YAML"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(NanosegError, match="not a multiple of 4"):
        train_model([disks_dataset], TrainConfig(**{**SMALL, "patch_size": 30}, epochs=1), tmp_path / "x",
                    progress=False)


def test_losses_and_dice_by_hand():
    logits = torch.zeros(2, 2, 2, 2)
    logits[:, 0] = 1.0  # background everywhere ...
    logits[0, 1, 0, :] = 3.0  # ... except the top row of patch 0
    labels = torch.zeros(2, 2, 2, dtype=torch.long)
    labels[0, :, 0] = 1  # patch 0 truth: the left column
    # patch 0: |P ∩ T| = 1, |P| = 2, |T| = 2 → (2 + 1) / (4 + 1); patch 1: nothing, nothing → 1
    np.testing.assert_allclose(hard_dice(logits, labels).numpy(), [3 / 5, 1.0])
    assert float(soft_dice(torch.full((1, 2, 2, 2), 0.0), torch.ones(1, 2, 2, dtype=torch.long))[0]) == \
        pytest.approx((2 * 2 + 1) / (2 + 4 + 1))
    w = inverse_frequency_weights(0.25)
    assert torch.allclose(w, torch.tensor([2 / 3, 2.0]))
    ce = SegmentationLoss("ce")(logits, labels)
    both = SegmentationLoss("ce+dice")(logits, labels)
    assert float(both) > float(ce) > 0
    with pytest.raises(NanosegError, match="class weights"):
        SegmentationLoss("ce_weighted")


def test_cli_trains(disks_dataset, tmp_path):
    from typer.testing import CliRunner

    from nanoseg.cli import app

    spec = tmp_path / "train.yaml"
    spec.write_text("model: unet3\npatch_size: 32\nbatch_size: 8\ndevice: cpu\nlr: 0.003\n")
    result = CliRunner().invoke(app, ["train", str(disks_dataset), "--config", str(spec), "--out",
                                      str(tmp_path / "cli"), "--epochs", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "cli").card.training["epochs"] == 1
