"""Preprocessing: x-ray removal, flat field, normalization, resampling, blur, auto-labeler, Pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanoseg.errors import NanosegError
from nanoseg.io import Micrograph
from nanoseg.preprocess import (
    DEFAULT_PIPELINE,
    HORWATH_PIPELINE,
    STEPS,
    SYTWU_PIPELINE,
    Pipeline,
    auto_label,
    bernstein_basis,
    flat_field,
    gaussian_blur,
    minmax,
    percentile_clip,
    remove_xrays,
    resample,
    resample_mask,
    resample_micrograph,
    resample_to_shape,
    standardize,
)


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def disk_mask(shape, disks):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for cy, cx, r in disks:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    return mask


def particle_image(size=256, seed=0):
    """Dark disks (particle 0.6) on a support of 1.0, ~12 % coverage, and the true mask."""
    rng = np.random.default_rng(seed)
    disks = [(rng.integers(0, size), rng.integers(0, size), rng.integers(size // 60, size // 20)) for _ in range(40)]
    mask = disk_mask((size, size), disks)
    return np.where(mask, 0.6, 1.0), mask


# --- x-ray removal ---------------------------------------------------------------------------------

def test_remove_xrays_finds_exactly_the_injected_outliers(rng):
    image = 100 + rng.normal(0, 5, (128, 128))
    flat = rng.choice(128 * 128, size=30, replace=False)
    spots = np.zeros(image.size, bool)
    spots[flat] = True
    spots = spots.reshape(image.shape)
    # keep injected pixels isolated so "exactly" is well defined (a neighbour pair is still handled below)
    raw = image.copy()
    raw[spots] += rng.uniform(200, 2000, spots.sum())
    cleaned, n_found = remove_xrays(raw)
    assert n_found == 30
    changed = cleaned != raw.astype(np.float32)
    np.testing.assert_array_equal(changed, spots)
    # replaced by the mean of the (clean) 8 neighbours
    y, x = np.argwhere(spots & (np.arange(128)[:, None] > 0) & (np.arange(128)[:, None] < 127)
                       & (np.arange(128)[None, :] > 0) & (np.arange(128)[None, :] < 127))[0]
    window = raw[y - 1 : y + 2, x - 1 : x + 2].copy()
    good = ~spots[y - 1 : y + 2, x - 1 : x + 2]
    good[1, 1] = False
    assert cleaned[y, x] == pytest.approx(window[good].mean(), rel=1e-5)
    untouched, n_none = remove_xrays(image)
    assert n_none == 0 and np.array_equal(untouched, image.astype(np.float32))


def test_remove_xrays_threshold_passes_and_median_variant():
    image = np.full((9, 9), 10.0)
    image[4, 4] = image[4, 5] = 500.0  # a two-pixel hit: each has one outlier neighbour
    image[0, 0] = 300.0  # corner
    cleaned, n = remove_xrays(image, threshold=50.0, max_passes=1)
    assert n == 3 and np.allclose(cleaned, 10.0)
    cleaned, n = remove_xrays(image, threshold=50.0, method="median")
    assert n == 3 and np.allclose(cleaned, 10.0)
    block = np.full((9, 9), 10.0)
    block[3:6, 3:6] = 900.0  # 3×3 cluster: the centre has no clean neighbour in pass 1
    cleaned, n = remove_xrays(block, threshold=50.0, max_passes=2)
    assert n == 9 and cleaned.max() <= 60.0
    _, n_low = remove_xrays(block, threshold=1000.0)
    assert n_low == 0
    with pytest.raises(NanosegError, match="method"):
        remove_xrays(image, method="mean")
    with pytest.raises(NanosegError, match="max_passes"):
        remove_xrays(image, max_passes=0)


# --- flat field ------------------------------------------------------------------------------------

def test_bernstein_basis_is_a_partition_of_unity():
    basis = bernstein_basis(50, 3)
    assert basis.shape == (50, 4)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0)
    np.testing.assert_allclose(bernstein_basis(np.array([0.0, 1.0]), 2), [[1, 0, 0], [0, 0, 1]])


def test_flat_field_recovers_known_illumination_on_particle_image(rng):
    image, mask = particle_image(512)
    yy, xx = np.mgrid[:512, :512] / 512
    illumination = 1000 * (1 + 0.3 * xx - 0.25 * yy**2 + 0.1 * xx * yy)
    raw = image * illumination + rng.normal(0, 30, image.shape)
    corrected, background = flat_field(raw, order=(2, 2), scale=0.25, n_reweight=2)
    error = np.abs(background / illumination - 1)
    assert error.max() < 0.01, error.max()
    support = corrected[~mask]
    assert abs(np.median(support) - 1) < 0.005 and corrected.dtype == np.float32
    # without reweighting the particles pull the surface down by several percent: the robust fit matters
    _, plain = flat_field(raw, n_reweight=0)
    assert np.abs(plain / illumination - 1).max() > 0.05


def test_flat_field_subtract_mode_and_errors():
    yy, xx = np.mgrid[:64, :64] / 64
    tilt = 5 + 2 * xx
    corrected, _ = flat_field(tilt, mode="subtract")
    assert np.ptp(corrected) < 1e-3 and corrected.mean() == pytest.approx(tilt.mean(), abs=1e-3)
    with pytest.raises(NanosegError, match="zero or below"):
        flat_field(xx - 0.5)
    with pytest.raises(NanosegError, match="order"):
        flat_field(tilt, order=(2, 2, 2))
    with pytest.raises(NanosegError, match="scale"):
        flat_field(tilt, scale=0)


# --- normalization and blur ---------------------------------------------------------------------------

def test_normalizations():
    image = np.arange(100.0).reshape(10, 10)
    out = standardize(image)
    assert out.mean() == pytest.approx(0, abs=1e-6) and out.std() == pytest.approx(1, abs=1e-6)
    out = minmax(image)
    assert out.min() == 0 and out.max() == 1 and out[0, 1] == pytest.approx(1 / 99)
    clipped = percentile_clip(image, low=10, high=90)
    assert clipped.min() == pytest.approx(9.9) and clipped.max() == pytest.approx(89.1)
    assert np.array_equal(clipped[2:8], image[2:8])
    for function in (standardize, minmax):
        with pytest.raises(NanosegError, match="constant"):
            function(np.full((4, 4), 3.0))
    with pytest.raises(NanosegError, match="low"):
        percentile_clip(image, low=90, high=10)


@pytest.mark.parametrize("function", [standardize, minmax, gaussian_blur, flat_field, remove_xrays,
                                      auto_label])
def test_nan_and_shape_errors(function):
    bad = np.ones((8, 8))
    bad[2, 3] = np.nan
    with pytest.raises(NanosegError, match="NaN"):
        function(bad)
    with pytest.raises(NanosegError, match="2-D"):
        function(np.ones((2, 4, 4)))


def test_gaussian_blur():
    image = np.random.default_rng(0).random((32, 32))
    assert np.array_equal(gaussian_blur(image, sigma_px=0), image.astype(np.float32))
    blurred = gaussian_blur(image, sigma_px=2)
    assert blurred.std() < 0.5 * image.std() and blurred.mean() == pytest.approx(image.mean(), rel=1e-4)
    with pytest.raises(NanosegError, match="sigma_px"):
        gaussian_blur(image, sigma_px=-1)


# --- resampling --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fourier", "spatial"])
@pytest.mark.parametrize("to_nm", [0.013, 0.03, 0.07])
def test_resample_preserves_mean_and_sets_shape(method, to_nm):
    image = 5 + np.random.default_rng(1).random((100, 120))
    out = resample(image, from_pixel_size_nm=0.02, to_pixel_size_nm=to_nm, method=method)
    assert out.shape == (round(100 * 0.02 / to_nm), round(120 * 0.02 / to_nm))
    tolerance = 1e-5 if method == "fourier" else 2e-3
    assert out.mean() == pytest.approx(image.mean(), abs=tolerance)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), factor=st.floats(0.3, 3.0), seed=st.integers(0, 99))
def test_fourier_resample_preserves_mean_for_any_shape(rows, cols, factor, seed):
    image = np.random.default_rng(seed).normal(3, 1, (rows, cols))
    out = resample(image, from_pixel_size_nm=0.02, to_pixel_size_nm=0.02 * factor)
    assert out.shape == tuple(max(1, round(n * 0.02 / (0.02 * factor))) for n in (rows, cols))
    assert np.isfinite(out).all() and out.mean() == pytest.approx(image.mean(), abs=1e-4)


def test_fourier_resample_is_exact_for_band_limited_content():
    def blob(n, pixel_nm):
        c = (np.arange(n) + 0.5) * pixel_nm  # pixel centres in nm, field of view 5 nm
        y, x = np.meshgrid(c, c, indexing="ij")
        return np.exp(-((y - 2.1) ** 2 + (x - 2.6) ** 2) / (2 * 0.4**2))

    for to_nm in (0.03, 0.08):
        out = resample(blob(100, 0.05), from_pixel_size_nm=0.05, to_pixel_size_nm=to_nm)
        n = out.shape[0]
        np.testing.assert_allclose(out, blob(n, 5.0 / n), atol=1e-5)


@pytest.mark.parametrize("method", ["fourier", "spatial"])
def test_resample_keeps_particle_size_in_nm_both_ways(method):
    mask = disk_mask((200, 200), [(100.3, 97.6, 40)])  # 4.0 nm diameter at 0.05 nm/px
    image = np.where(mask, 0.6, 1.0)

    def diameter_nm(binary, pixel_nm):
        return 2 * np.sqrt(binary.sum() / np.pi) * pixel_nm

    true_nm = diameter_nm(mask, 0.05)
    for to_nm in (0.08, 0.031):
        m = Micrograph(image, pixel_size_nm=0.05)
        small = resample_micrograph(m, to_nm, method=method)
        assert small.pixel_size_nm == pytest.approx(200 * 0.05 / small.shape[0])
        assert diameter_nm(small.data < 0.8, small.pixel_size_nm) == pytest.approx(true_nm, abs=small.pixel_size_nm)
        new_mask = resample_mask(mask, from_pixel_size_nm=0.05, to_pixel_size_nm=to_nm)
        assert new_mask.dtype == np.uint8 and set(np.unique(new_mask)) == {0, 1}
        assert diameter_nm(new_mask, small.pixel_size_nm) == pytest.approx(true_nm, abs=small.pixel_size_nm)
        back = resample(small.data, from_pixel_size_nm=small.pixel_size_nm, to_pixel_size_nm=0.05, method=method)
        assert back.shape == (200, 200)
        assert diameter_nm(back < 0.8, 0.05) == pytest.approx(true_nm, abs=0.05)


def test_resample_to_shape_undoes_rounding():
    image = 5 + np.random.default_rng(2).random((100, 100))
    small = resample(image, from_pixel_size_nm=0.02, to_pixel_size_nm=0.03)
    for method in ("fourier", "spatial"):
        back = resample_to_shape(small, image.shape, method=method)
        assert back.shape == (100, 100) and back.mean() == pytest.approx(image.mean(), abs=2e-3)
    with pytest.raises(NanosegError, match="shape"):
        resample_to_shape(image, (0, 5))


def test_resample_micrograph_calibration_and_errors():
    m = Micrograph(np.ones((100, 50)), pixel_size_nm=0.02, dose_e_per_A2=400, source="a.tif")
    out = resample_micrograph(m, 0.03)
    assert out.shape == (67, 33) and out.dose_e_per_A2 == 400
    assert out.metadata["pixel_size_nm_yx"] == pytest.approx([2.0 / 67, 1.0 / 33])
    assert out.pixel_size_nm == pytest.approx((2.0 / 67 + 1.0 / 33) / 2)
    assert out.metadata["original_pixel_size_nm"] == 0.02 and m.shape == (100, 50)
    with pytest.raises(NanosegError, match="no pixel size") as info:
        resample_micrograph(Micrograph(np.ones((4, 4)), source="b.tif"), 0.02)
    assert info.value.path == "b.tif"
    with pytest.raises(NanosegError, match="to_pixel_size_nm"):
        resample(np.ones((4, 4)), from_pixel_size_nm=0.02, to_pixel_size_nm=0)
    with pytest.raises(NanosegError, match="check the pixel sizes"):
        resample(np.ones((64, 64)), from_pixel_size_nm=20, to_pixel_size_nm=0.02)


# --- auto-labeler ---------------------------------------------------------------------------------------

def test_auto_label_finds_dark_disks_on_noisy_background():
    disks = [(50, 60, 12), (60, 180, 18), (150, 100, 15), (200, 200, 10), (190, 40, 20), (120, 220, 9)]
    truth = disk_mask((256, 256), disks)
    rng = np.random.default_rng(3)
    for noise in (0.05, 0.2):
        image = np.where(truth, 0.6, 1.0) + rng.normal(0, noise, truth.shape)
        mask = auto_label(image, sigma_px=2, opening_radius_px=5)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert dice(mask, truth) > 0.9
        # polarity: bright particles need particles_dark=False; the default ignores them
        assert dice(auto_label(-image, particles_dark=False), truth) > 0.9
        assert dice(auto_label(-image), truth) < 0.5
        assert dice(auto_label(-image, particles_dark=None), truth) > 0.9  # the paper's |difference|


def test_dice_helper_is_right():
    a = np.array([[1, 1, 0, 0]])
    b = np.array([[1, 0, 1, 0]])
    assert dice(a, b) == 0.5 and dice(a, a) == 1.0


# --- pipeline -----------------------------------------------------------------------------------------

def test_pipeline_round_trip_gives_identical_output(tmp_path):
    raw = 1000 * (particle_image(128)[0] + np.random.default_rng(0).normal(0, 0.03, (128, 128)))
    for pipe in (SYTWU_PIPELINE, HORWATH_PIPELINE, DEFAULT_PIPELINE):
        spec = pipe.to_spec()
        assert json.loads(json.dumps(spec)) == spec
        rebuilt = Pipeline.from_spec(spec)
        assert rebuilt == pipe and rebuilt.to_spec() == spec
        np.testing.assert_array_equal(rebuilt(raw), pipe(raw))
        saved = Pipeline.from_spec(pipe.save(tmp_path / "p.yaml"))
        np.testing.assert_array_equal(saved(raw), pipe(raw))
    assert [s.name for s in SYTWU_PIPELINE] == ["remove_xrays", "flat_field", "standardize"]
    assert SYTWU_PIPELINE.steps[1].params == {"order": [2, 2], "scale": 0.25, "n_reweight": 2}
    out = SYTWU_PIPELINE(raw)
    assert out.dtype == np.float32 and out.std() == pytest.approx(1, abs=1e-5)


def test_shipped_example_pipelines_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "examples" / "pipelines"
    assert Pipeline.from_spec(folder / "sytwu.yaml") == SYTWU_PIPELINE
    assert Pipeline.from_spec(folder / "horwath.yaml") == HORWATH_PIPELINE
    assert [s.name for s in Pipeline.from_spec(folder / "resample_0.02nm.yaml")][2] == "resample"
    assert Pipeline.from_spec("sytwu") == SYTWU_PIPELINE


@pytest.mark.parametrize("spec, message", [
    ([{"name": "sharpen"}], "unknown preprocessing step 'sharpen'.*valid steps: remove_xrays"),
    ([{"name": "gaussian_blur", "sigma": 2}], "no parameter.*'sigma'.*valid parameters of gaussian_blur: sigma_px"),
    ([{"name": "gaussian_blur", "sigma_px": -2}], "sigma_px must be >= 0"),
    ([{"name": "resample"}], "needs parameter.*to_pixel_size_nm"),
    ([{"name": "resample", "to_pixel_size_nm": "fine"}], "to_pixel_size_nm must be a finite number"),
    ([{"name": "flat_field", "order": "high"}], "order"),
    ([{"sigma_px": 2}], "no 'name'"),
    (["standardize"], "mapping"),
    ({"stages": []}, "'steps' list"),
    (42, "list of steps"),
])
def test_bad_specs_raise_clear_errors(spec, message):
    with pytest.raises(NanosegError, match=message):
        Pipeline.from_spec(spec)


def test_bad_spec_files(tmp_path):
    with pytest.raises(NanosegError, match="not found"):
        Pipeline.from_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [name: {")
    with pytest.raises(NanosegError, match="YAML") as info:
        Pipeline.from_spec(broken)
    assert info.value.path == str(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("steps:\n  - name: blur\n")
    with pytest.raises(NanosegError, match="unknown preprocessing step") as info:
        Pipeline.from_spec(wrong)
    assert info.value.path == str(wrong)


def test_pipeline_apply_resamples_and_records():
    pipe = Pipeline.from_spec([{"name": "remove_xrays", "threshold": 50.0},
                               {"name": "resample", "to_pixel_size_nm": 0.04, "method": "spatial"},
                               {"name": "standardize"}])
    data = 100 + np.random.default_rng(0).normal(0, 5, (64, 64))
    data[10, 10] = 5000
    m = Micrograph(data, pixel_size_nm=0.02, dose_e_per_A2=423, metadata={"voltage_kV": 300}, source="x.dm4")
    out = pipe.apply(m)
    assert out.shape == (32, 32) and out.pixel_size_nm == pytest.approx(0.04)
    assert out.metadata["n_xrays_found"] == 1 and out.metadata["preprocessing"] == pipe.to_spec()
    assert out.metadata["voltage_kV"] == 300 and out.dose_e_per_A2 == 423 and out.source == "x.dm4"
    assert m.shape == (64, 64) and "preprocessing" not in m.metadata  # the input is untouched
    np.testing.assert_allclose(pipe(data, pixel_size_nm=0.02), out.data, atol=1e-6)
    with pytest.raises(NanosegError, match="pixel size") as info:
        pipe.apply(Micrograph(data, source="nocal.tif"))
    assert info.value.path == "nocal.tif"
    with pytest.raises(NanosegError, match="pixel size"):
        pipe(data)
    nan = data.copy()
    nan[0, 0] = np.nan
    with pytest.raises(NanosegError, match="NaN") as info:
        pipe.apply(Micrograph(nan, pixel_size_nm=0.02, source="nan.tif"))
    assert info.value.path == "nan.tif"
    with pytest.raises(NanosegError, match="NaN"):
        pipe(nan, pixel_size_nm=0.02)


def test_registry_lists_every_step():
    assert set(STEPS) == {"remove_xrays", "flat_field", "standardize", "minmax", "percentile_clip",
                          "resample", "gaussian_blur"}
    assert "from_pixel_size_nm" not in STEPS["resample"].parameters
    assert Pipeline.from_spec([]).to_spec() == [] and len(Pipeline.from_spec({"steps": None})) == 0
