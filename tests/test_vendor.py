"""Real vendor files (../shared/vendor, described in its TRUTH.md) read against their ground truth.

Every file named in TRUTH.md has one expectation below: what nanoseg must return (shape, pixel size in
nm, acquisition metadata, data) or the clear refusal it must give (a NanosegError naming the file).
The numbers are TRUTH.md's ('TEST-SUITE' where it has one, else the RosettaSciIO 0.15.0 readout),
converted to nm. Files inside .zip/.gz archives are unpacked into a temporary folder first.

A second test (the fuzz test) damages copies of one real file per format (empty, truncated,
bit-flipped with a fixed seed) and checks that each gives one NanosegError naming the file, never a
raw exception. Skipped when ../shared/vendor is absent.
"""

from __future__ import annotations

import gzip
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nanoseg.errors import NanosegError
from nanoseg.io import describe, read, read_series

VENDOR = Path(__file__).resolve().parents[1].parent / "shared" / "vendor"
pytestmark = pytest.mark.skipif(not (VENDOR / "TRUTH.md").is_file(), reason="../shared/vendor is absent")
HAVE_IMAGECODECS = importlib.util.find_spec("imagecodecs") is not None
HAVE_SPARSE = importlib.util.find_spec("sparse") is not None

RECIPROCAL = "reciprocal units"
COMPLEX = "complex"
NOT_AN_IMAGE_FILE = "unknown image format"

# DM data types of the synthetic files (TRUTH.md: 1:<i2,2:<f4,3/5:<c8,6:<u1,7:<i4,8/23:RGBA u1,9:<i1,
# 10:<u2,11:<u4,12:<f8,13:<c16,14:bool,27:complex64,28:complex128)
_DM_REAL, _DM_RGB, _DM_COMPLEX, _DM_BOOL = (1, 2, 6, 7, 9, 10, 11, 12), (8, 23), (3, 5, 13, 27, 28), (14,)


def _synthetic_dm_cases():
    cases = []
    for dims in (2, 3):
        for dtype in (*_DM_REAL, *_DM_RGB, *_DM_COMPLEX, *_DM_BOOL):
            for version in (3, 4):
                if version == 3 and dtype in (27, 28):  # DM3 has no such files
                    continue
                rel = f"dm/synthetic_{dims}D/test-{dtype}.dm{version}"
                if dtype in _DM_COMPLEX:
                    cases.append((rel, {}, {"refuse": COMPLEX}))
                elif dtype in _DM_BOOL:
                    cases.append((rel, {}, {"refuse": "boolean"}))
                elif dims == 2:
                    cases.append((rel, {}, {"shape": (2, 2), "px": None,
                                            "data": np.arange(1, 5).reshape(2, 2)}))
                else:
                    cases.append((rel, {}, {"shape": (2, 2, 2), "px": None,
                                            "data": np.arange(1, 9).reshape(2, 2, 2)}))
    return cases


# (file under vendor/ ['!member' inside an archive], read() keywords, expectation)
# expectation: shape (frames first), px (nm or None), rtol, meta (approximate values), data (array or a
# path under vendor/ of an .npy), frame_interval_s; or refuse (regex the NanosegError must match).
CASES = [
    ("dm/Fei HAADF-UK_location.dm3", {}, {"shape": (4, 16), "px": 5.50607,
                                          "meta": {"acquired": "2016-08-27T20:52:30+00:00"}}),
    ("dm/JEOL HAADF Image.dm4", {}, {"shape": (112, 112), "px": 1.24901}),
    ("dm/multi_signal.dm3", {}, {"shape": (512, 512), "px": 0.0177516, "sum": 949490255,
                                 "meta": {"signal_index": 0}}),
    ("dm/multi_signal.dm3", {"signal": 1}, {"refuse": "1-D|not an image|shape \\(512,\\)"}),
    *_synthetic_dm_cases(),
    ("dm/test_STEM_image.dm3", {}, {"shape": (68, 68), "px": 0.248538,
                                    "meta": {"voltage_kV": 200.0, "dwell_time_s": 3.5e-6, "magnification": 225000.0,
                                             "acquired": "2016-08-08T16:26:37+00:00"}}),
    ("dm/test_diffraction_pattern.dm3", {}, {"refuse": RECIPROCAL}),
    ("dm/test_dm_image_um_unit.dm3", {}, {"shape": (68, 68), "px": 168.67, "rtol": 1e-4,
                                          "meta": {"voltage_kV": 200.0, "exposure_s": 0.5, "magnification": 51.0,
                                                   "acquired": "2015-07-20T18:48:25+00:00"}}),
    ("dm/test_fft_packed_complex8.dm4", {}, {"refuse": COMPLEX}),
    ("dm/test_stackbuilder_imagestack.dm3", {}, {"shape": (3, 2, 16), "px": 59.9829,
                                                 "meta": {"voltage_kV": 200.0, "magnification": 200000.0,
                                                          "dwell_time_s": 0.03000005078125,
                                                          "acquired": "2015-05-17T17:00:16+00:00"}}),
    # Velox: a complex half-FFT (reciprocal) and the HAADF image: the one real-space image is taken
    ("emd/FFTComplexEven.emd", {}, {"shape": (128, 128), "px": 27.1153, "meta": {"title": "HAADF"}}),
    ("emd/FFTComplexEven.emd", {"signal": 0}, {"refuse": COMPLEX + "|" + RECIPROCAL}),
    ("emd/example_fei_emd_image.emd", {}, {"shape": (512, 512), "px": 5.302414, "rtol": 2e-6,
                                           "data": "emd/example_fei_emd_image.expected.npy",
                                           "meta": {"voltage_kV": 200.0, "magnification": 40000.0,
                                                    "microscope": "Talos", "timestamp_s": 1488794201.0}}),
    ("emd/example_fei_emd_image.expected.npy", {}, {"shape": (512, 512), "px": None}),
    # Berkeley EMDs written by HyperSpy without a calibration ('[]' units): uncalibrated, not refused
    ("emd/example_image.emd", {}, {"shape": (3, 3), "px": None, "data": np.arange(9).reshape(3, 3).T}),
    ("emd/example_image.emd", {"pixel_size_nm": 0.25}, {"shape": (3, 3), "px": 0.25}),
    ("emd/example_signal.emd", {}, {"shape": (3, 3, 3), "px": None, "data": np.arange(27).reshape(3, 3, 3).T}),
    ("emd/fei_example_complex_fft.emd", {}, {"refuse": COMPLEX + "|" + RECIPROCAL}),
    # 9 real-space images of one scan: nanoseg cannot know which one is wanted, so it lists them
    ("emd/fei_example_dpc_titles.emd", {}, {"refuse": "signal=.*iDPC.*DF4-A.*Filtered iDPC"}),
    ("emd/fei_example_dpc_titles.emd", {"signal": "iDPC"}, {"shape": (2, 2), "px": 0.0996199,
                                                            "meta": {"title": "iDPC", "signal_index": 2}}),
    ("emd/fei_example_dpc_titles.emd", {"signal": 5}, {"shape": (2, 2), "px": 0.0996199,
                                                       "meta": {"title": "DF4-A"}}),
    ("emd/fei_example_dpc_titles.emd", {"signal": "nope"}, {"refuse": "no signal 'nope'.*B-D"}),
    ("emd/fei_example_tem_stack.emd", {}, {"shape": (2, 3, 3), "px": 0.00817288, "frame_interval_s": 0.8}),
    # EDS spectrum images (need the optional 'sparse'): spectra, 4 element maps and the HAADF image
    *[(f"emd/velox_emd_version11.zip!Test SI 16x16 {name}215 kx.emd", kwargs,
       {"refuse": "pip install sparse"} if not HAVE_SPARSE else want)
      for name in ("", "ReducedData ")
      for kwargs, want in (({}, {"refuse": "5 images.*'Cu'.*'HAADF'"}),
                           ({"signal": "HAADF"}, {"shape": (16, 16), "meta": {"voltage_kV": 300.0}}))],
    ("jeol/View000_0000000.img", {}, {"shape": (512, 512), "px": 8.69140587747097, "rtol": 1e-6,
                                      "meta": {"voltage_kV": 200.0, "magnification": 40000.0}}),
    ("mrc/20241021_00405_final.mrc", {}, {"shape": (4, 8), "px": None}),  # scale -1: no calibration
    ("mrc/20241021_00405_info.txt", {}, {"refuse": NOT_AN_IMAGE_FILE}),
    ("mrc/20241021_00405_movie.mrc", {}, {"refuse": "4-D|shapes \\[\\(4, 8, 4, 8\\)\\]"}),
    ("mrc/HAADFscan.mrc", {}, {"shape": (16, 16), "px": 5.679131317138672, "rtol": 1e-6}),
    ("mrc/info.txt", {}, {"refuse": NOT_AN_IMAGE_FILE}),
    # TIA: the .emi holds the units (nm or 1/nm) and the acquisition metadata; a .ser is read with its .emi
    ("tia/new/128x128-TEM_search.emi", {}, {"shape": (128, 128), "px": 5.26121}),
    ("tia/new/128x128-TEM_search_1.ser", {}, {"shape": (128, 128), "px": 5.26121}),
    ("tia/new/128x128_TEM_acquire-sum1.emi", {}, {"shape": (128, 128), "px": 21.4793}),
    ("tia/new/128x128_TEM_acquire-sum1_1.ser", {}, {"shape": (128, 128), "px": 21.4793}),
    ("tia/new/128x128x5-diffraction_preview.emi", {}, {"refuse": RECIPROCAL}),
    ("tia/new/128x128x5-diffraction_preview_1.ser", {}, {"refuse": RECIPROCAL}),
    ("tia/old/03_Scanning Preview.emi", {}, {"shape": (5, 128, 128), "px": 0.38435}),
    ("tia/old/03_Scanning Preview_1.ser", {}, {"shape": (5, 128, 128), "px": 0.38435}),
    ("tia/old/16x16_STEM_BF_DF_acquire.emi", {}, {"refuse": "2 images.*signal="}),
    ("tia/old/16x16_STEM_BF_DF_acquire.emi", {"signal": 1}, {"shape": (16, 16), "px": 21.510044}),
    ("tia/old/16x16_STEM_BF_DF_acquire_1.ser", {}, {"shape": (16, 16), "px": 21.510044}),
    ("tia/old/16x16_STEM_BF_DF_acquire_2.ser", {}, {"shape": (16, 16), "px": 21.510044}),
    ("tia/old/64x64_TEM_images_acquire.emi", {}, {"shape": (64, 64), "px": 6.281833,
                                                  "data": "tia/old/64x64_TEM_images_acquire.npy",
                                                  "meta": {"magnification": 19500.0}}),
    ("tia/old/64x64_TEM_images_acquire.npy", {}, {"shape": (64, 64), "px": None}),
    ("tia/old/64x64_TEM_images_acquire_1.ser", {}, {"shape": (64, 64), "px": 6.281833,
                                                    "data": "tia/old/64x64_TEM_images_acquire.npy"}),
    ("tia/old/64x64_diffraction_acquire.emi", {}, {"refuse": RECIPROCAL}),
    ("tia/old/64x64_diffraction_acquire_1.ser", {}, {"refuse": RECIPROCAL}),
    ("tia/old/64x64x5_TEM_preview.emi", {}, {"shape": (5, 64, 64), "px": 6.281833}),
    ("tia/old/64x64x5_TEM_preview_1.ser", {}, {"shape": (5, 64, 64), "px": 6.281833}),
    ("tiff/JEOL-SightX-SAED-dummy.tif.gz!", {}, {"refuse": RECIPROCAL}),
    ("tiff/JEOL-SightX-TEM-mag-dummy.tif.gz!", {}, {"shape": (556, 556), "px": 1.8208, "rtol": 1e-3}),
    ("tiff/TVIPS_bin4.zip!TVIPS_bin4.tif", {}, {"shape": (1024, 1024), "px": 1.42080, "rtol": 1e-5,
                                                "meta": {"exposure_s": 0.4, "voltage_kV": 99.0,
                                                         "magnification": 32000.0}}),
    # a JPEG-compressed RGB preview page (needs imagecodecs) and the raw uint16 page
    ("tiff/olympus_SIS.tif", {}, {"refuse": "2 images.*signal="}),
    ("tiff/olympus_SIS.tif", {"signal": 1}, {"shape": (101, 112), "px": 0.023928, "rtol": 1e-4}),
    ("tiff/olympus_SIS.tif", {"signal": 0},
     {"shape": (101, 112), "px": None} if HAVE_IMAGECODECS else {"refuse": "pip install imagecodecs"}),
    ("tiff/test_loading_image_saved_with_DM.tif", {}, {"shape": (68, 68), "px": 168.67, "rtol": 1e-4}),
    # DM wrote non-square pixels (0.16867 µm × 1.68674 µm): refused unless the pixel size is given
    ("tiff/test_loading_image_saved_with_DM_stack.tif", {}, {"refuse": "not square.*168.67.*1686.7"}),
    ("tiff/test_loading_image_saved_with_DM_stack.tif", {"pixel_size_nm": 168.67},
     {"shape": (2, 68, 68), "px": 168.67, "frame_interval_s": 2.5}),
    ("tiff/test_loading_image_saved_with_imageJ.tif", {}, {"shape": (68, 68), "px": 168.67, "rtol": 1e-4}),
    ("tiff/test_loading_image_saved_with_imageJ_stack.tif", {}, {"shape": (2, 68, 68), "px": 168.67,
                                                                 "rtol": 1e-4}),
    ("tiff/tiff_FEI_Helios.zip!FEI-Helios-Ebeam-16bits.tif", {}, {"shape": (471, 512), "px": 3372.4,
                                                                  "meta": {"voltage_kV": 5.0}}),
    ("tiff/tiff_FEI_Helios.zip!FEI-Helios-Ebeam-8bits.tif", {}, {"shape": (471, 512), "px": 3372.4,
                                                                 "meta": {"voltage_kV": 5.0}}),
    ("tiff/tiff_FEI_Helios.zip!FEI-Helios-navcam.tif", {}, {"shape": (551, 768), "px": 264000.0, "rtol": 1e-3}),
    ("tiff/tiff_FEI_Helios.zip!FEI-Helios-navcam-with-no-IRBeam.tif", {}, {"shape": (551, 768), "px": None}),
    ("tiff/tiff_FEI_Helios.zip!FEI-Helios-navcam-with-no-IRBeam-bad-floats.tif", {},
     {"shape": (551, 768), "px": None}),
]


def _case_id(case) -> str:
    rel, kwargs, _ = case
    extra = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return rel + (f"[{extra}]" if extra else "")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    """The .gz and .zip archives of vendor/ unpacked (each member under '<archive name>/')."""
    root = tmp_path_factory.mktemp("vendor")
    for archive in VENDOR.rglob("*"):
        if archive.suffix == ".gz":
            target = root / archive.name / archive.name[:-3]
            target.parent.mkdir(parents=True)
            target.write_bytes(gzip.decompress(archive.read_bytes()))
        elif archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(root / archive.name)
    return root


def _locate(rel: str, unpacked: Path) -> Path:
    if "!" not in rel:
        return VENDOR / rel
    archive, member = rel.split("!")
    name = Path(archive).name
    return unpacked / name / (member or name[:-3])


def _truth_rows() -> list[str]:
    rows = []
    for line in (VENDOR / "TRUTH.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and cells[0] not in ("file (under vendor/)", "---") and "/" in cells[0]:
            rows.append(cells[0])
    return rows


def test_every_truth_row_and_archive_member_has_an_expectation():
    rows = _truth_rows()
    assert len(rows) >= 100
    covered = {rel.split("!")[0] for rel, _, _ in CASES}
    assert sorted(set(rows) - covered) == []
    for archive in VENDOR.rglob("*.zip"):
        members = {n for n in zipfile.ZipFile(archive).namelist() if not n.endswith("/")}
        rel = str(archive.relative_to(VENDOR))
        assert members == {r.split("!")[1] for r, _, _ in CASES if r.startswith(rel + "!")}


def _expected_array(spec):
    return np.load(VENDOR / spec) if isinstance(spec, str) else np.asarray(spec)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_vendor_file_against_truth(case, unpacked):
    rel, kwargs, want = case
    path = _locate(rel, unpacked)
    if "refuse" in want:
        with pytest.raises(NanosegError, match=want["refuse"]) as err:
            describe(path, **kwargs)
        assert path.name in str(err.value)
        with pytest.raises(NanosegError, match=want["refuse"]):
            read(path, **kwargs)
        return
    info = describe(path, **kwargs)
    assert tuple(info["shape"]) == want["shape"]
    if "px" not in want:  # TRUTH.md states no calibration for this file
        pass
    elif want["px"] is None:
        assert info["pixel_size_nm"] is None
    else:
        assert info["pixel_size_nm"] == pytest.approx(want["px"], rel=want.get("rtol", 1e-5))
    for key, value in want.get("meta", {}).items():
        got = info["metadata"].get(key)
        assert got == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), key
    stacked = len(want["shape"]) == 3
    if stacked:
        series = read_series(path, **kwargs)
        assert len(series) == want["shape"][0]
        if "frame_interval_s" in want:
            assert series.timing == "metadata"
            assert series.frame_interval_s == pytest.approx(want["frame_interval_s"])
        last = series[len(series) - 1]
        assert last.shape == want["shape"][1:]
        if "data" in want:
            np.testing.assert_allclose(last.data, _expected_array(want["data"])[-1], rtol=1e-6)
    else:
        m = read(path, **kwargs)
        assert m.shape == want["shape"] and m.pixel_size_nm == info["pixel_size_nm"]
        if "data" in want:
            np.testing.assert_allclose(m.data, _expected_array(want["data"]), rtol=1e-6)
        if "sum" in want:
            assert float(m.data.astype(np.float64).sum()) == want["sum"]


# ------------------------------------------------------------------------------------------- fuzzing
FUZZ_FILES = ["dm/test_STEM_image.dm3", "dm/JEOL HAADF Image.dm4", "emd/example_fei_emd_image.emd",
              "emd/example_image.emd", "tia/old/64x64_TEM_images_acquire_1.ser", "mrc/HAADFscan.mrc",
              "tiff/test_loading_image_saved_with_DM.tif", "tiff/test_loading_image_saved_with_imageJ_stack.tif",
              "jeol/View000_0000000.img", "tia/old/64x64_TEM_images_acquire.npy"]


def _damaged_copies(source: Path, folder: Path, seed: int) -> list[tuple[str, Path]]:
    raw = source.read_bytes()
    rng = np.random.default_rng(seed)
    copies = {"empty": b"", "header-only": raw[:200], "half": raw[: len(raw) // 2],
              "tenth-missing": raw[: len(raw) * 9 // 10]}
    for k in range(3):
        flipped = bytearray(raw)
        for where in rng.integers(0, len(raw), 16):
            flipped[where] ^= 1 << int(rng.integers(0, 8))
        copies[f"bitflip{k}"] = bytes(flipped)
    out = []
    for kind, content in copies.items():
        target = folder / kind / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        out.append((kind, target))
    return out


def _open_everything(path: Path) -> None:
    info = describe(path)
    if info["n_frames"] > 1:
        series = read_series(path)
        series[len(series) - 1]
    else:
        read(path)


@pytest.mark.parametrize("rel", FUZZ_FILES)
def test_damaged_vendor_files_give_one_clear_error(rel, tmp_path):
    for kind, path in _damaged_copies(VENDOR / rel, tmp_path, seed=len(rel)):
        try:
            _open_everything(path)
        except NanosegError as err:
            assert path.name in str(err), (kind, str(err))
            assert "\n" not in str(err), (kind, str(err))
            continue
        # a flipped bit in pixel data (or in a tag nanoseg does not use) cannot be detected: no checksums
        assert kind.startswith("bitflip"), kind

