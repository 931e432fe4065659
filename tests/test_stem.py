"""HAADF-STEM image formation (nanoseg.simulate.stem) and the modality/polarity fields of the model card."""

from __future__ import annotations

import pytest

from nanoseg.models.card import ModelCard


def test_card_records_modality_and_polarity():
    card = ModelCard(architecture="sytwu_resunet", modality="haadf_stem", polarity="bright")
    back = ModelCard.model_validate_json(card.model_dump_json())
    assert (back.modality, back.polarity) == ("haadf_stem", "bright")
    old = ModelCard.model_validate({"architecture": "norm_unet"})  # cards written before the fields
    assert (old.modality, old.polarity) == ("hrtem", "dark")
    with pytest.raises(ValueError):
        ModelCard(architecture="unet3", polarity="grey")


import numpy as np  # noqa: E402

from nanoseg.errors import NanosegError  # noqa: E402
from nanoseg.simulate.config import SimulationConfig  # noqa: E402
from nanoseg.simulate.generate import simulate_image  # noqa: E402
from nanoseg.simulate.stem import simulate_haadf, support_sigma_per_A3  # noqa: E402

#: a clean, fast HAADF spec: no scan distortion, no 8-bit export, fixed probe and dose
CLEAN = {"jpeg_quality": None, "clip_low_fraction": None, "clip_high_fraction": None, "line_jitter_px": 0.0,
         "drift_x_px": 0.0, "drift_y_px": 0.0, "line_gain_noise": 0.0, "read_noise": 0.0, "detector_offset": 0.0,
         "detector_gain": 1.0, "electrons_per_pixel": 1e6, "probe_fwhm_nm": 0.2, "cross_section_Au_A2": 3e-3,
         "z_exponent": 1.7, "overlap_fraction": 0.0, "support_porosity": 0.0}


def _spec(**changes):
    spec = {"modality": "haadf_stem", "image_size_px": 64, "pixel_size_nm": 0.4, "material": "Pt",
            "shape": "sphere", "diameter_nm": 3.0, "diameter_spread": 0.0, "n_particles": 6, "support": "carbon",
            "support_thickness_nm": 5.0, "stem": dict(CLEAN)}
    stem = changes.pop("stem", {})
    spec.update(changes)
    spec["stem"].update(stem)
    return SimulationConfig.parse(spec)


def test_haadf_image_bright_particles_exact_labels_deterministic():
    cfg = _spec()
    sim = simulate_image(cfg, seed=1)  # dispatches on modality
    again = simulate_haadf(cfg, seed=1)
    assert np.array_equal(sim.micrograph.data, again.micrograph.data)
    assert sim.meta["modality"] == "haadf_stem" and sim.micrograph.pixel_size_nm == 0.4
    assert int(sim.instances.max()) == sim.meta["n_particles"] == 6
    inside, outside = sim.micrograph.data[sim.mask > 0], sim.micrograph.data[sim.mask == 0]
    assert inside.mean() > 5 * outside.mean()  # Pt (Z = 78) on a 5 nm carbon film: bright particles
    # each label is one particle: the label area is the 3 nm disc (7.07 nm² = 44 px at 0.4 nm/px), ± edge pixels
    areas = np.bincount(sim.instances.ravel())[1:]
    assert np.all(np.abs(areas - 44) < 14), areas


def test_haadf_signal_follows_atomic_number():
    pt = simulate_haadf(_spec(material="Pt"), seed=2)
    cu = simulate_haadf(_spec(material="Cu"), seed=2)
    ratio = pt.micrograph.data[pt.mask > 0].mean() / cu.micrograph.data[cu.mask > 0].mean()
    # (78/29)^1.7 = 5.4 per atom, times Cu's 1.36× higher number density and the same shape: ≈ 4
    assert 3.0 < ratio < 5.5, ratio
    p = {"cross_section_Au_A2": 2e-3, "z_exponent": 1.7}
    assert support_sigma_per_A3("carbon", p) < support_sigma_per_A3("silica", p) < support_sigma_per_A3("ceria", p)


def test_scan_drift_moves_image_and_labels_together():
    still = simulate_haadf(_spec(n_particles=1, diameter_nm=6.0), seed=3)
    drift = simulate_haadf(_spec(n_particles=1, diameter_nm=6.0, stem={"drift_x_px": 12.0}), seed=3)
    cols = np.arange(64)[None, :]

    def centre_x(weights):
        return float((weights * cols).sum() / weights.sum())

    # row i is scanned at x + 12 i/63: content moves left by ≈ 12 · (mean row of the particle)/63
    shift_mask = centre_x(drift.mask) - centre_x(still.mask)
    shift_image = centre_x(drift.micrograph.data * drift.mask) - centre_x(still.micrograph.data * still.mask)
    assert shift_mask < -1.0 and abs(shift_mask - shift_image) < 0.5


def test_grain_support_and_8bit_jpeg_export():
    sim = simulate_haadf(_spec(support="silica", n_particles=20, stem={"jpeg_quality": 85, "clip_low_fraction": 0.01,
                                                                       "clip_high_fraction": 0.001}), seed=4)
    data = sim.micrograph.data
    assert data.min() >= 0 and data.max() <= 255 and np.array_equal(data, np.round(data))
    assert 0 < sim.meta["support_covered_fraction"] <= 1 and sim.meta["n_particles"] >= 1


def test_haadf_spec_errors_are_one_clear_message():
    with pytest.raises(NanosegError, match="stem"):
        SimulationConfig.parse({"modality": "haadf_stem", "stem": {"no_such_parameter": 1}})
    with pytest.raises(NanosegError, match="modality"):
        SimulationConfig.parse({"modality": "xray"})
    with pytest.raises(NanosegError, match="stem"):
        SimulationConfig.parse({"stem": {"z_exponent": 1.7}})  # HAADF parameters on an HRTEM spec
    with pytest.raises(NanosegError, match="support"):
        SimulationConfig.parse({"modality": "haadf_stem", "support": "graphite"})
    assert SimulationConfig().modality == "hrtem" and SimulationConfig().stem is None


def test_haadf_training_preset_is_valid():
    from pathlib import Path

    cfg = SimulationConfig.from_yaml(Path(__file__).resolve().parent.parent / "examples/simulate/haadf_training.yaml")
    assert cfg.modality == "haadf_stem" and cfg.pixel_size_nm == 0.3


def test_shipped_haadf_model_card():
    from pathlib import Path

    from nanoseg.models.checkpoint import read_card

    folder = Path(__file__).resolve().parent.parent / "src" / "nanoseg" / "data" / "models" / "haadf_stem"
    if not (folder / "card.json").is_file():
        pytest.skip("the HAADF-STEM model is not installed")
    card = read_card((folder / "card.json").read_text(), path=folder / "card.json")
    assert (card.modality, card.polarity, card.pixel_size_nm) == ("haadf_stem", "bright", 0.3)
    low, high = card.particle_diameter_range_nm
    assert 0.5 < low < 3 and 8 < high < 20
    assert (folder / "weights.safetensors").stat().st_size <= 1.5e6
