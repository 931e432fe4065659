"""The per-image quality estimate (issue #14 item 4): features, calibration, Prediction fields, outputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import disks_image
from nanoseg.errors import NanosegError
from nanoseg.infer import predict
from nanoseg.infer.quality import (
    LOW_CONFIDENCE_DICE,
    apply_calibration,
    area_cap,
    check_window,
    estimate_quality,
    fit_calibration,
    isotonic_fit,
    quality_features,
    spearman,
)
from nanoseg.io import Micrograph
from nanoseg.models import ModelCard, build_model, load_model, save_model

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ features
def test_features_by_hand():
    p = np.zeros((4, 5), np.float32)
    p[0, :4] = [1.0, 0.9, 0.6, 0.3]  # mask at 0.5: the first three
    mask = p >= 0.5
    f = quality_features(p, mask, threshold=0.5, ood_flags={"dose": True, "pixel_size": False,
                                                                "noise": False, "contrast": False})
    # expected Dice 2 Σ p·m / (Σ p + Σ m) = 2·2.5 / (2.8 + 3)
    assert f["soft_dice"] == pytest.approx(5.0 / 5.8)
    assert f["uncertain_fraction"] == pytest.approx(2 / 20)  # 0.6 and 0.3 lie in [0.2, 0.8]
    assert f["uncertain_over_mask"] == pytest.approx(2 / (3 + 2))
    assert f["margin_inside"] == pytest.approx((1.0 + 0.8 + 0.2) / 3)  # mean 2|p − 0.5| over the mask
    assert f["area_fraction"] == pytest.approx(3 / 20)
    assert f["ood_fraction"] == pytest.approx(0.25)
    assert np.isnan(f["view_dice"])  # no second view given
    # two views: masks {0,1,2} and {0,1} → Dice 2·2/(3+2)
    other = p.copy()
    other[0, 2] = 0.4
    f2 = quality_features(p, mask, threshold=0.5, check_pair=(p, other))
    assert f2["view_dice"] == pytest.approx(0.8) and np.isnan(f2["ood_fraction"])
    # several views (ensemble / TTA): mean Dice of each view's mask with the final mask
    f3 = quality_features(p, mask, threshold=0.5, views=[p, other])
    assert f3["view_dice"] == pytest.approx((1.0 + 0.8) / 2)
    # no particle in either view's crop: nothing to compare (NaN, not a perfect agreement)
    blank = np.zeros((4, 5), np.float32)
    assert np.isnan(quality_features(p, mask, threshold=0.5, check_pair=(blank, blank))["view_dice"])


def test_empty_and_flooded_masks_are_low_confidence():
    empty = estimate_quality(np.full((16, 16), 0.1, np.float32), np.zeros((16, 16), bool), threshold=0.5)
    assert empty.estimated_dice == 0.0 and empty.low_confidence and "empty mask" in empty.notes[0]
    flooded = estimate_quality(np.full((16, 16), 0.99, np.float32), np.ones((16, 16), bool), threshold=0.5)
    # the expected Dice is ≈ 1 but a full mask scores at most 2·0.4/(0.4 + 1) if particles cover ≤ 40 %
    assert flooded.features["soft_dice"] > 0.99
    assert flooded.estimated_dice == pytest.approx(0.8 / 1.4) and flooded.low_confidence
    # the cap reaches the low-confidence threshold where ood.check_mask starts calling a mask flooded (60 %)
    assert area_cap(0.3) == 1.0 and area_cap(0.6) == pytest.approx(LOW_CONFIDENCE_DICE)
    assert area_cap(0.61) < LOW_CONFIDENCE_DICE
    good = estimate_quality(np.where(np.eye(16, dtype=bool), 0.99, 0.01), np.eye(16, dtype=bool), threshold=0.5)
    # uncalibrated: the expected Dice itself, 2·16·0.99 / (16·0.99 + 240·0.01 + 16)
    assert good.estimated_dice == pytest.approx(31.68 / 34.24) and not good.low_confidence and not good.calibrated


def test_check_window_drops_the_context_at_inner_edges():
    crop, inner = check_window((2000, 500), side_px=768, context_px=100)
    assert crop == (slice(616, 1384), slice(0, 500))
    assert inner == (slice(100, 668), slice(0, 500))  # rows: inner edges on both sides; columns: whole image
    crop, inner = check_window((300, 300), side_px=768, context_px=200)
    assert crop == (slice(0, 300), slice(0, 300)) and inner == (slice(0, 300), slice(0, 300))


# ------------------------------------------------------------------------------------------ calibration
def test_isotonic_and_spearman():
    xs, ys = isotonic_fit([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0])
    np.testing.assert_allclose(ys, [1.0, 2.5, 4.0])  # 3 > 2 pooled into one block
    np.testing.assert_allclose(xs, [1.0, 2.5, 4.0])
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def _synthetic_rows(n, seed):
    """Features where the true Dice is a known monotone (nonlinear) function of soft_dice; the rest is noise."""
    rng = np.random.default_rng(seed)
    soft = rng.uniform(0.2, 1.0, n)
    rows = [{"soft_dice": s, "view_dice": v, "area_fraction": a}
            for s, v, a in zip(soft, rng.uniform(0.5, 1, n), rng.uniform(0, 0.4, n), strict=True)]
    return rows, soft**3


def test_calibration_recovers_a_known_monotone_relation():
    rows, truth = _synthetic_rows(200, seed=0)
    cal = fit_calibration(rows, truth, feature_names=("soft_dice", "view_dice", "area_fraction", "ood_fraction"),
                          fitted_on={"sets": ["synthetic"]})
    json.dumps(cal)  # JSON-serializable, as the card stores it
    assert cal["n_images"] == 200 and cal["fitted_on"]["sets"] == ["synthetic"] and cal["spearman_fit"] > 0.99
    coef = dict(zip(cal["feature_names"], cal["coefficients"], strict=True))
    assert abs(coef["view_dice"]) < 0.05 * abs(coef["soft_dice"]) and coef["ood_fraction"] == 0.0  # absent → 0
    new_rows, new_truth = _synthetic_rows(100, seed=1)
    estimate = apply_calibration(cal, new_rows)
    assert spearman(estimate, new_truth) > 0.97
    assert np.abs(estimate - new_truth).mean() < 0.03  # the cubic is recovered, not just its ranking
    assert 0 <= estimate.min() and estimate.max() <= 1


def test_card_round_trips_the_calibration_and_predict_uses_it(tmp_path):
    rows, truth = _synthetic_rows(50, seed=2)
    cal = fit_calibration(rows, truth, feature_names=("soft_dice", "view_dice"), fitted_on={"sets": ["a", "b"]})
    card = ModelCard(architecture="unet3", pixel_size_nm=0.2, quality_calibration=cal)
    torch.manual_seed(0)
    path = save_model(tmp_path / "m", build_model("unet3"), card)
    loaded = load_model(path)
    assert loaded.card.quality_calibration == json.loads(json.dumps(cal))
    pred = predict(disks_image((64, 64))[0], loaded, pixel_size_nm=0.2, device="cpu", engine="eager")
    quality = pred.metadata["quality"]
    assert quality["calibrated"] and "50 held-out simulated images (a, b)" in quality["method"]
    assert quality["features"]["view_dice"] is not None  # the calibration weighs view agreement: the view ran
    expected = apply_calibration(cal, quality["features"])
    assert pred.estimated_dice == pytest.approx(min(expected, area_cap(quality["features"]["area_fraction"])))


def test_a_broken_calibration_is_one_clear_error(tmp_path):
    card = ModelCard(architecture="unet3", pixel_size_nm=0.2, quality_calibration={"feature_names": ["soft_dice"]})
    path = save_model(tmp_path / "m", build_model("unet3"), card)
    with pytest.raises(NanosegError, match="quality_calibration lacks") as err:
        predict(disks_image((64, 64))[0], path, pixel_size_nm=0.2, device="cpu", engine="eager")
    assert str(path) in str(err.value) and "calibrate_quality.py" in str(err.value)


# ------------------------------------------------------------------------------------------ Prediction
def test_prediction_of_a_tiny_model_carries_the_estimate():
    torch.manual_seed(0)
    net = build_model("unet3")
    image, _ = disks_image((64, 80))
    pred = predict(image, net, pixel_size_nm=0.2, device="cpu", engine="eager")
    assert 0.0 <= pred.estimated_dice <= 1.0 and isinstance(pred.low_confidence, bool)
    assert pred.low_confidence == (pred.estimated_dice < LOW_CONFIDENCE_DICE)
    quality = pred.metadata["quality"]
    assert quality["calibrated"] is False and quality["method"].startswith("uncalibrated")
    # uncalibrated, the estimate does not use view agreement: no second view is run (no extra cost)
    assert quality["features"]["view_dice"] is None
    forced = predict(image, net, pixel_size_nm=0.2, device="cpu", engine="eager", quality_view=True)
    assert 0.0 <= forced.metadata["quality"]["features"]["view_dice"] <= 1.0  # the cheap second view ran
    assert forced.variance is None and forced.metadata["n_views"] == 1  # ... without changing the outputs
    np.testing.assert_array_equal(forced.probability, pred.probability)
    tta = predict(image, net, pixel_size_nm=0.2, device="cpu", engine="eager", tta=True)
    assert 0.0 <= tta.metadata["quality"]["features"]["view_dice"] <= 1.0


def _default_model_input(image):
    # the default model's pixel size (0.04 nm), a dose inside its training range, counts-like values
    return Micrograph(image * 500, pixel_size_nm=0.04, dose_e_per_A2=300)


def test_default_model_flags_noise_but_not_an_easy_image():
    from nanoseg.evaluate.pixel import dice

    image, truth = disks_image((192, 192), ((60, 60, 25), (130, 120, 30)), noise=0.05)
    easy = predict(_default_model_input(image), None, device="cpu", engine="fused")
    assert dice(easy.mask, truth) > 0.85  # the default model really handles this image (0.887 measured)
    assert not easy.low_confidence and easy.estimated_dice > LOW_CONFIDENCE_DICE
    noise = np.random.default_rng(0).normal(1.0, 0.3, (192, 192)).astype(np.float32)
    bad = predict(_default_model_input(noise), None, device="cpu", engine="fused")
    assert bad.low_confidence and bad.estimated_dice < LOW_CONFIDENCE_DICE
    assert any(w.startswith("low confidence: estimated Dice") for w in bad.warnings)


# ------------------------------------------------------------------------------------------ calibration script
TINY_SPEC = dict(name="tiny", image_size_px=64, pixel_size_nm=0.05, diameter_nm=1.0, diameter_spread=0.0,
                 support_thickness_nm=0.6, shape="cuboctahedron", aperture_mrad=22.0, defocus_nm=5.0, Cs_um=0.0,
                 astigmatism_nm=0.0)


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    """Two tiny held-out sets made by the simulator (3 images of 64² each), and a tiny model at their pixel size."""
    from nanoseg.simulate import generate_dataset

    root = tmp_path_factory.mktemp("quality")
    sets = [generate_dataset({**TINY_SPEC, "name": f"shift{i}"}, root / f"shift{i}", n_images=3, seed=10 + i,
                             n_workers=0, progress=False) for i in range(2)]
    torch.manual_seed(0)
    card = ModelCard(architecture="unet3", pixel_size_nm=0.05, preprocessing=[{"name": "standardize"}])
    return root, sets, save_model(root / "model", build_model("unet3"), card)


def test_calibrate_script_fits_cross_validates_and_writes_the_card(tiny_sets, capsys):
    root, sets, model = tiny_sets
    out = root / "calibration.json"
    result = _load_script("calibrate_quality").main([str(model), *map(str, sets), "--json", str(out),
                                                     "--write-card"])
    printed = capsys.readouterr().out
    assert "6 images from shift0, shift1; cross-validation: leave one set out (2 sets)" in printed
    assert "flagged of bad" in printed and "calibration written" in printed
    saved = json.loads(out.read_text())
    assert len(saved["images"]) == 6 and {"true_dice", "soft_dice", "calibrated_cv_dice"} <= set(saved["images"][0])
    assert all(0 <= r["true_dice"] <= 1 for r in saved["images"])
    cal = load_model(model).card.quality_calibration
    assert cal["fitted_on"]["n_images_per_set"] == {"shift0": 3, "shift1": 3} and cal["n_images"] == 6
    assert cal["cross_validation"]["scheme"].startswith("leave one set out") and "spearman_fit" in cal
    assert result["summary"]["uncalibrated"]["n_bad"] + result["summary"]["uncalibrated"]["n_good"] <= 6
    # the calibrated card is used by predict
    pred = predict(read_tiny_image(sets[0]), model, device="cpu", engine="eager")
    assert pred.metadata["quality"]["calibrated"] and 0 <= pred.estimated_dice <= 1


def test_calibrate_script_refuses_a_folder_that_is_not_a_set(tiny_sets):
    root, _, model = tiny_sets
    with pytest.raises(SystemExit, match="not a nanoseg dataset"):
        _load_script("calibrate_quality").main([str(model), str(root / "model")])


def test_calibrate_script_fits_chosen_features_and_predict_then_skips_the_view(tiny_sets):
    root, sets, model = tiny_sets
    script = _load_script("calibrate_quality")
    with pytest.raises(SystemExit, match="unknown --features"):
        script.main([str(model), *map(str, sets), "--features", "soft_dice,dice_of_the_day"])
    script.main([str(model), *map(str, sets), "--features", "soft_dice,margin_inside", "--write-card"])
    assert load_model(model).card.quality_calibration["feature_names"] == ["soft_dice", "margin_inside"]
    pred = predict(read_tiny_image(sets[0]), model, device="cpu", engine="eager")
    assert pred.metadata["quality"]["calibrated"] and pred.metadata["quality"]["features"]["view_dice"] is None


def read_tiny_image(dataset_dir):
    from nanoseg.datasets import open_dataset

    ds = open_dataset(dataset_dir)
    return ds.micrograph(ds.ids[0])


# ------------------------------------------------------------------------------------------ outputs
def test_predict_cli_json_table_and_report_carry_the_estimate(tmp_path):
    from typer.testing import CliRunner

    from nanoseg.cli import app
    from nanoseg.io import write_tiff

    torch.manual_seed(0)
    model = save_model(tmp_path / "model", build_model("unet3"),
                       ModelCard(architecture="unet3", pixel_size_nm=0.2, preprocessing=[{"name": "standardize"}]))
    write_tiff(tmp_path / "frame.tif", disks_image((96, 112))[0], pixel_size_nm=0.2)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "frame.tif"), "--out", str(out), "--model",
                                      str(model), "--no-progress", "--threshold", "otsu", "--engine", "eager"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "frame.json").read_text())
    assert 0 <= meta["estimated_dice"] <= 1 and isinstance(meta["low_confidence"], bool)
    assert meta["quality"]["calibrated"] is False and set(meta["quality"]["features"]) >= {"soft_dice", "view_dice"}
    table = pd.read_csv(out / "frame.particles.csv")
    if len(table):  # one value per image on every particle row
        np.testing.assert_allclose(table["image_estimated_dice"], meta["estimated_dice"], rtol=1e-9)
        assert (table["image_low_confidence"] == meta["low_confidence"]).all()
    else:
        assert {"image_estimated_dice", "image_low_confidence"} <= set(table.columns)
    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    html = (out / "report.html").read_text()
    assert "Quality estimate" in html and f"frame: estimated Dice {meta['estimated_dice']:.2f} (uncalibrated" in html


def test_report_line_warns_on_low_confidence():
    from nanoseg.report.folders import quality_line

    meta = {"estimated_dice": 0.42, "low_confidence": True,
            "quality": {"calibrated": True, "method": "calibrated on 40 held-out simulated images (a)",
                        "low_confidence_below": LOW_CONFIDENCE_DICE}}
    line = quality_line("img", meta)
    assert line.startswith("img: estimated Dice 0.42 (calibrated: calibrated on 40") and "LOW CONFIDENCE (< 0.8)" in line
    assert "no quality estimate" in quality_line("old", {})  # a folder written before the estimate existed


def test_track_writes_the_estimate_per_frame(tmp_path):
    from nanoseg.infer import Prediction
    from nanoseg.insitu import track_movie

    masks = np.zeros((4, 48, 48), bool)
    masks[:, 10:20, 10:20] = masks[:, 30:40, 28:38] = True
    frames = np.random.default_rng(1).normal(1, 0.05, masks.shape).astype(np.float32)
    values = iter([0.9, 0.5, 0.95, 0.7])

    def predict_fn(frame):
        m = masks[0].astype(np.float32)
        est = next(values)
        return Prediction(probability=m, mask=m.astype(np.uint8), threshold=0.5, pixel_size_nm=0.2,
                          estimated_dice=est, low_confidence=est < LOW_CONFIDENCE_DICE)

    track_movie(frames, predict_fn, out_dir=tmp_path / "a", pixel_size_nm=0.2, frame_interval_s=1.0, n_boot=0,
                figures=False)
    per_frame = pd.read_csv(tmp_path / "a" / "drift.csv")
    assert per_frame["estimated_dice"].tolist() == [0.9, 0.5, 0.95, 0.7]
    assert per_frame["low_confidence"].tolist() == [False, True, False, True]
    # segmented from given masks: no estimate, the column is there and empty
    track_movie(frames, masks=masks, out_dir=tmp_path / "b", pixel_size_nm=0.2, frame_interval_s=1.0, n_boot=0,
                figures=False)
    assert pd.read_csv(tmp_path / "b" / "drift.csv")["estimated_dice"].isna().all()
