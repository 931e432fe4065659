"""benchmarks/track.py: its detection scores on a hand-made case and its movie at other pixel sizes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("track_benchmark", ROOT / "benchmarks" / "track.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_detection_scores_above_the_detection_limit(bench):
    # truth: three inside particles (d = 3, 3, 1 nm) and one cut by the border; detections: both big ones, a false
    # small one, a false big one at the border (not counted in the precision) and a false big one inside
    truth = pd.DataFrame({"frame": 0, "particle_id": [1, 2, 3, 4], "y_nm": [5.0, 15.0, 25.0, 0.5],
                          "x_nm": [5.0, 5.0, 5.0, 0.5], "radius_nm": [1.5, 1.5, 0.5, 1.5],
                          "inside": [True, True, True, False]})
    det = pd.DataFrame({"frame": 0, "y_nm": [5.1, 15.0, 35.0, 40.0, 45.0], "x_nm": [5.0, 5.1, 5.0, 0.2, 9.0],
                        "diameter_nm": [3.0, 2.9, 0.8, 2.5, 2.4], "touches_edge": [False, False, False, True, False]})
    s = bench.detection_scores(det, truth, d_min_nm=2.0)
    assert s["recall_above_d_min"] == 1.0  # both inside particles ≥ 2 nm found; the 1 nm one does not count
    assert s["precision_above_d_min"] == pytest.approx(2 / 3)  # 3 big detections off the border, 2 true
    assert s["false_below_d_min_per_frame"] == 1 and s["detections_per_frame"] == 5
    assert s["true_inside_above_d_min_per_frame"] == 2


def test_benchmark_movie_keeps_the_areal_density_at_other_pixel_sizes(bench):
    base = bench.benchmark_movie(1024, 1)
    assert base.params["n_particles"] == 600 and base.pixel_size_nm == 0.18
    fine = bench.benchmark_movie(1152, 1, 0.04)  # 46 nm field: (46.08 / 184.32)² of 600
    assert fine.params["n_particles"] == round(600 * (1152 * 0.04 / (1024 * 0.18)) ** 2)
    for change in bench.ABLATION.values():  # every ablation is a valid renderer setting
        m = bench.benchmark_movie(64, 1, 0.18, **change)
        assert m.frame(0).data.shape == (64, 64)
