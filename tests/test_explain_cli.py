"""``nanoseg explain`` end to end on a small saved checkpoint, an image file with its mask, and a dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import disks_image
from nanoseg.cli import app, main
from nanoseg.datasets.store import DatasetWriter
from nanoseg.explain.report import explain_report
from nanoseg.models import ModelCard, build_model, save_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    net = build_model("unet3", widths=(4, 8, 8), decoder_widths=(8, 4), up_width=4)
    card = ModelCard(architecture="unet3", pixel_size_nm=0.18, preprocessing=[{"name": "standardize"}])
    return save_model(tmp_path_factory.mktemp("model") / "tiny", net, card)


def _explain_two_disks(checkpoint, tmp_path, *options: str):
    """Run ``nanoseg explain`` on a 96² two-disk frame (with its mask) at 0.18 nm/px; returns (result, out)."""
    image, mask = disks_image(shape=(96, 96), centers_radii=((30, 30, 8), (64, 60, 12)))
    np.save(tmp_path / "frame.npy", image)
    np.save(tmp_path / "frame_mask.npy", mask.astype(np.uint8))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", str(checkpoint), str(tmp_path / "frame.npy"), "--out", str(out),
                                      "--mask", str(tmp_path / "frame_mask.npy"), "--pixel-size", "0.18",
                                      *options, "--no-progress"])
    return result, out


def test_cli_writes_report_figures_and_tables(checkpoint, tmp_path):
    result, out = _explain_two_disks(checkpoint, tmp_path, "--crop", "48")
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    for title in ("Raw output maps", "Frequency ablation", "Occlusion and gradient saliency", "Line profiles"):
        assert title in html
    assert html.count("data:image/png;base64") == 5
    ablation = pd.read_csv(out / "ablation.csv")
    assert ablation.band.iloc[0] == "none" and ablation["drop"].iloc[0] == 0
    assert np.allclose(ablation.dice.iloc[0] - ablation.dice, ablation["drop"])
    # periods in nm need the pixel size: 0.18 nm/px × 3 px for the first low-pass
    assert ablation.from_period_nm.iloc[1] == pytest.approx(0.18 * 3)
    profiles = pd.read_csv(out / "line_profiles.csv")
    assert set(profiles.particle) == {0, 1} and profiles.truth.max() == 1
    stats = pd.read_csv(out / "raw_output_stats.csv")
    assert list(stats.channel) == ["background logit", "particle logit", "softmax particle"]


def test_report_on_a_dataset_without_occlusion(checkpoint, tmp_path):
    with DatasetWriter(tmp_path / "ds") as writer:
        for i in range(3):
            image, mask = disks_image(shape=(64, 64), centers_radii=((20 + 5 * i, 30, 7),), seed=i)
            writer.add(f"img{i}", image, mask, {"pixel_size_nm": 0.18})
    result = explain_report(str(checkpoint), tmp_path / "ds", tmp_path / "out", max_images=2, occlusion=False)
    assert result.report.exists()
    assert len(result.tables["ablation"]) >= 7
    assert result.tables["saliency_summary"].saliency_share.sum() == pytest.approx(1.0)


def test_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", str(tmp_path / "missing_model"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_known_lattice_spacings_drive_the_bandstop_and_bragg_bands(checkpoint, tmp_path):
    # the tiny model's card is at 0.18 nm/px: 0.9 nm is a 5 px period (0.2 cycles/px)
    result, out = _explain_two_disks(checkpoint, tmp_path, "--lattice-nm", "0.9", "--no-occlusion")
    assert result.exit_code == 0, result.output
    lattice = pd.read_csv(out / "lattice.csv")
    assert lattice.frequency_cycles_per_px.tolist() == pytest.approx([0.2])
    ablation = pd.read_csv(out / "ablation.csv")
    assert {"bandstop", "bragg_only", "bragg_removed"} <= set(ablation.kind)
    bandstop = ablation[ablation.kind == "bandstop"].iloc[0]
    assert bandstop.from_cycles_per_px < 0.2 < bandstop.to_cycles_per_px
    assert "Lattice spacings given" in (out / "report.html").read_text()


@pytest.mark.parametrize(("spacings", "message"), [("0.235,abc", "numbers separated by commas"),
                                                   ("0.3", "not resolved at 0.18 nm/px")])
def test_bad_lattice_spacings_are_one_line_errors(checkpoint, tmp_path, capsys, spacings, message):
    np.save(tmp_path / "frame.npy", disks_image(shape=(64, 64), centers_radii=((30, 30, 8),))[0])
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", str(checkpoint), str(tmp_path / "frame.npy"), "--out", str(tmp_path / "o"),
              "--pixel-size", "0.18", "--lattice-nm", spacings, "--no-occlusion", "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err
