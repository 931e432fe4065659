"""benchmarks/realism.py: its pieces on hand-made cases, its refusal without ../shared, and one tiny real run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def realism():
    spec = importlib.util.spec_from_file_location("realism_benchmark", ROOT / "benchmarks" / "realism.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_every_condition_has_its_preset_and_every_ablation_is_a_valid_spec(realism):
    for condition in realism.CONDITIONS:
        config = realism.preset_config(condition.preset)
        assert config.name == condition.preset
        for overrides in realism.ABLATIONS.values():
            realism.preset_config(condition.preset, overrides)  # raises on an invalid spec


def test_hard_dice_and_background_standardization_by_hand(realism):
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :2] = 1  # 4 true pixels
    prob = np.zeros((4, 4))
    prob[0, :] = 0.9  # 4 predicted, 2 of them true
    assert realism.hard_dice(prob, truth) == pytest.approx(2 * 2 / (4 + 4))
    assert realism.hard_dice(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    image = np.array([[0.0, 2.0], [10.0, 10.0]])
    background = np.array([[True, True], [False, False]])
    z = realism.standardized(image, background)
    assert z[0].tolist() == [-1.0, 1.0]  # background mean 1, std 1
    assert z[1, 0] == pytest.approx(9.0)


def test_flat_field_of_a_crop_bends_into_a_big_particle_unless_it_is_excluded(realism):
    yy, xx = np.mgrid[:128, :128]
    particle = (yy - 64) ** 2 + (xx - 64) ** 2 < 36**2  # 25 % of the crop
    raw = np.where(particle, 70.0, 100.0) + np.random.default_rng(0).normal(0, 3, (128, 128))
    for crop, expected_min in ((True, None), (False, 0.28)):
        image = realism.model_input(raw, None if crop else particle)
        darkening = 1 - np.median(image[particle]) / np.median(image[~particle])
        if crop:
            assert darkening < 0.27  # part of the 30 % contrast divided away
        else:
            assert darkening > expected_min


def test_benchmark_says_clearly_when_the_reference_models_are_absent(realism, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(realism, "REALISM", tmp_path / "no-such-folder")
    assert realism.main(["--conditions", "au_5nm_dose423", "--images", "1"]) == 2
    assert "absent" in capsys.readouterr().err


@pytest.mark.slow  # one 512² multislice image and 8 network passes: ~25 s CPU
@pytest.mark.skipif(not (ROOT.parent / "shared" / "realism" / "peer_models").is_dir(),
                    reason="../shared/realism is not beside the repository")
def test_one_image_of_one_condition_is_scored_by_all_four_folds(realism, tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert realism.main(["--conditions", "au_10nm", "--images", "1", "--json", str(out)]) == 0
    import json

    row = json.loads(out.read_text())["full physics"][0]
    assert row["n_folds"] == 4 and row["n_images"] == 1
    assert 0.0 <= row["dice_bg_mean"] <= 1.0 and row["contrast"] > 0
    assert "mean hard Dice" in capsys.readouterr().out
