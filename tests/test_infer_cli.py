"""``nanoseg predict``: batch outputs, calibration, skip-and-report, resume, ensembles, Dask."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from conftest import disks_image
from nanoseg.cli import app
from nanoseg.io import read, write_tiff
from nanoseg.models import ModelCard, build_model, save_model
from nanoseg.workflows.predict import predict_files


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    card = ModelCard(architecture="unet3", pixel_size_nm=0.2, dose_range_e_per_A2=(300, 900),
                     pixel_size_range_nm=(0.15, 0.25), preprocessing=[{"name": "standardize"}])
    return save_model(tmp_path / "model", build_model("unet3"), card)


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        image, _ = disks_image((96, 112), seed=i)
        write_tiff(folder / f"frame{i}.tif", image, pixel_size_nm=0.1)
    (folder / "broken.tif").write_bytes(b"not a tiff at all")
    write_tiff(folder / "uncalibrated.tif", disks_image((64, 64))[0])
    return folder


def test_predict_cli_outputs_skip_and_resume(tmp_path, checkpoint, frames):
    out = tmp_path / "out"
    inputs = [str(frames / n) for n in ("frame0.tif", "frame1.tif", "broken.tif", "uncalibrated.tif")]
    result = CliRunner().invoke(app, ["predict", *inputs, "--out", str(out), "--model", str(checkpoint),
                                      "--no-progress", "--threshold", "otsu"])
    assert result.exit_code == 1, result.output
    assert "2 done, 0 skipped" in result.output and "broken.tif" in result.output
    assert "--pixel-size" in result.output  # the uncalibrated file fails with the fix in the message
    mask = read(out / "frame0.mask.tif")
    assert mask.shape == (96, 112) and mask.pixel_size_nm == pytest.approx(0.1)
    assert set(np.unique(mask.data)) <= {0.0, 1.0}
    prob = tifffile.imread(out / "frame0.probability.tif")
    assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    meta = json.loads((out / "frame0.json").read_text())
    assert meta["pixel_size_nm"] == pytest.approx(0.1) and meta["threshold_rule"] == "otsu"
    assert meta["ood"]["pixel_size"] is True and meta["out_of_distribution"]  # 0.1 nm/px ∉ [0.15, 0.25]
    assert "outside the training range" in result.output
    assert (out / "frame0.overlay.png").exists()
    table = pd.read_csv(out / "frame0.particles.csv")
    assert {"diameter_nm", "major_axis_nm", "minor_axis_nm"} <= set(table.columns)
    # rerun with the same settings: finished inputs are skipped; the assumed pixel size rescues the
    # uncalibrated file (it only decides whether such a file can run at all, so it is not a resume setting)
    again = CliRunner().invoke(app, ["predict", *inputs[:2], inputs[3], "--out", str(out), "--model",
                                     str(checkpoint), "--no-progress", "--threshold", "otsu",
                                     "--assume-model-pixel-size"])
    assert again.exit_code == 0, again.output
    assert "1 done, 2 skipped" in again.output
    assert json.loads((out / "uncalibrated.json").read_text())["particle_table_pixel_size_nm"] == 0.2


def test_predict_ensemble_writes_variance(tmp_path, frames):
    for i in range(2):
        torch.manual_seed(i)
        save_model(tmp_path / "cv" / f"fold{i}", build_model("unet3"), ModelCard(architecture="unet3",
                                                                                 pixel_size_nm=0.1))
    result = predict_files([frames / "frame0.tif"], tmp_path / "out", tmp_path / "cv", progress=False,
                           tta=True)
    assert result.ok and "variance" in result.outputs[str(frames / "frame0.tif")]
    meta = json.loads((tmp_path / "out" / "frame0.json").read_text())
    assert meta["n_members"] == 2 and meta["n_views"] == 16
    var = tifffile.imread(tmp_path / "out" / "frame0.variance.tif")
    assert var.shape == (96, 112) and var.max() > 0


def test_predict_cli_rejects_bad_options(tmp_path, frames, checkpoint):
    result = CliRunner().invoke(app, ["predict", str(frames / "frame0.tif"), "--out", str(tmp_path / "o"),
                                      "--model", str(checkpoint), "--threshold", "high"])
    assert result.exit_code != 0 and "threshold" in str(result.exception)
    for bad in ("big", "-5"):
        result = CliRunner().invoke(app, ["predict", str(frames / "frame0.tif"), "--out", str(tmp_path / "o"),
                                          "--model", str(checkpoint), "--tile-size", bad])
        assert result.exit_code != 0 and "--tile-size" in str(result.exception)


@pytest.mark.slow
def test_predict_on_dask_workers(tmp_path, checkpoint, frames):
    result = predict_files([frames / "frame0.tif", frames / "broken.tif", frames / "frame1.tif"], tmp_path / "d",
                           str(checkpoint), workers=2, progress=False)
    assert sorted(result.report.done) == sorted([str(frames / "frame0.tif"), str(frames / "frame1.tif")])
    assert [name for name, _ in result.report.failed] == [str(frames / "broken.tif")]
    assert (tmp_path / "d" / "frame1.mask.tif").exists()


def _predict(out, frame, model, *extra):
    return CliRunner().invoke(app, ["predict", str(frame), "--out", str(out), "--model", str(model), "--no-progress",
                                    *extra])


def test_predict_rerun_with_other_settings_is_refused(tmp_path, checkpoint, frames):
    """A rerun resumes only with the same settings; another threshold or model must not say '1 skipped'."""
    out, frame = tmp_path / "out", frames / "frame0.tif"
    assert _predict(out, frame, checkpoint).exit_code == 0
    before = (out / "frame0.json").read_text()
    same = _predict(out, frame, checkpoint)
    assert same.exit_code == 0 and "0 done, 1 skipped" in same.output
    other = _predict(out, frame, checkpoint, "--threshold", "0.3")
    assert other.exit_code != 0
    message = str(other.exception)
    assert "other settings" in message and "threshold: 0.5 → 0.3" in message and "overwrite=True" in message
    torch.manual_seed(1)
    other_model = save_model(tmp_path / "model2", build_model("unet3"), ModelCard(architecture="unet3",
                                                                                  pixel_size_nm=0.2))
    refused = _predict(out, frame, other_model)
    assert refused.exit_code != 0 and "model" in str(refused.exception)
    assert (out / "frame0.json").read_text() == before  # nothing was overwritten
    redo = _predict(out, frame, checkpoint, "--threshold", "0.3", "--overwrite")
    assert redo.exit_code == 0 and "1 done, 0 skipped" in redo.output, redo.output
    assert json.loads((out / "frame0.json").read_text())["threshold"] == pytest.approx(0.3)
    resumed = _predict(out, frame, checkpoint, "--threshold", "0.3")
    assert resumed.exit_code == 0 and "0 done, 1 skipped" in resumed.output


def test_predict_refuses_finished_outputs_of_unknown_settings(tmp_path, checkpoint, frames):
    """Outputs without a settings record (an older nanoseg) are not silently taken as this run's."""
    out, frame = tmp_path / "out", frames / "frame0.tif"
    assert _predict(out, frame, checkpoint).exit_code == 0
    (out / "predict_settings.json").unlink()
    result = _predict(out, frame, checkpoint)
    assert result.exit_code != 0 and "overwrite=True" in str(result.exception)


def test_model_fingerprint_tells_models_apart(tmp_path, checkpoint):
    from nanoseg.infer.fingerprint import model_fingerprint
    from nanoseg.models import load_model

    loaded = load_model(checkpoint)
    assert model_fingerprint(str(checkpoint)) == model_fingerprint(checkpoint) == model_fingerprint(loaded)
    assert model_fingerprint("default") != model_fingerprint(checkpoint)
    module = build_model("unet3")
    before = model_fingerprint(module)
    with torch.no_grad():
        next(module.parameters()).add_(1.0)
    assert model_fingerprint(module) != before


def test_predict_rerun_after_nothing_finished_takes_the_new_settings(tmp_path, checkpoint, frames):
    """The fix the error asked for (--pixel-size) must not be refused as 'other settings': nothing was written."""
    out, frame = tmp_path / "out", frames / "uncalibrated.tif"
    failed = _predict(out, frame, checkpoint)
    assert failed.exit_code == 1 and "--pixel-size" in failed.output
    fixed = _predict(out, frame, checkpoint, "--pixel-size", "0.2")
    assert fixed.exit_code == 0 and "1 done" in fixed.output, (fixed.output, fixed.exception)
