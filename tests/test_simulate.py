"""Tests of nanoseg.simulate: abTEM conventions, structures, supports, detector, labels, configs, datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial import cKDTree

from nanoseg.errors import NanosegError
from nanoseg.simulate import (
    DETECTORS,
    SimulationConfig,
    amorphous_carbon,
    apply_detector,
    exit_wave,
    footprint_labels,
    footprint_mask,
    generate_dataset,
    image_intensity,
    image_seed,
    make_particle,
    mtf,
    simulate_image,
    wavelength_A,
)
from nanoseg.simulate.detector import get_detector
from nanoseg.simulate.stats import fourier_roughness, particle_contrast, radial_power_spectrum

TINY = dict(name="tiny", image_size_px=48, pixel_size_nm=0.05, diameter_nm=1.0, diameter_spread=0.0,
            support_thickness_nm=0.6, shape="cuboctahedron", aperture_mrad=22.0, defocus_nm=5.0, Cs_um=0.0,
            astigmatism_nm=0.0)


# ---------------------------------------------------------------- optics conventions (abTEM 1.0)

def _phase_bump(n=128, sampling=0.2, sigma_A=1.0, phase=0.3):
    yy, xx = (np.mgrid[:n, :n] - n / 2) * sampling
    return np.exp(1j * phase * np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma_A ** 2))).astype(np.complex64)


def test_positive_defocus_is_underfocus_dark_atoms():
    """abTEM: defocus = −C10; positive = underfocus, where a weak phase object (an atom) images dark."""
    wave = _phase_bump()
    centre = (64, 64)
    under = image_intensity(wave, sampling_A=0.2, energy_eV=300e3, defocus_nm=5.0, aperture_mrad=25.0)
    over = image_intensity(wave, sampling_A=0.2, energy_eV=300e3, defocus_nm=-5.0, aperture_mrad=25.0)
    assert under[centre] < 0.97 < 1.03 < over[centre]
    from nanoseg.simulate import ctf

    assert ctf(energy_eV=300e3, defocus_nm=5.0).C10 == pytest.approx(-50.0)


def _cosine_modulation(image, axis):
    profile = image.mean(axis=1 - axis) - image.mean()
    return np.abs(np.fft.rfft(profile)).max() * 2 / profile.size


def test_focal_spread_is_one_over_e_width():
    """The temporal envelope equals an average over a Gaussian focus distribution with σ = Δ/√2."""
    n, sampling, period_px = 128, 0.1, 16  # spatial frequency k = 1/(1.6 Å): α = λk ≈ 12 mrad at 300 kV
    x = np.arange(n) * sampling
    eps = 1e-3
    wave = np.ones((n, n), np.complex64) * (1 + eps * np.exp(2j * np.pi * x / (period_px * sampling)))[None, :]
    focal_spread_nm = 6.0
    blurred = image_intensity(wave, sampling_A=sampling, energy_eV=300e3, focal_spread_nm=focal_spread_nm)
    sharp = image_intensity(wave, sampling_A=sampling, energy_eV=300e3)
    measured = _cosine_modulation(blurred, axis=1) / _cosine_modulation(sharp, axis=1)
    lam, k = wavelength_A(300e3), 1 / (period_px * sampling)
    sigma = focal_spread_nm * 10 / np.sqrt(2)
    foci = np.linspace(-6 * sigma, 6 * sigma, 4001)
    weights = np.exp(-foci ** 2 / (2 * sigma ** 2))
    expected = abs(np.sum(weights * np.exp(1j * np.pi * lam * k ** 2 * foci)) / weights.sum())
    assert 0.1 < expected < 0.9
    assert measured == pytest.approx(expected, rel=0.02)


def test_ctf_orientation_columns_are_x():
    """Image columns are abTEM's x: astigmatism C12 (angle 0) acts as C10 + C12 along columns."""
    n, sampling = 128, 0.2
    x = np.arange(n) * sampling
    grating = np.exp(1j * 0.05 * np.cos(2 * np.pi * x / (8 * sampling))).astype(np.complex64)
    along_x = np.tile(grating[None, :], (n, 1))  # varies along columns (x)
    along_y = along_x.T.copy()
    astig = dict(sampling_A=sampling, energy_eV=300e3, astigmatism_nm=3.0, astigmatism_angle_rad=0.0)
    # C12 = +3 nm along x ⇒ C10 = +3 nm there ⇒ defocus = −3 nm; along y ⇒ defocus = +3 nm
    np.testing.assert_allclose(image_intensity(along_x, **astig),
                               image_intensity(along_x, sampling_A=sampling, energy_eV=300e3, defocus_nm=-3.0),
                               atol=1e-4)
    np.testing.assert_allclose(image_intensity(along_y, **astig),
                               image_intensity(along_y, sampling_A=sampling, energy_eV=300e3, defocus_nm=3.0),
                               atol=1e-4)


def test_exit_wave_puts_atom_at_row_y_col_x():
    atoms = Atoms("Au", positions=[[6.0, 14.0, 2.0]])
    wave = exit_wave(atoms, extent_A=(20.0, 20.0), gpts=(100, 100), energy_eV=300e3)
    row, col = np.unravel_index(np.argmax(np.angle(wave)), wave.shape)
    assert (row, col) == (70, 30)


# ---------------------------------------------------------------- detector

@pytest.mark.parametrize("detector", ["ideal", "counting", "scintillator"])
def test_dose_per_pixel_is_dose_times_pixel_area(detector):
    rng = np.random.default_rng(0)
    dose, pixel_A = 423.0, 0.2
    image = apply_detector(np.ones((256, 256)), dose_e_per_A2=dose, pixel_size_A=pixel_A, detector=detector, rng=rng)
    expected = dose * pixel_A ** 2  # 16.92 e/px
    cv2 = DETECTORS[detector].gain_noise_cv ** 2
    # Poisson (× gain) standard error of the mean over 65,536 pixels, 4σ
    assert abs(image.mean() - expected) < 4 * np.sqrt(expected * (1 + cv2) / image.size) + 0.01


def test_poisson_noise_then_mtf():
    rng = np.random.default_rng(1)
    ideal = apply_detector(np.ones((256, 256)), dose_e_per_A2=100, pixel_size_A=0.5, detector="ideal", rng=rng)
    assert ideal.var() == pytest.approx(25.0, rel=0.05)  # Poisson: variance = mean = 25 e/px
    assert fourier_roughness(ideal) == pytest.approx(1 / 6, rel=0.03)  # white
    shot_only = get_detector("scintillator", gain_nonuniformity=0.0)  # the pixel gain map adds white noise
    scint = apply_detector(np.ones((256, 256)), dose_e_per_A2=100, pixel_size_A=0.5, detector=shot_only, rng=rng)
    assert fourier_roughness(scint) < 0.07  # the MTF low-passes the shot noise
    m = mtf((64, 64), "scintillator")
    assert m[0, 0] == pytest.approx(1.0) and m[0, 32] < 0.15


def test_pixel_gain_nonuniformity_is_white_noise_in_proportion_to_the_signal():
    """Its variance is (g·N)²: negligible at a few e/px, dominant at thousands; one fixed map serves all frames."""
    from nanoseg.simulate.detector import pixel_gain_map

    flat = np.ones((256, 256))
    det = get_detector("ideal", gain_nonuniformity=0.05)
    for dose, pixel_A in ((100.0, 0.5), (40000.0, 0.5)):  # 25 and 10,000 e/px
        n = dose * pixel_A ** 2
        image = apply_detector(flat, dose_e_per_A2=dose, pixel_size_A=pixel_A, detector=det,
                               rng=np.random.default_rng(2))
        assert image.var() == pytest.approx(n + (0.05 * n) ** 2, rel=0.05)  # Poisson + gain map
        assert fourier_roughness(image) == pytest.approx(1 / 6, rel=0.03)  # both white
    gains = pixel_gain_map(flat.shape, det, np.random.default_rng(3))
    frames = [apply_detector(flat, dose_e_per_A2=40000.0, pixel_size_A=0.5, detector=det, gain_map=gains,
                             rng=np.random.default_rng(seed)) for seed in (4, 5)]
    # the same camera pattern in both frames: their pixel values correlate (r = g²N / (g²N + 1) ≈ 0.96)
    assert np.corrcoef(frames[0].ravel(), frames[1].ravel())[0, 1] > 0.9
    with pytest.raises(NanosegError, match="gain_map has shape"):
        apply_detector(flat, dose_e_per_A2=100.0, pixel_size_A=0.5, detector=det, gain_map=gains[:8],
                       rng=np.random.default_rng(0))
    with pytest.raises(NanosegError, match="gain_nonuniformity"):
        get_detector("scintillator", gain_nonuniformity=2.0)


def test_detector_rejects_bad_dose():
    with pytest.raises(NanosegError, match="dose"):
        apply_detector(np.ones((8, 8)), dose_e_per_A2=-5, pixel_size_A=0.2, rng=np.random.default_rng(0))


# ---------------------------------------------------------------- structures and supports

def test_particle_composition_and_diameter():
    rng = np.random.default_rng(0)
    au = make_particle("Au", "truncated_octahedron", 3.0, rng, on_zone=True)
    assert set(au.get_chemical_symbols()) == {"Au"}
    assert au.info["diameter_nm"] == pytest.approx(3.0, rel=0.05)
    # fcc nearest-neighbour distance a/√2 = 2.884 Å
    d = cKDTree(au.positions).query(au.positions, k=2)[0][:, 1]
    assert d.min() == pytest.approx(4.078 / np.sqrt(2), abs=1e-3)
    cdse = make_particle("CdSe", "ellipsoid", 3.0, rng, aspect_ratio=1.6)
    symbols = cdse.get_chemical_symbols()
    assert abs(symbols.count("Cd") - symbols.count("Se")) <= 0.1 * len(symbols)
    extent = np.ptp(cdse.positions, axis=0)
    assert extent.max() / extent.min() > 1.3  # oblong
    ico = make_particle("Pt", "icosahedron", 2.0, rng)
    assert ico.info["shape"] == "icosahedron" and ico.info["n_atoms"] in (55, 147, 309)
    with pytest.raises(NanosegError, match="unknown material"):
        make_particle("Xx", "sphere", 3.0, rng)


def test_amorphous_carbon_density_and_min_distance():
    film = amorphous_carbon((30.0, 30.0), 20.0, rng=np.random.default_rng(0))
    assert len(film) / (30 * 30 * 20) == pytest.approx(0.1003, rel=0.01)  # 2 g/cm³
    tree = cKDTree(film.positions, boxsize=[30.0, 30.0, 1e3])
    assert tree.query(film.positions, k=2)[0][:, 1].min() >= 1.35


# ---------------------------------------------------------------- labels

def test_mask_area_matches_projected_particle_area():
    particle = make_particle("Au", "decahedron", 2.5, np.random.default_rng(2))
    particle.positions[:, :2] += 30.0
    # reference: the union of atom disks (covalent radius of Au, 1.36 Å) rasterised on a 0.02 Å grid
    fine = footprint_mask(particle, shape=(3000, 3000), pixel_size_A=0.02, supersample=1)
    area = fine.sum() * 0.02 ** 2
    for pixel_A in (0.2, 0.5, 1.8):
        n = int(np.ceil(60 / pixel_A))
        coarse = footprint_mask(particle, shape=(n, n), pixel_size_A=pixel_A)
        assert coarse.sum() * pixel_A ** 2 == pytest.approx(area, rel=0.04 if pixel_A < 1 else 0.08)


def test_instances_separate_touching_particles():
    a = Atoms("Au", positions=[[8.0, 10.0, 0]])
    b = Atoms("Au", positions=[[12.0, 10.0, 0]])
    lab = footprint_labels([a, b], shape=(20, 20), pixel_size_A=1.0, atom_radius_A=3.0)
    assert set(np.unique(lab)) == {0, 1, 2}
    assert lab[10, 7] == 1 and lab[10, 13] == 2


# ---------------------------------------------------------------- configs, images, datasets

@pytest.mark.parametrize("bad, word", [
    ({"dose_e_per_A2": -10}, "dose_e_per_A2"),
    ({"material": "Unobtainium"}, "unknown material"),
    ({"diameter_nm": 12.0, "image_size_px": 128, "pixel_size_nm": 0.02}, "do not fit"),
    ({"aperture_mrad": 0}, "aperture_mrad"),
    ({"defocus_nm": {"uniform": [5, -5]}}, "low ≤ high"),
    ({"zone_axis_fraction": 1.5}, "probability"),
    ({"detector": "film"}, "unknown detector"),
    ({"dose": 100}, "dose"),
])
def test_bad_configs_raise_clear_errors(bad, word):
    with pytest.raises(NanosegError, match=word):
        SimulationConfig.parse(bad)


def test_yaml_round_trip_and_errors(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("material: {choice: [Au, Ag]}\ndose_e_per_A2: {loguniform: [50, 1000]}\n")
    cfg = SimulationConfig.from_yaml(spec)
    assert cfg.name == "s"
    draws = [cfg.draw(np.random.default_rng(i)) for i in range(20)]
    assert {d["material"] for d in draws} == {"Au", "Ag"}
    assert all(50 <= d["dose_e_per_A2"] <= 1000 for d in draws)
    (tmp_path / "bad.yaml").write_text("dose_e_per_A2: -1\n")
    with pytest.raises(NanosegError, match="bad.yaml"):
        SimulationConfig.from_yaml(tmp_path / "bad.yaml")


def test_simulate_image_is_deterministic_and_labelled():
    cfg = SimulationConfig.parse(TINY)
    a, b = simulate_image(cfg, 5), simulate_image(cfg, 5)
    assert np.array_equal(a.micrograph.data, b.micrograph.data) and np.array_equal(a.mask, b.mask)
    c = simulate_image(cfg, 6)
    assert not np.array_equal(a.micrograph.data, c.micrograph.data)
    assert a.micrograph.data.dtype == np.float32 and a.mask.dtype == np.uint8 and a.instances.dtype == np.int32
    assert a.micrograph.pixel_size_nm == 0.05 and a.meta["dose_e_per_A2"] == 423.0
    # electrons per pixel: mean ≈ dose × pixel area (particle and carbon scatter a little out of the aperture)
    assert 0.8 * 423 * 0.25 < a.micrograph.data.mean() < 1.05 * 423 * 0.25
    for key in ("id", "source", "session", "material", "shape", "diameter_nm", "diameters_nm", "n_particles",
                "pixel_size_nm", "dose_e_per_A2", "voltage_kV", "defocus_nm", "Cs_um", "focal_spread_nm",
                "convergence_mrad", "aperture_mrad", "detector", "support", "support_thickness_nm",
                "zone_axis_fraction", "on_zone", "illumination_gradient", "seed"):
        assert key in a.meta or key == "id"
    assert json.loads(a.meta["diameters_nm"])[0] == pytest.approx(a.meta["diameter_nm"])


def test_generate_dataset_resumes(tmp_path):
    from nanoseg.datasets import open_dataset

    out = generate_dataset(TINY, tmp_path / "ds", n_images=2, seed=3, n_workers=0, progress=False)
    ds = open_dataset(out)
    assert ds.ids == ["tiny-000000", "tiny-000001"]
    first = ds.image("tiny-000001")
    generate_dataset(TINY, out, n_images=3, seed=3, n_workers=0, progress=False)
    ds = open_dataset(out)
    assert len(ds) == 3 and np.array_equal(ds.image("tiny-000001"), first)
    again = simulate_image(SimulationConfig.parse(TINY), image_seed(3, 2))
    assert np.array_equal(ds.image("tiny-000002"), again.micrograph.data)
    assert ds.instances("tiny-000002").max() >= 1
    assert ds.row("tiny-000002")["source"] == "simulated"


def test_stats_on_known_images():
    img = np.ones((16, 16))
    img[:8] = 0.0
    mask = np.zeros((16, 16), bool)
    mask[:8] = True
    assert particle_contrast(img, mask) == pytest.approx(2.0)
    k, p = radial_power_spectrum(np.cos(2 * np.pi * np.arange(64) / 8)[None, :] * np.ones((64, 1)))
    assert k[np.argmax(p)] == pytest.approx(1 / 8, abs=1 / 64)


def test_cli_simulate_resume(tmp_path):
    from typer.testing import CliRunner

    from nanoseg.cli import app

    spec = tmp_path / "tiny.yaml"
    spec.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in TINY.items() if k != "name") + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", str(spec), "--out", str(tmp_path / "d"), "-n", "1", "--workers", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["simulate", str(spec), "--out", str(tmp_path / "d"), "-n", "1", "--workers", "0"])
    assert result.exit_code == 0 and "0 new images" in result.output


def test_absurd_pixel_gains_are_refused_in_the_spec_and_a_run_with_no_image_says_so(tmp_path, monkeypatch,
                                                                                     capsys):
    """A 500 % gain spread is a spec error before any simulation; a run whose every image failed ends with one
    clear error (it used to end with 'not a nanoseg dataset')."""
    import nanoseg.simulate as simulate_pkg
    from nanoseg.cli import main

    with pytest.raises(NanosegError, match="gain_nonuniformity.*beyond any camera"):
        SimulationConfig.parse({**TINY, "gain_nonuniformity": 5.0})
    spec = tmp_path / "tiny.yaml"
    spec.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in TINY.items() if k != "name") + "\n")
    monkeypatch.setattr(simulate_pkg, "generate_dataset", lambda *a, **k: None)  # as if every image failed
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(spec), "--out", str(tmp_path / "d"), "-n", "1", "--workers", "0"])
    printed = capsys.readouterr()
    assert exc.value.code == 2 and "no image could be simulated" in printed.err + printed.out
    assert "not a nanoseg dataset" not in printed.err + printed.out


@pytest.mark.slow
def test_generate_dataset_on_dask_matches_in_process(tmp_path):
    from nanoseg.datasets import open_dataset

    generate_dataset(TINY, tmp_path / "a", n_images=3, seed=1, n_workers=2, progress=False)
    generate_dataset(TINY, tmp_path / "b", n_images=3, seed=1, n_workers=0, progress=False)
    a, b = open_dataset(tmp_path / "a"), open_dataset(tmp_path / "b")
    for image_id in b.ids:
        assert np.array_equal(a.image(image_id), b.image(image_id))


def test_composite_wide_field_runs_and_labels_every_particle():
    cfg = SimulationConfig(mode="composite", image_size_px=64, pixel_size_nm=0.18, diameter_nm=2.0,
                           diameter_spread=0.0, n_particles=3, support_thickness_nm=2.0, dose_e_per_A2=5000,
                           detector="counting", defocus_nm=5.0)
    sim = simulate_image(cfg, seed=0)
    assert sim.micrograph.shape == (64, 64) and set(np.unique(sim.instances)) == {0, 1, 2, 3}
    assert sim.meta["mode"] == "composite"
    # at this dose 2 nm Au particles are clearly darker than the carbon
    assert particle_contrast(sim.micrograph.data, sim.mask) > 0.3


def test_support_phase_field_scales_with_thickness():
    from nanoseg.simulate import support_phase_field

    kw = dict(shape=(128, 128), sampling_A=0.5, energy_eV=300e3)
    thin = support_phase_field("carbon", 10.0, rng=np.random.default_rng(0), **kw)
    thick = support_phase_field("carbon", 40.0, rng=np.random.default_rng(0), **kw)
    assert thick.std() / thin.std() == pytest.approx(2.0, rel=1e-6)  # variance ∝ thickness
    assert 0.02 < thin.std() < 1.0  # weak phase object (radians)
    assert support_phase_field("none", 10.0, rng=np.random.default_rng(0), **kw).std() == 0


def test_image_and_labels_align_at_any_simulation_sampling():
    """Pixel j covers [jP, (j+1)P) whatever the multislice sampling: images at k = 2 and k = 5 coincide."""
    spec = {**TINY, "detector": "ideal", "dose_e_per_A2": 1e6, "support": "none", "diameter_nm": 1.4}
    coarse = simulate_image(SimulationConfig.parse({**spec, "sampling_A": 0.25}), 1)
    fine = simulate_image(SimulationConfig.parse({**spec, "sampling_A": 0.1}), 1)
    assert np.array_equal(coarse.mask, fine.mask)
    a = coarse.micrograph.data - coarse.micrograph.data.mean()
    b = fine.micrograph.data - fine.micrograph.data.mean()
    cross = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
    assert np.unravel_index(np.argmax(cross), cross.shape) == (0, 0)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    # the particle (dark, amplitude contrast at this defocus) is where its mask is
    inside = coarse.micrograph.data[coarse.mask > 0].mean()
    assert inside < coarse.micrograph.data[coarse.mask == 0].mean()


# ---------------------------------------------------------------- FFT plans shared between processes

_SIMULATE_AND_REPORT = """
import json, sys
import numpy as np
from nanoseg.simulate import simulate_image
from nanoseg.simulate.fftplans import save_wisdom, use_fftw
sim = simulate_image(json.loads(sys.argv[1]), 3)
np.save(sys.argv[2], sim.micrograph.data)
print(use_fftw(), save_wisdom())
"""


def test_fft_plans_are_shared_between_processes_through_the_wisdom_file(tmp_path, monkeypatch):
    """The first process plans its FFTs and stores them; the next one reuses them (same bits, no planning)."""
    import os
    import subprocess
    import sys

    from nanoseg.simulate.fftplans import wisdom_path

    env = {**os.environ, "NANOSEG_CACHE_DIR": str(tmp_path / "cache")}
    spec = json.dumps({**TINY, "image_size_px": 40})
    runs = []
    for i in range(2):
        out = subprocess.run([sys.executable, "-c", _SIMULATE_AND_REPORT, spec, str(tmp_path / f"{i}.npy")],
                             env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        runs.append(out.stdout.split()[-2:])
    backend = runs[0][0]
    if backend == "fftw":
        monkeypatch.setenv("NANOSEG_CACHE_DIR", str(tmp_path / "cache"))
        assert wisdom_path().exists()
        # the second process found every plan in the file: nothing new to save
        assert runs[1] == ["fftw", "False"]
    assert np.array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))


def test_fft_wisdom_round_trip_and_bad_wisdom_is_ignored():
    from nanoseg.simulate.fftplans import export_wisdom, import_wisdom, use_fftw

    if use_fftw() != "fftw":
        pytest.skip("pyFFTW not installed")
    wisdom = export_wisdom()
    assert isinstance(json.loads(wisdom), list)
    import_wisdom(wisdom)
    import_wisdom("not json at all")  # costs planning time only, never an error
    import_wisdom(None)


def test_frozen_phonon_stack_is_averaged_incoherently():
    """A stack of exit waves (frozen phonons) gives the mean of the single-wave intensities (it crashed)."""
    a = _phase_bump(64, sigma_A=1.0, phase=0.3)
    b = _phase_bump(64, sigma_A=1.5, phase=0.5)
    optics = dict(sampling_A=0.2, energy_eV=300e3, defocus_nm=5.0, aperture_mrad=20.0)
    stacked = image_intensity(np.stack([a, b]), **optics)
    expected = 0.5 * (image_intensity(a, **optics) + image_intensity(b, **optics))
    assert stacked.shape == (64, 64)
    np.testing.assert_allclose(stacked, expected, rtol=1e-5, atol=1e-6)


def test_simulate_image_with_frozen_phonons_runs():
    static = simulate_image(SimulationConfig(**TINY, detector="ideal"), seed=1)
    phonons = simulate_image(SimulationConfig(**TINY, detector="ideal", frozen_phonons=2), seed=1)
    assert phonons.micrograph.shape == static.micrograph.shape
    assert phonons.meta["frozen_phonons"] == 2
    assert not np.array_equal(phonons.micrograph.data, static.micrograph.data)


def test_detector_integrates_a_finer_grid_and_its_psf_acts_before_the_pixels():
    """Counts are conserved on an oversampled grid, and detail beyond the camera's Nyquist frequency is
    blurred away by the PSF instead of being folded into the image (binning first aliases it)."""
    k, n = 3, 96
    flat = apply_detector(np.ones((n * k, n * k)), dose_e_per_A2=400, pixel_size_A=0.3, detector="counting",
                          rng=np.random.default_rng(0), oversampling=k)
    assert flat.shape == (n, n)
    assert abs(flat.mean() / (400 * 0.3 ** 2) - 1) < 0.01
    # fringes of period 1.2 camera pixels (0.83 cycles/px, beyond Nyquist) on the fine grid
    cols = (np.arange(n * k) + 0.5) / k
    fringes = 1 + 0.5 * np.cos(2 * np.pi * cols / 1.2)[None, :] * np.ones((n * k, 1))
    common = dict(dose_e_per_A2=1e9, pixel_size_A=0.3, detector="scintillator")
    binned = fringes.reshape(n, k, n, k).mean(axis=(1, 3))
    aliased = apply_detector(binned, rng=np.random.default_rng(1), **common)
    recorded = apply_detector(fringes, rng=np.random.default_rng(1), oversampling=k, **common)

    def modulation(image):
        profile = image.mean(axis=0)
        return profile.std() / profile.mean()

    assert modulation(aliased) > 0.02          # the fold-back survives the MTF on the pixel grid
    assert modulation(recorded) < 0.2 * modulation(aliased)
    with pytest.raises(NanosegError, match="oversampling"):
        apply_detector(np.ones((10, 10)), dose_e_per_A2=1, pixel_size_A=1, rng=np.random.default_rng(0),
                       oversampling=3)
