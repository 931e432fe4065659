"""Receptive-field study: variants hold one axis fixed exactly, and the study trains and scores them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import disks_image
from nanoseg.datasets.store import DatasetWriter
from nanoseg.errors import NanosegError
from nanoseg.explain.receptive import receptive_field_study, receptive_field_variants


def test_variants_fix_parameters_on_the_rf_axis_and_rf_on_the_parameter_axis():
    variants = receptive_field_variants(dilations=(1, 2, 3), width_factors=(0.5, 1, 2))
    rf_axis = [v for v in variants if v.axis == "receptive_field"]
    par_axis = [v for v in variants if v.axis == "parameters"]
    assert len({v.n_parameters for v in rf_axis}) == 1
    assert [v.receptive_field_px for v in rf_axis] == sorted({v.receptive_field_px for v in rf_axis})
    assert len({v.receptive_field_px for v in par_axis}) == 1
    assert [v.n_parameters for v in par_axis] == sorted({v.n_parameters for v in par_axis})
    norm = receptive_field_variants(architecture="norm_unet", base_config={}, dilations=(1, 2), width_factors=(1,))
    assert norm[1].receptive_field_px > norm[0].receptive_field_px and norm[0].n_parameters == norm[1].n_parameters
    with pytest.raises(NanosegError, match="no per-level dilations"):
        receptive_field_variants(architecture="unet3")
    with pytest.raises(NanosegError, match="dilations"):
        receptive_field_variants(dilations=(0,))


def _dataset(root, n, seed):
    rng = np.random.default_rng(seed)
    with DatasetWriter(root) as writer:
        for i in range(n):
            centers = [(int(rng.integers(12, 52)), int(rng.integers(12, 52)), int(rng.integers(5, 10)))
                       for _ in range(2)]
            image, mask = disks_image(shape=(64, 64), centers_radii=centers, noise=0.15, seed=seed * 100 + i)
            writer.add(f"im{i}", image, mask, {"pixel_size_nm": 0.18, "source": f"s{seed}-{i}"})
    return root


@pytest.mark.slow  # four short trainings: ~45 s of CPU, ~2 min on the shared machine
def test_study_trains_and_scores_every_variant(tmp_path):
    train = _dataset(tmp_path / "train", 6, 1)
    test = _dataset(tmp_path / "test", 2, 2)
    table = receptive_field_study(train, test, tmp_path / "rf", dilations=(1, 2), width_factors=(1, 2),
                                  training={"epochs": 2, "patch_size": 32, "batch_size": 4, "lr": 3e-3})
    assert list(table.axis) == ["receptive_field"] * 2 + ["parameters"] * 2
    assert table.dice.between(0, 1).all() and (table.dice_std == 0).all()
    assert (tmp_path / "rf" / "receptive_field.csv").exists() and (tmp_path / "rf" / "receptive_field.png").exists()
    assert table.receptive_field_px.iloc[1] > table.receptive_field_px.iloc[0]


def test_cli_trains_the_variants_and_prints_the_table(tmp_path):
    from typer.testing import CliRunner

    from nanoseg.cli import app

    train = _dataset(tmp_path / "train", 4, 1)
    test = _dataset(tmp_path / "test", 1, 2)
    args = ["explain-rf", str(train), "--test", str(test), "--out", str(tmp_path / "rf"), "--dilations", "1,2",
            "--widths", "1", "--epochs", "1", "--patch-size", "32", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "rf" / "receptive_field.csv")
    rf_axis = table[table.axis == "receptive_field"]
    assert rf_axis.receptive_field_px.tolist() == [44, 84]  # sytwu_resunet base, dilation 1 and 2
    assert rf_axis.n_parameters.nunique() == 1
    assert "RF   84 px" in result.output
    # width × 1 is the dilation-1 network: trained once, reported on both axes
    assert sorted(p.name for p in (tmp_path / "rf").iterdir() if p.is_dir()) == ["dilation1__s0", "dilation2__s0"]
    shared = table.set_index("variant").dice
    assert shared["width×1"] == shared["dilation=1"]
    # a rerun reuses the finished checkpoints: same scores, almost no training time
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    rerun = pd.read_csv(tmp_path / "rf" / "receptive_field.csv")
    assert np.allclose(rerun.dice, table.dice)
    assert rerun.train_wall_s.sum() < 0.5 * table.train_wall_s.sum()


def test_cli_rejects_bad_number_lists(tmp_path, capsys):
    from nanoseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["explain-rf", str(tmp_path), "--test", str(tmp_path), "--out", str(tmp_path / "o"),
              "--dilations", "one,two"])
    assert exit_info.value.code == 2
    assert "--dilations must be numbers separated by commas" in capsys.readouterr().err


def test_a_bad_test_set_fails_before_any_training(tmp_path):
    train = _dataset(tmp_path / "train", 2, 1)
    with pytest.raises(NanosegError, match="not a nanoseg dataset"):
        receptive_field_study(train, tmp_path / "missing", tmp_path / "rf", dilations=(1,), width_factors=(1,))
    assert not any((tmp_path / "rf").glob("*__s0"))
