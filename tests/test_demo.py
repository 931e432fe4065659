"""The end-to-end demo and `nanoseg report` on its folders (a tiny untrained model keeps it fast)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nanoseg.cli import app
from nanoseg.demo import DemoSettings, run_demo
from nanoseg.models import build_model, count_parameters, receptive_field, save_model
from nanoseg.models.card import ModelCard


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    module = build_model("unet3")
    card = ModelCard(architecture="unet3", pixel_size_nm=0.04, preprocessing=[{"name": "standardize"}],
                     n_parameters=count_parameters(module), receptive_field_px=receptive_field(module))
    model = save_model(root / "model", module, card)
    report = run_demo(root / "out", settings=DemoSettings(n_frames=4, shape_px=(192, 192), n_particles=3),
                      model=model, quiet=True)
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


def test_report_verb_rebuilds_track_report(demo_out):
    out, _ = demo_out
    result = CliRunner().invoke(app, ["report", str(out / "track")])
    assert result.exit_code == 0, result.output
    html = (out / "track" / "report.html").read_text()
    # an untrained model finds no particles: the report must say why nothing was fitted, not crash
    assert "Tracking summary" in html and "kinetics not fitted" in html


def test_report_verb_rejects_unknown_folder(tmp_path):
    from nanoseg.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["report", str(tmp_path)])
    assert stop.value.code == 2
