"""The end-to-end demo with the shipped default model (a small movie keeps it fast) and `nanoseg report`."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from nanoseg.cli import app
from nanoseg.demo import DemoSettings, run_demo


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    settings = DemoSettings(n_frames=6, shape_px=(256, 256), n_particles=5, mean_radius_nm=1.4)
    report = run_demo(root / "out", settings=settings, quiet=True)
    return root / "out", report


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
    assert 2 <= len(example) <= 5  # the bundled example holds three particles; the default model must find them


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
