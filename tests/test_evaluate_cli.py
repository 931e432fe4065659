"""``nanoseg evaluate`` on a prediction folder and on a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from conftest import disks_image
from nanoseg.cli import app
from nanoseg.datasets import DatasetWriter
from nanoseg.io import write_tiff
from nanoseg.models import ModelCard, build_model, save_model


@pytest.fixture
def dataset(tmp_path):
    with DatasetWriter(tmp_path / "ds") as w:
        for i in range(3):
            image, mask = disks_image((64, 64), ((20, 20, 7 + i), (44, 40, 9)), seed=i)
            w.add(f"im{i}", image, mask, {"pixel_size_nm": 0.2, "dose_e_per_A2": 500.0})
    return tmp_path / "ds"


def test_evaluate_prediction_folder(tmp_path, dataset):
    from nanoseg.datasets import open_dataset

    ds = open_dataset(dataset)
    preds = tmp_path / "preds"
    for i in ds.ids:
        write_tiff(preds / f"{i}.probability.tif", ds.mask(i).astype(np.float32) * 0.8 + 0.1, pixel_size_nm=0.2)
    pd.DataFrame({"diameter_nm": [3.0, 3.5, 3.6]}).to_csv(tmp_path / "manual.csv", index=False)
    result = CliRunner().invoke(app, ["evaluate", str(preds), str(dataset), "--out", str(tmp_path / "ev"),
                                      "--no-progress", "--sizes", str(tmp_path / "manual.csv")])
    assert result.exit_code == 0, result.output
    assert "dice: 1.000 ± 0.000" in result.output and "manual" in result.output
    metrics = pd.read_csv(tmp_path / "ev" / "metrics.csv")
    assert list(metrics["id"]) == ["im0", "im1", "im2"] and (metrics["f1@0.5"] == 1.0).all()
    for name in ("summary.csv", "thresholds.csv", "threshold_curves.png", "size_distribution.png",
                 "worst_cases.png"):
        assert (tmp_path / "ev" / name).exists(), name
    missing = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nothing"), str(dataset), "--out",
                                       str(tmp_path / "ev2")])
    assert missing.exit_code != 0 and "not found" in str(missing.exception)


def test_evaluate_runs_a_model_first(tmp_path, dataset):
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "m", build_model("unet3"), ModelCard(architecture="unet3", pixel_size_nm=0.2))
    result = CliRunner().invoke(app, ["evaluate", str(ckpt), str(dataset), "--out", str(tmp_path / "ev"),
                                      "--no-progress", "--threshold", "otsu", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "running model" in result.output
    assert len(pd.read_csv(tmp_path / "ev" / "metrics.csv")) == 3


def test_missing_prediction_points_to_a_command_that_works(tmp_path, dataset):
    """`predict` refuses a dataset folder, so the hint must not send the user there: it names the model route."""
    preds = tmp_path / "preds"
    write_tiff(preds / "im0.probability.tif", np.zeros((64, 64), np.float32), pixel_size_nm=0.2)
    result = CliRunner().invoke(app, ["evaluate", str(preds), str(dataset), "--out", str(tmp_path / "ev"),
                                      "--no-progress"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "im1" in message and "predict` on the dataset" not in message
    assert "nanoseg evaluate MODEL" in message
