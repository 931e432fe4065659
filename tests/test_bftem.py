"""Bright-field TEM at particle-resolving magnification (nanoseg.simulate.bftem): physics, labels, specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from nanoseg.errors import NanosegError
from nanoseg.simulate import bftem
from nanoseg.simulate.config import SimulationConfig

ROOT = Path(__file__).resolve().parents[1]

BASE = dict(modality="bf_tem", image_size_px=64, pixel_size_nm=0.5, material="Au", shape="sphere",
            diameter_nm=8.0, diameter_spread=0.0, n_particles=1, support="carbon", support_thickness_nm=10.0,
            voltage_kV=200.0, defocus_nm=0.0, Cs_um=0.0, astigmatism_nm=0.0, aperture_mrad=10.0,
            convergence_mrad=0.0, dose_e_per_A2=1e4, detector="ideal", zone_axis_fraction=0.0)
QUIET = {"bragg_fraction": 0.0, "granularity_phase_rad": 0.0, "cluster_fraction": 0.0}


def sim(seed=0, bf=None, **changes):
    cfg = SimulationConfig.parse({**BASE, **changes, "bf_tem": {**QUIET, **(bf or {})}})
    return bftem.simulate_bf_image(cfg, seed)


def ring_means(image, mask, inner_px, outer_px):
    """Mean of ``image`` in the band inner_px < distance outside the mask ≤ outer_px."""
    dist = ndimage.distance_transform_edt(mask == 0)
    band = (dist > inner_px) & (dist <= outer_px)
    return float(image[band].mean())


def test_bf_image_is_labelled_deterministic_and_dark():
    a, b = sim(seed=3, n_particles=3, diameter_nm=5.0), sim(seed=3, n_particles=3, diameter_nm=5.0)
    assert np.array_equal(a.micrograph.data, b.micrograph.data)
    assert np.array_equal(a.mask, (a.instances > 0).astype(np.uint8))
    assert int(a.instances.max()) == 3 and a.meta["modality"] == "bf_tem" and a.meta["polarity"] == "dark"
    image = a.micrograph.data
    assert image[a.mask == 1].mean() < 0.9 * image[a.mask == 0].mean()  # particles darker than the film


def test_mass_thickness_follows_the_cross_sections():
    # heavier and thicker is darker; a larger aperture lets more through; higher voltage scatters less
    au = bftem.attenuation_per_nm({"Au": 1.0}, 19.3, 200, 10)
    cu = bftem.attenuation_per_nm({"Cu": 1.0}, 8.96, 200, 10)
    c = bftem.attenuation_per_nm({"C": 1.0}, 2.0, 200, 10)
    assert au > 2 * cu > 10 * c
    assert 8 < 1 / au < 14 and 250 < 1 / c < 400  # effective mean free paths (nm), module doc
    assert bftem.attenuation_per_nm({"Au": 1.0}, 19.3, 200, 20) < au
    assert bftem.attenuation_per_nm({"Au": 1.0}, 19.3, 300, 10) < au
    # in the image: an 8 nm Au sphere transmits about exp(-t/Λ) at its centre (no phase, no Bragg)
    s = sim()
    image = s.micrograph.data
    background = ring_means(image, s.mask, 4, 12)
    centre = ndimage.center_of_mass(s.mask)
    core = image[int(round(centre[0])), int(round(centre[1]))] / background
    expected = np.exp(-8.0 * bftem._particle_attenuation_per_nm(_au_atoms(), 200, 10))
    assert abs(core - expected) < 0.12, (core, expected)
    cu_image = sim(material="Cu")
    cu_core = cu_image.micrograph.data[cu_image.mask == 1].mean() / ring_means(cu_image.micrograph.data,
                                                                                cu_image.mask, 4, 12)
    assert cu_core > image[s.mask == 1].mean() / background + 0.1


def _au_atoms():
    from ase import Atoms

    atoms = Atoms("Au4", positions=np.zeros((4, 3)))
    atoms.info["material"] = "Au"
    return atoms


def test_bragg_particles_are_darker():
    plain = sim(seed=1, diameter_nm=6.0)
    bragg = sim(seed=1, diameter_nm=6.0, bf={"bragg_fraction": 1.0})
    assert bragg.meta["n_bragg"] == 1 and plain.meta["n_bragg"] == 0
    inside = plain.mask == 1
    assert bragg.micrograph.data[inside].mean() < plain.micrograph.data[inside].mean() - 0.03 * (
        plain.micrograph.data[~inside].mean())


def test_underfocus_gives_a_bright_fresnel_halo():
    focus = sim(defocus_nm=0.0, diameter_nm=10.0)
    under = sim(defocus_nm=1500.0, diameter_nm=10.0)
    far_f, far_u = ring_means(focus.micrograph.data, focus.mask, 8, 16), ring_means(
        under.micrograph.data, under.mask, 8, 16)
    halo_f = ring_means(focus.micrograph.data, focus.mask, 0, 1.5) / far_f
    halo_u = ring_means(under.micrograph.data, under.mask, 0, 1.5) / far_u
    assert halo_u > 1.03 and halo_u > halo_f + 0.03, (halo_f, halo_u)


def test_quantized_frames_have_few_grey_levels_and_supports_lumps_and_grains():
    s = sim(seed=2, n_particles=5, diameter_nm=4.0, support="alumina", support_thickness_nm=20.0,
            dose_e_per_A2=20.0, detector="scintillator",
            bf={"quantize_levels": 18, "support_lump_fraction": 0.5, "support_lump_height_nm": 40})
    assert len(np.unique(s.micrograph.data)) <= 18 and s.meta["quantize_levels"] == 18
    assert s.meta["n_dark_grains"] >= 1
    flat = sim(seed=2, support="alumina", support_thickness_nm=20.0)
    lumpy = sim(seed=2, support="alumina", support_thickness_nm=20.0,
                bf={"support_lump_fraction": 0.5, "support_lump_height_nm": 60, "support_lump_nm": 10})
    bg = flat.mask == 0
    assert lumpy.micrograph.data[bg].std() > 2 * flat.micrograph.data[bg].std()


def test_large_particles_are_scaled_with_exact_labels():
    s = sim(diameter_nm=20.0, image_size_px=96, pixel_size_nm=0.5)
    assert s.meta["scaled_particles"] == 1
    area_nm2 = s.mask.sum() * 0.25
    assert abs(area_nm2 / (np.pi * 10.0 ** 2) - 1) < 0.15  # a sphere's projection, to the edge pixels
    image = s.micrograph.data
    edge_in = image[(s.mask == 1) & (ndimage.binary_erosion(s.mask, iterations=2) == 0)].mean()
    assert edge_in < 0.97 * ring_means(image, s.mask, 1, 4)  # the dark area starts at the label's edge


def test_clustered_particles_touch():
    s = sim(seed=4, n_particles=8, diameter_nm=4.0, bf={"cluster_fraction": 1.0})
    touching = 0
    for i in range(1, int(s.instances.max()) + 1):
        grown = ndimage.binary_dilation(s.instances == i, iterations=2)
        touching += bool(np.any((s.instances > 0) & (s.instances != i) & grown))
    assert touching >= 2


def test_bad_bf_specs_give_one_clear_error():
    with pytest.raises(NanosegError, match="support"):
        SimulationConfig.parse({**BASE, "support": "graphite"})
    with pytest.raises(NanosegError, match="bragg_fraction"):
        SimulationConfig.parse({**BASE, "bf_tem": {"bragg_fraction": 2}})
    with pytest.raises(NanosegError, match="bf_tem"):
        SimulationConfig.parse({**BASE, "bf_tem": {"no_such_knob": 1}})
    with pytest.raises(NanosegError, match="modality: bf_tem"):
        SimulationConfig.parse({"bf_tem": {"bragg_fraction": 0.2}})


def test_training_preset_and_dataset_dispatch(tmp_path):
    from nanoseg.datasets import open_dataset
    from nanoseg.simulate import generate_dataset, simulate_image

    spec = yaml.safe_load((ROOT / "examples/simulate/bf_training.yaml").read_text())
    spec.update(image_size_px=64, n_particles=4, name="bf")
    cfg = SimulationConfig.parse(spec)
    one = simulate_image(cfg, 5)
    assert one.meta["mode"] == "bf_tem" and one.micrograph.shape == (64, 64)
    out = generate_dataset(cfg, tmp_path / "bf", n_images=2, n_workers=0, progress=False)
    assert len(open_dataset(out)) == 2


def test_hrtem_specs_are_untouched_by_the_bf_fields():
    cfg = SimulationConfig(image_size_px=64, pixel_size_nm=0.05, diameter_nm=1.5)
    assert cfg.bf_tem is None and cfg.modality == "hrtem"
    assert cfg.draw(np.random.default_rng(0)) == SimulationConfig.model_validate(
        cfg.model_dump(mode="json")).draw(np.random.default_rng(0))
