"""``--model auto`` (nanoseg.infer.auto): the shipped model per modality, pixel size and polarity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nanoseg.errors import NanosegError
from nanoseg.infer.auto import LATTICE_THRESHOLD, lattice_fringe_score, pick_model, polarity_score
from nanoseg.io import Micrograph
from nanoseg.simulate import simulate_image
from nanoseg.simulate.config import SimulationConfig

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real" / "ardagen" / "images"
ALL = ["default", "haadf_stem", "bf_tem"]


def preset(name: str, **changes) -> SimulationConfig:
    spec = yaml.safe_load((ROOT / "examples" / "simulate" / name).read_text())
    return SimulationConfig.parse({**spec, **changes})


@pytest.fixture(scope="module")
def bf_image():
    sim = simulate_image(preset("bf_training.yaml", image_size_px=128, pixel_size_nm=0.5, n_particles=20,
                                diameter_nm=6.0, material="Au"), 3)
    return sim.micrograph


@pytest.fixture(scope="module")
def haadf_image():
    return simulate_image(preset("haadf_training.yaml", image_size_px=128), 3).micrograph


@pytest.fixture(scope="module")
def hrtem_image():
    cfg = SimulationConfig(image_size_px=128, pixel_size_nm=0.04, diameter_nm=3.0, n_particles=2,
                           support_thickness_nm=2.0, sampling_A=0.25, zone_axis_fraction=1.0)
    return simulate_image(cfg, 0).micrograph


def strip(micrograph, pixel_size_nm=None):
    """The image only (no metadata): what a bare PNG/JPEG export carries."""
    return Micrograph(micrograph.data, pixel_size_nm=pixel_size_nm)


def test_bright_field_image_gets_the_bf_model(bf_image):
    choice = pick_model(strip(bf_image, 0.5), installed=ALL)
    assert (choice.name, choice.modality, choice.polarity) == ("bf_tem", "bf_tem", "dark")
    assert choice.message == "model: bf_tem (auto: dark particles, 0.5 nm/px)"
    unknown = pick_model(strip(bf_image), installed=ALL)
    assert unknown.name == "bf_tem" and "no pixel size" in unknown.reason


def test_haadf_image_gets_the_haadf_model(haadf_image):
    choice = pick_model(strip(haadf_image, 0.3), installed=ALL)
    assert (choice.name, choice.polarity) == ("haadf_stem", "bright"), choice.features
    assert pick_model(strip(haadf_image), installed=ALL).name == "haadf_stem"
    # inverted, the same image reads as dark particles
    assert pick_model(Micrograph(haadf_image.data.max() - haadf_image.data, pixel_size_nm=0.3),
                      installed=ALL).name == "bf_tem"


def test_hrtem_by_pixel_size_or_lattice_fringes(hrtem_image):
    assert pick_model(strip(hrtem_image, 0.04), installed=ALL).name == "default"
    assert lattice_fringe_score(hrtem_image.data) > LATTICE_THRESHOLD
    choice = pick_model(strip(hrtem_image), installed=ALL)
    assert choice.modality == "hrtem" and "lattice fringes" in choice.reason


def test_metadata_and_override_and_fallback(bf_image):
    stem_file = Micrograph(bf_image.data, pixel_size_nm=0.5, metadata={"title": "HAADF"})
    assert pick_model(stem_file, installed=ALL).name == "haadf_stem"
    assert pick_model(bf_image, installed=ALL).reason.startswith("the file's modality bf_tem")  # simulated meta
    # --pixel-size below 0.1 nm/px: lattice-resolved HRTEM whatever the polarity
    assert pick_model(strip(bf_image, 0.5), pixel_size_nm=0.05, installed=ALL).name == "default"
    missing = pick_model(strip(bf_image, 0.5), installed=["default"])
    assert missing.name == "default" and missing.modality == "bf_tem" and "not installed" in missing.message


def test_polarity_score_signs_and_flat_images():
    yy, xx = np.mgrid[:96, :96]
    blobs = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 12) for y, x in
                np.random.default_rng(1).uniform(8, 88, (10, 2)))
    assert polarity_score(100 + 30 * blobs) > 0.1 > polarity_score(100 - 30 * blobs)
    assert polarity_score(np.ones((64, 64))) == 0.0
    assert pick_model(Micrograph(np.ones((64, 64)), pixel_size_nm=0.5), installed=ALL).name == "bf_tem"


@pytest.mark.skipif(not REAL.exists(), reason="../shared/real/ardagen is not present")
@pytest.mark.parametrize("name, modality", [("PtC1", "bf_tem"), ("Pt_carbon2", "bf_tem"), ("PtCo3", "bf_tem"),
                                            ("Pd_silica4", "haadf_stem"), ("Cu1", "haadf_stem")])
def test_real_ardagen_jpegs(name, modality):
    from PIL import Image

    data = np.asarray(Image.open(REAL / f"{name}.jpg").convert("L"), dtype=np.float32)
    assert pick_model(Micrograph(data), installed=ALL).modality == modality


def test_predict_auto_names_its_choice(bf_image):
    from nanoseg.infer import predict

    pred = predict(strip(bf_image, 0.5), "auto", engine="eager")
    assert pred.warnings[0].startswith("model: ") and "dark particles, 0.5 nm/px" in pred.warnings[0]
    assert pred.metadata["model_choice"]["modality"] == "bf_tem"
    with pytest.raises(NanosegError, match="auto"):
        from nanoseg.infer.predict import resolve_models

        resolve_models("auto")
    with pytest.raises(NanosegError, match="shipped model"):
        from nanoseg.models.checkpoint import shipped_model_path

        shipped_model_path("cryo_em")


def test_cli_predict_defaults_to_auto(tmp_path, bf_image):
    from nanoseg.cli import app
    from nanoseg.io import write_tiff

    write_tiff(tmp_path / "bf.tif", bf_image.data, pixel_size_nm=0.5)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "bf.tif"), "--out", str(out), "--no-progress",
                                      "--engine", "eager"])
    assert result.exit_code == 0, result.output
    assert "model: " in result.output and "(auto: dark particles, 0.5 nm/px)" in result.output
    meta = json.loads((out / "bf.json").read_text())
    assert meta["model_choice"]["modality"] == "bf_tem" and meta["warnings"][0].startswith("model: ")
