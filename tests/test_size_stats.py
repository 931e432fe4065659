"""Size statistics a paper can cite (issue #18 item 4): D10/D50/D90, mean ± sd with bootstrap CIs, border
correction, detection limit; the size section of the predict report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nanoseg.errors import NanosegError
from nanoseg.evaluate.sizes import particle_sizes, size_statistics_table


def _row(stats: pd.DataFrame, name: str) -> pd.Series:
    return stats.set_index("statistic").loc[name]


def test_unweighted_sample_by_hand():
    """[1, 2, 3, 4] nm: D10 = 1, D50 = 2.5 (midpoint), D90 = 4, mean 2.5, sample sd √(5/3)."""
    stats = size_statistics_table([1.0, 2.0, 3.0, 4.0], n_boot=0)
    assert _row(stats, "D10")["value"] == 1.0
    assert _row(stats, "D50")["value"] == 2.5
    assert _row(stats, "D90")["value"] == 4.0
    assert _row(stats, "mean")["value"] == 2.5
    assert _row(stats, "sd")["value"] == pytest.approx(np.sqrt(5 / 3))
    assert _row(stats, "N used")["value"] == 4
    assert set(stats["unit"]) >= {"nm", "particles"}


def test_weighted_quantiles_and_moments_by_hand():
    """Sizes [1, 2, 3] nm with weights [1, 1, 2]: cumulative weight 1/4, 1/2, 1 → D10 = 1, D50 = (2 + 3)/2,
    D90 = 3; mean = 9/4; reliability-weighted variance Σw(x − m)² / (V1 − V2/V1) = 2.75 / 2.5."""
    table = pd.DataFrame({"diameter_nm": [1.0, 2.0, 3.0], "ml_weight": [1.0, 1.0, 2.0]})
    stats = size_statistics_table(table, n_boot=0)
    assert [_row(stats, q)["value"] for q in ("D10", "D50", "D90")] == [1.0, 2.5, 3.0]
    assert _row(stats, "mean")["value"] == pytest.approx(2.25)
    assert _row(stats, "sd")["value"] == pytest.approx(np.sqrt(2.75 / 2.5))
    assert stats.attrs["weighted"] is True


def test_border_particles_left_out_and_counted():
    table = pd.DataFrame({"diameter_nm": [2.0, 3.0, 9.0], "touches_edge": [False, False, True],
                          "ml_weight": [1.1, 1.2, np.nan]})
    stats = size_statistics_table(table, n_boot=0)
    assert _row(stats, "N used")["value"] == 2
    assert _row(stats, "N border-excluded")["value"] == 1
    assert _row(stats, "D90")["value"] == 3.0


def test_border_count_from_particle_sizes_attrs():
    """particle_sizes already dropped the cut particle; its count travels in attrs."""
    m = np.zeros((100, 100), np.uint8)
    m[20:30, 20:30] = 255
    m[50:62, 50:62] = 255
    m[0:30, 70:100] = 255
    stats = size_statistics_table(particle_sizes(m, pixel_size_nm=0.1), n_boot=0)
    assert _row(stats, "N used")["value"] == 2
    assert _row(stats, "N border-excluded")["value"] == 1


def test_detection_limit_drops_smaller_and_is_stated():
    stats = size_statistics_table([0.4, 1.0, 2.0, 3.0], n_boot=0, detection_limit_nm=0.5)
    assert _row(stats, "N used")["value"] == 3
    assert _row(stats, "detection limit")["value"] == 0.5
    assert _row(stats, "D10")["value"] == 1.0


def test_bootstrap_interval_brackets_the_estimate_and_covers_the_truth():
    """A log-normal sample of 400: the 95 % interval of the mean holds the estimate and the population mean."""
    rng = np.random.default_rng(3)
    sigma, mu = 0.3, np.log(5.0)
    d = rng.lognormal(mu, sigma, 400)
    stats = size_statistics_table(d, n_boot=400, seed=1)
    for name in ("D10", "D50", "D90", "mean", "sd"):
        row = _row(stats, name)
        assert row["ci95_low"] <= row["value"] <= row["ci95_high"], name
        assert row["ci95_high"] - row["ci95_low"] > 0, name
    mean = _row(stats, "mean")
    assert mean["ci95_low"] < np.exp(mu + sigma**2 / 2) < mean["ci95_high"]
    # the same seed gives the same interval (a paper's numbers are reproducible)
    again = size_statistics_table(d, n_boot=400, seed=1)
    assert _row(again, "D50")["ci95_low"] == _row(stats, "D50")["ci95_low"]


def test_empty_and_bad_inputs():
    stats = size_statistics_table([], n_boot=10)
    assert _row(stats, "N used")["value"] == 0
    assert np.isnan(_row(stats, "D50")["value"])
    with pytest.raises(NanosegError, match="diameter_nm"):
        size_statistics_table(pd.DataFrame({"size": [1.0]}))
    with pytest.raises(NanosegError, match="NaN"):
        size_statistics_table([1.0, np.nan])


# ---------------------------------------------------------------------------------- the predict report


def _fake_predict_folder(folder, *, with_weights: bool = True):
    """A predict output folder as workflows.predict.write_prediction leaves it (one micrograph), without running a model."""
    from nanoseg.io import write_png_preview, write_tiff
    from nanoseg.workflows.predict import SETTINGS_FILE

    folder.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:20, 10:20] = 1
    write_tiff(folder / "a.mask.tif", mask, pixel_size_nm=0.1)
    write_png_preview(folder / "a.overlay.png", mask.astype(np.float32), overlay_mask=mask)
    table = pd.DataFrame({"label": [1, 2, 3, 4], "diameter_nm": [1.0, 2.0, 3.0, 6.0],
                          "touches_edge": [False, False, False, True]})
    if with_weights:
        table["ml_weight"] = [1.0, 1.0, 2.0, np.nan]
    table.to_csv(folder / "a.particles.csv", index=False)
    (folder / "a.json").write_text(json.dumps({"pixel_size_nm": 0.1, "particle_table_pixel_size_nm": 0.1,
                                               "warnings": [], "ood": {}}))
    (folder / SETTINGS_FILE).write_text(json.dumps({"settings": {"min_diameter_nm": 0.5, "pixel_size_nm": None}}))


def test_predict_report_has_size_section_for_one_micrograph(tmp_path):
    from nanoseg.workflows.report import report_folder

    _fake_predict_folder(tmp_path / "pred")
    html = report_folder(tmp_path / "pred").read_text()
    assert "Particle sizes" in html
    assert "D50" in html and "N border-excluded" in html
    assert "Miles" in html  # the border correction is named
    assert "0.5 nm" in html  # the detection limit (--min-diameter of the run)
    assert "pixel size from the file" in html
    assert "data:image/png;base64" in html and "size histogram" in html.lower()
    stats = pd.read_csv(tmp_path / "pred" / "size_statistics.csv")
    assert _row(stats, "D50")["value"] == 2.5  # weighted, cut particle left out
    assert _row(stats, "N border-excluded")["value"] == 1


def test_predict_report_without_weights_says_so(tmp_path):
    from nanoseg.workflows.report import report_folder

    _fake_predict_folder(tmp_path / "pred", with_weights=False)
    html = report_folder(tmp_path / "pred").read_text()
    assert "no Miles" in html


def test_write_prediction_records_ml_weights(tmp_path):
    """predict's particles.csv carries each interior particle's Miles–Lantuéjoul weight (NaN when cut)."""
    from types import SimpleNamespace

    from nanoseg.io import Micrograph
    from nanoseg.workflows.predict import write_prediction

    mask = np.zeros((100, 100), bool)
    mask[20:30, 20:30] = True
    mask[0:30, 70:100] = True
    pred = SimpleNamespace(pixel_size_nm=0.1, mask=mask, probability=mask.astype(np.float32), variance=None,
                           threshold=0.5, metadata={}, warnings=[], ood={}, estimated_dice=0.9,
                           low_confidence=False)
    write_prediction(pred, Micrograph(mask.astype(np.float32), pixel_size_nm=0.1), tmp_path, "m")
    table = pd.read_csv(tmp_path / "m.particles.csv")
    inside = table[~table["touches_edge"]]
    assert inside["ml_weight"].round(4).tolist() == [1.2346]
    assert table.loc[table["touches_edge"], "ml_weight"].isna().all()
