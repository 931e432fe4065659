"""The end-to-end demo with the shipped default model (a small movie keeps it fast) and `nanoseg report`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from nanoseg.cli import app
from nanoseg.workflows.demo import DemoSettings, kinetics_comment, run_demo


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    settings = DemoSettings(n_frames=6, shape_px=(256, 256), n_particles=5, mean_radius_nm=1.4)
    report = run_demo(root / "out", settings=settings, quiet=True)
    return root / "out", report


def test_demo_rerun_after_its_movie_changed_starts_the_tracking_afresh(demo_out, tmp_path):
    """`make demo` after an upgrade (another movie or model) must not stop at the old run's resume check."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(demo_out[0], out)  # the folder of an earlier demo ...
    settings = DemoSettings(n_frames=5, shape_px=(256, 256), n_particles=5, mean_radius_nm=1.4)  # ... another movie
    run_demo(out, settings=settings, quiet=True)
    assert json.loads((out / "track" / "summary.json").read_text())["n_frames"] == 5


def test_demo_writes_a_self_contained_report(demo_out):
    out, report = demo_out
    html = report.read_text()
    for heading in ("1 · One micrograph", "2 · An in situ coarsening movie", "Accuracy against the simulation"):
        assert heading in html
    assert html.count("data:image/png;base64,") >= 3  # figures are embedded, not linked
    assert (out / "movie.tif").exists() and (out / "track" / "tracks.csv").exists()
    accuracy = (out / "accuracy_vs_truth.csv").read_text()
    assert "drift" in accuracy and "tracking" in accuracy
    example = pd.read_csv(out / "example_particles.csv")
    assert len(example) == 3  # the bundled example holds exactly three particles (docs/io.md); none split


def test_demo_states_its_kinetics_comparison_and_detection_limit(demo_out):
    out, report = demo_out
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["kinetics"]["d_min_nm"] == DemoSettings().kinetics_min_diameter_nm
    recall = pd.read_csv(out / "recall_by_size.csv")
    assert {"diameter_from_nm", "n_true", "recall"} <= set(recall.columns)
    html = report.read_text()
    assert summary["kinetics_comment"].split(" (")[0] in html and "detection limit" in html


def _agreement(**changes):
    a = {"d_min_nm": 2.0, "k3": 0.11, "k3_truth": 0.10, "k3_std": 0.012, "k3_rel_diff": 0.1, "k3_ok": True,
         "n": 2.9, "n_truth": 3.1, "n_std": 0.4, "n_diff": -0.2, "n_ok": True, "k_generating": 0.092,
         "k_tolerance": 0.2, "n_tolerance": 0.5, "bounds": []}
    return {**a, **changes}


def test_kinetics_comment_states_numbers_assumptions_and_targets():
    recall = pd.DataFrame({"diameter_from_nm": [1.0, 2.0, 3.0], "diameter_to_nm": [2.0, 3.0, 4.0],
                           "n_true": [10, 30, 10], "n_found": [2, 29, 10], "recall": [0.2, 29 / 30, 1.0]})
    scatter = {"seeds": 5, "n_mean": 2.9, "n_std": 0.6, "k3_mean": 0.1, "k3_std": 0.015}
    text, warnings = kinetics_comment(_agreement(), recall, scatter)
    assert "d ≥ 2 nm (the stated detection limit; the default model found 98% of such true particles" in text
    assert "k(n = 3) = 0.11 ± 0.012 nm³/s (± bootstrap σ over tracks) against 0.1 for the truth fit: +10% " \
           "(within the 20% target)" in text
    assert "Free n = 2.90 ± 0.40 against 3.10: -0.20 (within ±0.5)" in text
    assert "over 5 other seeds" in text and "+9% off that k" in text and warnings == []
    assert "does not measure n" not in text
    text, _ = kinetics_comment(_agreement(n_std=1.6), recall, scatter)
    assert "(within ±0.5; but its bootstrap σ exceeds ±0.5" in text and "does not measure n that well)" in text
    low = recall.assign(n_found=[2, 20, 5])
    _, warnings = kinetics_comment(_agreement(n_diff=0.8, n_ok=False, bounds=["n (n free): run fit ends"]), low,
                                   scatter)
    assert len(warnings) == 3 and "detection limit is too low" in warnings[1] and "targets" in warnings[2]
    text, warnings = kinetics_comment(_agreement(k3=float("nan")), recall, scatter)
    assert text.startswith("Kinetics were not fitted") and warnings


@pytest.mark.slow
def test_default_demo_movie_kinetics_match_the_truth_fit(tmp_path):
    """The full default demo (about 2–3 min on 2 cores): k(n = 3) within 20 % of the truth fit, free n within ±0.5."""
    run_demo(tmp_path / "out", quiet=True)
    a = json.loads((tmp_path / "out" / "demo_summary.json").read_text())["kinetics"]
    assert a["d_min_nm"] == 2.0 and a["bounds"] == []
    assert abs(a["k3_rel_diff"]) <= 0.2 and a["k3_ok"]
    assert abs(a["n_diff"]) <= 0.5 and a["n_ok"]
    assert 0 < a["k3_std"] < a["k3"]  # the bootstrap interval of k stays physical


def test_report_verb_rebuilds_track_report(demo_out):
    out, _ = demo_out
    result = CliRunner().invoke(app, ["report", str(out / "track")])
    assert result.exit_code == 0, result.output
    html = (out / "track" / "report.html").read_text()
    assert "Tracking summary" in html and "Coarsening mechanism" in html


def test_report_verb_rejects_unknown_folder(tmp_path):
    from nanoseg.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["report", str(tmp_path)])
    assert stop.value.code == 2
