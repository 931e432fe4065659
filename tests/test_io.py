"""nanoseg.io: real files written by the formats' own writers (or a byte-exact fixture writer for
DM and MRC), read back with calibration, dose and metadata intact; every bad input is one clear error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from nanoseg.errors import NanosegError
from nanoseg.io import (
    Micrograph,
    describe,
    example_mask,
    example_micrograph,
    insitu_times,
    length_to_nm,
    masks_from_circles,
    read,
    read_circles,
    read_mask,
    read_series,
    write_npy,
    write_png_preview,
    write_tiff,
)


def _fixture_module(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "fixtures" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_dm = _fixture_module("make_dm")
make_velox = _fixture_module("make_velox")
make_ser = _fixture_module("make_ser")

DM_TAGS = {
    "Microscope Info": {"Voltage": 300000.0, "Indicated Magnification": 330000.0},
    "DataBar": {"Acquisition Date": "5/6/2024", "Acquisition Time": "10:11:12 AM", "Exposure Time (s)": 0.5},
    "Dose (e/A2)": 420.0,
}


def image(shape=(24, 20), seed=0):
    return np.random.default_rng(seed).normal(100, 10, shape).astype(np.float32)


# ----------------------------------------------------------------------------------------------- units
def test_length_units_convert_to_nm():
    assert length_to_nm(1.8, "Å") == pytest.approx(0.18)
    assert length_to_nm(1.8, "A") == pytest.approx(0.18)
    assert length_to_nm(180, "pm") == pytest.approx(0.18)
    assert length_to_nm(0.00018, "µm") == pytest.approx(0.18)
    assert length_to_nm(0.00018, "um") == pytest.approx(0.18)
    assert length_to_nm(1.8e-10, "m") == pytest.approx(0.18)
    assert length_to_nm(1.0, "px") is None and length_to_nm(1.0, "<undefined>") is None
    for unit in ("1/nm", "nm^-1", "1/Å"):
        with pytest.raises(NanosegError, match="reciprocal"):
            length_to_nm(0.1, unit)
    with pytest.raises(NanosegError, match="unknown length unit"):
        length_to_nm(1.0, "furlong")


# ------------------------------------------------------------------------------------------------ TIFF
@pytest.mark.parametrize("unit, scale, expected_nm", [("nm", 0.18, 0.18), ("micron", 0.00018, 0.18),
                                                      ("\\u00B5m", 0.0005, 0.5), ("A", 1.5, 0.15)])
def test_tiff_imagej_calibration(tmp_path, unit, scale, expected_nm):
    data = image()
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / scale, 1 / scale), metadata={"unit": unit})
    m = read(path)
    assert m.pixel_size_nm == pytest.approx(expected_nm, rel=1e-6)
    np.testing.assert_array_equal(m.data, data)
    assert m.dose_e_per_A2 is None


def test_tiff_resolution_tags_cm_and_dpi(tmp_path):
    data = image().astype(np.uint16)
    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, data, resolution=(1e7 / 0.25, 1e7 / 0.25), resolutionunit="CENTIMETER")
    assert read(cm).pixel_size_nm == pytest.approx(0.25)
    dpi = tmp_path / "dpi.tif"  # a print resolution from an image editor is not a TEM calibration
    tifffile.imwrite(dpi, data, resolution=(72, 72), resolutionunit="INCH")
    assert read(dpi).pixel_size_nm is None
    assert read(dpi).metadata["file_dtype"] == "uint16"


def test_write_tiff_roundtrip_and_imagej_readable(tmp_path):
    m = Micrograph(image(), pixel_size_nm=0.033, dose_e_per_A2=884.0,
                   metadata={"voltage_kV": 300.0, "magnification": 205000.0})
    path = tmp_path / "out" / "m.tif"
    write_tiff(path, m)
    back = read(path)
    assert back.pixel_size_nm == pytest.approx(0.033)
    assert back.dose_e_per_A2 == 884.0
    assert back.metadata["voltage_kV"] == 300.0 and back.metadata["magnification"] == 205000.0
    np.testing.assert_array_equal(back.data, m.data)
    with tifffile.TiffFile(path) as tif:  # what ImageJ reads: unit in the description, pixels per unit
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "nm"
        num, den = tif.pages[0].tags["XResolution"].value
        assert 1 / (num / den) == pytest.approx(0.033, rel=1e-6)
    assert [p.name for p in path.parent.iterdir()] == ["m.tif"]  # atomic: no temp file left
    write_tiff(path, m.data, pixel_size_nm=0.5)  # override from an array
    assert read(path).pixel_size_nm == pytest.approx(0.5)


def test_tiff_stack(tmp_path):
    stack = np.stack([image(seed=i) for i in range(4)])
    path = tmp_path / "stack.tif"
    write_tiff(path, stack, pixel_size_nm=0.18)
    with pytest.raises(NanosegError, match="read_series"):
        read(path)
    third = read(path, frame=2)
    np.testing.assert_array_equal(third.data, stack[2])
    assert third.pixel_size_nm == pytest.approx(0.18) and third.metadata["frame_index"] == 2
    np.testing.assert_array_equal(read(path, frame=-1).data, stack[3])
    with pytest.raises(NanosegError, match="does not exist"):
        read(path, frame=4)
    series = read_series(path, frame_interval_s=0.1)
    assert len(series) == 4 and series.frame_interval_s == pytest.approx(0.1)
    np.testing.assert_array_equal(series[1].data, stack[1])
    assert series[3].metadata["time_s"] == pytest.approx(0.3)
    timed = tmp_path / "timed.tif"  # ImageJ frame interval
    tifffile.imwrite(timed, stack, imagej=True, metadata={"axes": "TYX", "finterval": 0.25})
    assert read_series(timed).timing == "metadata" and read_series(timed).frame_interval_s == 0.25
    # plain (non-ImageJ) multi-page TIFF
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, stack, photometric="minisblack")
    np.testing.assert_array_equal(read_series(plain)[2].data, stack[2])
    rgb = tmp_path / "rgb.tif"  # interleaved RGB → grey
    grey = np.arange(24 * 20, dtype=np.uint8).reshape(24, 20)
    tifffile.imwrite(rgb, np.stack([grey] * 3, axis=-1), photometric="rgb")
    np.testing.assert_allclose(read(rgb).data, grey, atol=0.01)
    # planar samples are how a 3-frame stack without metadata is stored: frames, never averaged away
    tifffile.imwrite(rgb, np.stack([grey, grey + 1, grey + 2]), photometric="rgb", planarconfig="separate")
    assert len(read_series(rgb)) == 3
    np.testing.assert_array_equal(read(rgb, frame=2).data, grey + 2)


@pytest.mark.parametrize("how", ["imwrite", "imwrite-no-metadata", "append-pages"])
def test_plain_multipage_tiff_keeps_every_frame(tmp_path, how):
    """Issue #16 item 7: a 3-frame TIFF from plain tifffile.imwrite is 3 frames in info, read and read_series."""
    stack = np.stack([image(seed=i) for i in range(3)]).astype(np.uint16)
    path = tmp_path / "movie.tif"
    if how == "imwrite":
        tifffile.imwrite(path, stack)
    elif how == "imwrite-no-metadata":
        tifffile.imwrite(path, stack, metadata=None)
    else:
        for frame in stack:
            tifffile.imwrite(path, frame, append=True)
    assert describe(path)["n_frames"] == 3
    with pytest.raises(NanosegError, match="3 frames"):
        read(path)
    series = read_series(path)
    assert len(series) == 3
    for i in range(3):
        np.testing.assert_array_equal(series[i].data, stack[i])


# ------------------------------------------------------------------------------------------ NPY / PNG
def test_npy_image_and_memmapped_stack(tmp_path):
    data = image()
    write_npy(tmp_path / "a.npy", data)
    m = read(tmp_path / "a.npy")
    np.testing.assert_array_equal(m.data, data)
    assert m.pixel_size_nm is None and m.dose_e_per_A2 is None
    stack = np.stack([image(seed=i) for i in range(3)])
    np.save(tmp_path / "s.npy", stack)
    s = read_series(tmp_path / "s.npy")
    assert len(s) == 3 and s.timing == "index"
    np.testing.assert_array_equal(s[2].data, stack[2])


def test_png_grey_and_rgb_and_jpeg(tmp_path):
    grey = (np.arange(24 * 20) % 256).astype(np.uint8).reshape(24, 20)
    iio.imwrite(tmp_path / "g.png", grey)
    m = read(tmp_path / "g.png")
    np.testing.assert_array_equal(m.data, grey)
    assert m.pixel_size_nm is None
    rgb = np.stack([grey, grey, grey], axis=-1)
    iio.imwrite(tmp_path / "c.png", rgb)
    np.testing.assert_allclose(read(tmp_path / "c.png").data, grey, atol=0.01)
    iio.imwrite(tmp_path / "j.jpg", rgb)
    assert read(tmp_path / "j.jpg").shape == (24, 20)
    g16 = (np.arange(24 * 20) * 100).astype(np.uint16).reshape(24, 20)
    iio.imwrite(tmp_path / "g16.png", g16)
    np.testing.assert_array_equal(read(tmp_path / "g16.png").data, g16)


# ------------------------------------------------------------------------------------------------- MRC
def write_mrc(path, data: np.ndarray, *, pixel_size_A: float | None) -> Path:
    """A minimal MRC2014 file: 1024-byte header (words as in the standard) + float32 data."""
    data = np.asarray(data, dtype=np.float32)
    nz, ny, nx = (1, *data.shape) if data.ndim == 2 else data.shape
    header = np.zeros(256, dtype="<i4")
    header[0:4] = (nx, ny, nz, 2)  # NX NY NZ, MODE 2 = float32
    header[7:10] = (nx, ny, nz)  # MX MY MZ (sampling)
    floats = header.view("<f4")
    if pixel_size_A is not None:
        floats[10:13] = (nx * pixel_size_A, ny * pixel_size_A, nz * pixel_size_A)  # cell size in Å
    floats[13:16] = 90.0
    header[16:19] = (1, 2, 3)  # MAPC MAPR MAPS
    floats[19:22] = (data.min(), data.max(), data.mean())
    raw = bytearray(header.tobytes())
    raw[208:212] = b"MAP "
    raw[212:216] = bytes([0x44, 0x44, 0, 0])  # little-endian machine stamp
    Path(path).write_bytes(bytes(raw) + data.tobytes())
    return Path(path)


def test_mrc_calibrated_uncalibrated_and_truncated(tmp_path):
    data = image()
    m = read(write_mrc(tmp_path / "a.mrc", data, pixel_size_A=1.5))
    assert m.pixel_size_nm == pytest.approx(0.15)
    np.testing.assert_array_equal(m.data, data)
    assert read(write_mrc(tmp_path / "u.mrc", data, pixel_size_A=None)).pixel_size_nm is None
    stack = np.stack([image(seed=i) for i in range(3)])
    write_mrc(tmp_path / "s.mrc", stack, pixel_size_A=2.0)
    s = read_series(tmp_path / "s.mrc")
    np.testing.assert_array_equal(s[1].data, stack[1])
    assert s[1].pixel_size_nm == pytest.approx(0.2)
    raw = (tmp_path / "a.mrc").read_bytes()
    (tmp_path / "t.mrc").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(NanosegError, match="truncated") as err:
        read(tmp_path / "t.mrc")
    assert "t.mrc" in str(err.value)


# ------------------------------------------------------------------------------------------------- EMD
def test_berkeley_emd_roundtrip(tmp_path):
    from rsciio.emd import file_writer

    data = image()
    axes = [{"name": "y", "size": 24, "scale": 0.26, "offset": 0, "units": "Å", "navigate": False},
            {"name": "x", "size": 20, "scale": 0.26, "offset": 0, "units": "Å", "navigate": False}]
    meta = {"General": {"title": "au"}, "Signal": {}}
    file_writer(str(tmp_path / "a.emd"), {"data": data, "axes": axes, "metadata": meta, "original_metadata": {}})
    m = read(tmp_path / "a.emd")
    assert m.pixel_size_nm == pytest.approx(0.026)
    np.testing.assert_array_equal(m.data, data)
    stack = np.stack([data, data + 1, data + 2])
    t_axis = {"name": "t", "size": 3, "scale": 0.1, "offset": 0, "units": "s", "navigate": True}
    file_writer(str(tmp_path / "s.emd"),
                {"data": stack, "axes": [t_axis, *axes], "metadata": meta, "original_metadata": {}})
    s = read_series(tmp_path / "s.emd")
    assert s.timing == "metadata"
    np.testing.assert_allclose(s.times_s, [0.0, 0.1, 0.2])
    np.testing.assert_array_equal(s[2].data, stack[2])


def test_velox_emd_image_and_stack(tmp_path):
    data = image()
    m = read(make_velox.write_velox(tmp_path / "v.emd", data, pixel_size_m=2.6e-11, voltage_V=200e3,
                                    magnification=260000, exposure_s=0.25))
    np.testing.assert_array_equal(m.data, data)
    assert m.pixel_size_nm == pytest.approx(0.026)
    assert m.metadata["voltage_kV"] == pytest.approx(200.0)
    assert m.metadata["magnification"] == pytest.approx(260000.0)
    assert m.metadata["exposure_s"] == pytest.approx(0.25)
    assert m.metadata["timestamp_s"] == pytest.approx(1700000000.0)
    stack = np.stack([data, data + 1, data + 2])
    path = make_velox.write_velox(tmp_path / "vs.emd", stack, exposure_s=0.1)
    with pytest.raises(NanosegError, match="3 frames"):
        read(path)
    s = read_series(path)
    np.testing.assert_allclose(s.times_s, [0.0, 0.1, 0.2])
    np.testing.assert_array_equal(s[1].data, stack[1])


def test_ser_image_and_series(tmp_path):
    data = image()
    m = read(make_ser.write_ser(tmp_path / "a.ser", data, pixel_size_m=1.8e-10))
    np.testing.assert_array_equal(m.data, data)
    assert m.pixel_size_nm == pytest.approx(0.18)
    stack = np.stack([data, data + 1, data + 2])
    s = read_series(make_ser.write_ser(tmp_path / "s.ser", stack, frame_interval_s=0.5))
    np.testing.assert_allclose(s.times_s, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(s[2].data, stack[2])


# -------------------------------------------------------------------------------------------------- DM
@pytest.mark.parametrize("version", [3, 4])
def test_dm_image_calibration_voltage_dose(tmp_path, version):
    data = image()
    path = make_dm.write_dm(tmp_path / f"a.dm{version}", data, version=version, scale=1.8, units="Å",
                            image_tags=DM_TAGS)
    m = read(path)
    np.testing.assert_array_equal(m.data, data)
    assert m.pixel_size_nm == pytest.approx(0.18)
    assert m.dose_e_per_A2 == pytest.approx(420.0)
    assert m.metadata["voltage_kV"] == pytest.approx(300.0)
    assert m.metadata["magnification"] == pytest.approx(330000.0)
    assert m.metadata["exposure_s"] == pytest.approx(0.5)
    assert m.metadata["acquired"].startswith("2024-05-06T10:11:12")


@pytest.mark.parametrize("version", [3, 4])
def test_dm_stack_needs_read_series(tmp_path, version):
    stack = np.stack([image(seed=i) for i in range(5)]).astype(np.uint16)
    path = make_dm.write_dm(tmp_path / f"s.dm{version}", stack, version=version, scale=0.02, units="nm")
    with pytest.raises(NanosegError, match="5 frames") as err:
        read(path)
    assert f"s.dm{version}" in str(err.value) and "read_series" in str(err.value)
    np.testing.assert_array_equal(read(path, frame=3).data, stack[3])
    s = read_series(path, frame_interval_s=0.1)
    assert len(s) == 5 and s[4].pixel_size_nm == pytest.approx(0.02)
    np.testing.assert_array_equal(s[4].data, stack[4])


def test_dm_dose_rate_times_exposure_and_nm_units(tmp_path):
    tags = {"DataBar": {"Exposure Time (s)": 2.0}, "Acquisition": {"Dose Rate (e/A2/s)": 25.0}}
    m = read(make_dm.write_dm(tmp_path / "r.dm4", image(), scale=0.00018, units="µm", image_tags=tags))
    assert m.dose_e_per_A2 == pytest.approx(50.0)
    assert m.pixel_size_nm == pytest.approx(0.18)
    per_px = {"DataBar": {"Exposure Time (s)": 0.5}, "Detector": {"Dose Rate (e/pix/s)": 2.0, "Use Dose": True}}
    m = read(make_dm.write_dm(tmp_path / "p.dm4", image(), scale=0.02, units="nm", image_tags=per_px))
    assert m.dose_e_per_A2 == pytest.approx(2.0 * 0.5 / 0.2**2)  # 1 e/px over (0.2 Å)² = 25 e/Å²
    none = read(make_dm.write_dm(tmp_path / "n.dm4", image(), scale=1.0, units=""))
    assert none.pixel_size_nm is None and none.dose_e_per_A2 is None


def test_dm_diffraction_units_rejected(tmp_path):
    path = make_dm.write_dm(tmp_path / "fft.dm4", image(), scale=0.05, units="1/nm")
    with pytest.raises(NanosegError, match="reciprocal") as err:
        read(path)
    assert "fft.dm4" in str(err.value)


# ------------------------------------------------------------------------------------------ ordering
def test_insitu_names_order_frames(tmp_path):
    names = []
    for second in (58, 59):
        for frame in range(10):
            names.append(f"Capture_Hour_01_Minute_02_Second_{second:02d}_Frame_{frame:04d}.npy")
    names.append("Capture_Hour_01_Minute_03_Second_00_Frame_0000.npy")
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(names)):
        np.save(tmp_path / names[i], np.full((4, 4), i, np.float32))
    s = read_series(str(tmp_path / "*.npy"))
    assert s.timing == "filename" and len(s) == 21
    np.testing.assert_allclose(s.times_s, np.arange(21) * 0.1, atol=1e-9)
    assert [int(s[i].data[0, 0]) for i in range(21)] == list(range(21))
    # the nested folders of a Gatan in situ capture: read the folder itself, or a recursive glob
    nested = tmp_path / "capture"
    for i, name in enumerate(names):
        second = name.split("_Second_")[1][:2]
        folder = nested / "Hour_01" / f"Minute_{name.split('_Minute_')[1][:2]}" / f"Second_{second}"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / name, np.full((4, 4), i, np.float32))
    for source in (nested, str(nested / "**" / "*.npy")):
        s = read_series(source)
        assert len(s) == 21 and [int(s[i].data[0, 0]) for i in range(21)] == list(range(21))
    # Frame_0010 of second 59 would be the 11th frame: the explicit interval is used as given
    assert insitu_times(names[:2], frame_interval_s=0.25) == [0.0, 0.25]


def test_metadata_timestamps_and_natural_sort(tmp_path):
    for i, name in enumerate(["z.dm4", "b.dm4", "a.dm4"]):  # names sort against acquisition time
        tags = {"DataBar": {"Acquisition Date": "5/6/2024", "Acquisition Time": f"10:00:{i * 2:02d} AM"}}
        make_dm.write_dm(tmp_path / name, np.full((4, 4), i, np.float32), image_tags=tags)
    s = read_series(sorted(tmp_path.glob("*.dm4")))
    assert s.timing == "metadata"
    np.testing.assert_allclose(s.times_s, [0, 2, 4])
    assert [p.name for p in s.paths] == ["z.dm4", "b.dm4", "a.dm4"]
    for i in (10, 2, 1):
        np.save(tmp_path / f"frame{i}.npy", np.full((4, 4), i, np.float32))
    s = read_series(tmp_path / "frame*.npy", frame_interval_s=0.5)
    assert [int(f.data[0, 0]) for f in s] == [1, 2, 10] and s.timing == "interval"
    assert s.frame_interval_s == pytest.approx(0.5)


def test_series_of_files_is_lazy(tmp_path, monkeypatch):
    import nanoseg.io.readers as readers

    for i in range(6):
        np.save(tmp_path / f"f{i}.npy", np.full((4, 4), i, np.float32))
    calls = []
    real = readers.read
    monkeypatch.setattr(readers, "read", lambda p, **k: calls.append(p) or real(p, **k))
    s = read_series(tmp_path / "f*.npy")
    assert calls == []
    assert s[4].data[0, 0] == 4 and len(calls) == 1


# ----------------------------------------------------------------------------------------------- masks
def test_read_mask_encodings(tmp_path):
    truth = np.zeros((16, 12), np.uint8)
    truth[3:9, 2:7] = 1
    iio.imwrite(tmp_path / "m.png", truth * 255)
    tifffile.imwrite(tmp_path / "m.tif", truth)
    np.save(tmp_path / "m.npy", truth.astype(bool))
    iio.imwrite(tmp_path / "rgb.png", np.repeat(truth[..., None] * 255, 3, axis=2))
    for name in ("m.png", "m.tif", "m.npy", "rgb.png"):
        mask = read_mask(tmp_path / name, shape=(16, 12))
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, truth)
    with pytest.raises(NanosegError, match="does not match"):
        read_mask(tmp_path / "m.png", shape=(12, 16))


def test_read_mask_rejects_greyscale_photo(tmp_path):
    photo = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "photo.png", photo)
    with pytest.raises(NanosegError, match="not a binary mask") as err:
        read_mask(tmp_path / "photo.png")
    assert "photo.png" in str(err.value)
    (tmp_path / "x.jpg").write_bytes(b"x")
    with pytest.raises(NanosegError, match="unsupported mask format"):
        read_mask(tmp_path / "x.jpg")


def test_circles_rasterize_to_hand_counted_areas(tmp_path):
    # lattice points with x² + y² ≤ r²: 13 for r = 2, 317 for r = 10 (Gauss circle problem)
    assert masks_from_circles([(5, 5, 2)], (11, 11)).sum() == 13
    assert masks_from_circles(np.array([[30.0, 20.0, 10.0]]), (50, 60)).sum() == 317
    # a circle cut by the left border keeps its inside part: (13 + the 5 centre-column pixels) / 2
    assert masks_from_circles([(0, 5, 2)], (11, 11)).sum() == 9
    (tmp_path / "c.csv").write_text("x_nm, y_nm, radius_nm\n15, 10, 5\n")
    table = read_circles(tmp_path / "c.csv")
    mask = masks_from_circles(table, (50, 60), pixel_size_nm=0.5)  # centre (x 30, y 20) px, r = 10 px
    assert mask.sum() == 317 and mask[20, 30] == 1 and mask[20, 40] == 1 and mask[20, 41] == 0
    with pytest.raises(NanosegError, match="pixel_size_nm"):
        masks_from_circles(table, (50, 60))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(NanosegError, match="columns"):
        read_circles(tmp_path / "bad.csv")


@settings(max_examples=40, deadline=None)
@given(x=st.floats(20, 40), y=st.floats(20, 40), r=st.floats(2, 15))
def test_circle_area_close_to_pi_r2(x, y, r):
    # pixel-centre counting errs only for pixels whose centre lies within half a pixel diagonal (√2/2)
    # of the perimeter, and those errors largely cancel: a loose bound is 2πr·√2/2 + 1
    area = int(masks_from_circles([(x, y, r)], (64, 64)).sum())
    assert abs(area - np.pi * r * r) < 2 * np.pi * r * np.sqrt(2) / 2 + 1


# ----------------------------------------------------------------------------------------------- writers
def test_png_preview_with_outline(tmp_path):
    data = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 1
    write_png_preview(tmp_path / "p.png", data, overlay_mask=mask, outline_color=(0, 255, 0))
    rgb = iio.imread(tmp_path / "p.png")
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    green = (rgb[..., 0] == 0) & (rgb[..., 1] == 255) & (rgb[..., 2] == 0)
    assert green.sum() == 4 * 12 - 4  # the one-pixel outline of a 12×12 square
    write_png_preview(tmp_path / "g.png", data, percentile_clip=(0, 100))
    grey = iio.imread(tmp_path / "g.png")
    assert grey.min() == 0 and grey.max() == 255 and grey.ndim == 2


def test_writers_report_unwritable_paths(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a folder should be
    for write in (lambda p: write_tiff(p, image()), lambda p: write_npy(p, image()),
                  lambda p: write_png_preview(p, image())):
        with pytest.raises(NanosegError, match="cannot write"):
            write(blocker / "sub" / "out.tif")


def test_example_micrograph_and_mask():
    m = example_micrograph()
    assert m.shape == (256, 256) and m.pixel_size_nm == 0.02 and m.dose_e_per_A2 == 400.0
    mask = example_mask()
    # three disks of radius 50, 40 and 25 px: area ≈ π(50² + 40² + 25²) = 14845 px
    assert abs(int(mask.sum()) - np.pi * (50**2 + 40**2 + 25**2)) < 60
    # particles are darker than the background (amplitude contrast)
    assert m.data[mask == 1].mean() < 0.85 * m.data[mask == 0].mean()
    # mean counts = dose × pixel area (400 e/Å² × 0.04 Å²) × mean illumination (0.973) on the background
    assert m.data[mask == 0].mean() == pytest.approx(16 * 0.973, rel=0.03)
    xrays = m.metadata["xray_pixels_rc"]  # the injected x-ray hits stand far above the ~16 e/px background
    assert len(xrays) == 10 and all(m.data[r, c] > 90 for r, c in xrays)
    assert (m.data > 90).sum() == 10


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ["x.dm3", "x.dm4", "x.emd", "x.ser", "x.mrc", "x.tif", "x.png", "x.jpg",
                                  "x.npy"])
def test_corrupt_and_empty_files(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(NanosegError, match="empty") as err:
        read(path)
    assert name in str(err.value)
    path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8)))
    with pytest.raises(NanosegError) as err:
        read(path)
    assert name in str(err.value)


@pytest.mark.parametrize("suffix", ["tif", "dm4", "npy", "png"])
def test_truncated_files(tmp_path, suffix):
    data = image((64, 64))
    full = tmp_path / f"full.{suffix}"
    if suffix == "tif":
        write_tiff(full, data, pixel_size_nm=0.1)
    elif suffix == "dm4":
        make_dm.write_dm(full, data)
    elif suffix == "npy":
        np.save(full, data)
    else:
        iio.imwrite(full, (data - data.min()).astype(np.uint8))
    raw = full.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(NanosegError) as err:
        read(cut)
    assert f"cut.{suffix}" in str(err.value)


def test_missing_unknown_nan_and_3d(tmp_path):
    with pytest.raises(NanosegError, match="not found"):
        read(tmp_path / "nope.dm4")
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(NanosegError, match="unknown image format"):
        read(tmp_path / "a.bmp")
    np.save(tmp_path / "nan.npy", np.full((8, 8), np.nan, np.float32))
    with pytest.raises(NanosegError, match="NaN") as err:
        read(tmp_path / "nan.npy")
    assert "nan.npy" in str(err.value)
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(NanosegError, match="2-D image or a 3-D stack"):
        read(tmp_path / "cube.npy")
    np.save(tmp_path / "stack.npy", np.zeros((3, 4, 5), np.float32))
    with pytest.raises(NanosegError, match="read_series"):
        read(tmp_path / "stack.npy")
    with pytest.raises(NanosegError, match="no files match"):
        read_series(str(tmp_path / "none_*.dm4"))
    with pytest.raises(NanosegError, match="folder"):
        read(tmp_path)


# ------------------------------------------------------------------------ issue #16: no silent wrong numbers
def test_ser_without_emi_with_a_reciprocal_calibration_is_refused(tmp_path):
    # a TIA diffraction pattern (0.0425 1/nm = 4.25e7 1/m) whose .emi is missing: RosettaSciIO assumes metres
    path = make_ser.write_ser(tmp_path / "diff_1.ser", image(), pixel_size_m=4.25e7)
    with pytest.raises(NanosegError, match="implausible pixel size.*emi") as err:
        read(path)
    assert "diff_1.ser" in str(err.value)
    # and the user who knows better can say so
    assert read(path, pixel_size_nm=0.1).pixel_size_nm == 0.1
    assert read(make_ser.write_ser(tmp_path / "ok_1.ser", image())).metadata["calibration_note"].startswith("no .emi")


def test_pixel_size_override_for_uncalibrated_files(tmp_path):
    np.save(tmp_path / "a.npy", image())
    assert read(tmp_path / "a.npy").pixel_size_nm is None
    m = read(tmp_path / "a.npy", pixel_size_nm=0.18)
    assert m.pixel_size_nm == 0.18 and m.metadata["pixel_size_from"].startswith("given")
    assert describe(tmp_path / "a.npy", pixel_size_nm=0.18)["field_of_view_nm"] == [pytest.approx(24 * 0.18),
                                                                                     pytest.approx(20 * 0.18)]
    np.save(tmp_path / "s.npy", np.stack([image(), image()]))
    assert read_series(tmp_path / "s.npy", pixel_size_nm=0.2)[1].pixel_size_nm == 0.2
    for bad in (0, -1.0, "abc", 1e12):
        with pytest.raises(NanosegError, match="pixel"):
            read(tmp_path / "a.npy", pixel_size_nm=bad)


def test_berkeley_emd_without_units_is_uncalibrated_and_non_square_pixels_are_refused(tmp_path):
    from rsciio.emd import file_writer

    def write(name, units, scale_y, scale_x):
        axes = [{"name": "y", "size": 24, "scale": scale_y, "offset": 0, "units": units, "navigate": False},
                {"name": "x", "size": 20, "scale": scale_x, "offset": 0, "units": units, "navigate": False}]
        file_writer(str(tmp_path / name), {"data": image(), "axes": axes, "metadata": {"General": {"title": "t"}, "Signal": {}},
                                           "original_metadata": {}})
        return tmp_path / name

    assert read(write("u.emd", "[]", 1.0, 1.0)).pixel_size_nm is None
    skewed = write("s.emd", "nm", 2.0, 0.2)
    with pytest.raises(NanosegError, match="not square.*0.2 nm wide, 2 nm high"):
        read(skewed)
    assert read(skewed, pixel_size_nm=0.2).metadata["file_pixel_size_y_nm"] == pytest.approx(2.0)


def test_tiff_with_two_different_images_needs_a_signal(tmp_path):
    path = tmp_path / "two.tif"  # like Olympus SIS: a preview page and the raw data page
    raw = image((24, 20)).astype(np.uint16)
    tifffile.imwrite(path, raw[:12, :10].astype(np.uint8))
    tifffile.imwrite(path, raw, append=True)
    with pytest.raises(NanosegError, match="2 images; choose one with signal=.*1 24×20 uint16"):
        read(path)
    np.testing.assert_array_equal(read(path, signal=1).data, raw)
    assert describe(path, signal="1")["shape"] == [24, 20]
    with pytest.raises(NanosegError, match="no signal 5"):
        read(path, signal=5)
    np.save(tmp_path / "one.npy", raw)
    with pytest.raises(NanosegError, match="holds one image"):
        read(tmp_path / "one.npy", signal=1)


def test_missing_optional_package_is_named_not_called_corruption(tmp_path):
    path = tmp_path / "jpeg.tif"
    tifffile.imwrite(path, image().astype(np.uint8))
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["Compression"]
        offset = tag.valueoffset
    raw[offset:offset + 2] = (7).to_bytes(2, "little")  # claim JPEG compression (decoded by imagecodecs)
    path.write_bytes(bytes(raw))
    with pytest.raises(NanosegError) as err:
        read(path)
    if importlib.util.find_spec("imagecodecs") is None:
        assert "optional package 'imagecodecs'" in str(err.value) and "pip install imagecodecs" in str(err.value)
        assert "corrupt" not in str(err.value)
    from nanoseg.io.openers import missing_package

    assert missing_package(ModuleNotFoundError("The 'sparse' library was not found. To load ...")) == "sparse"
    assert missing_package(ValueError("unrelated")) is None


def test_tiff_cut_at_the_end_is_truncated_not_zero_filled(tmp_path):
    path = tmp_path / "pages.tif"
    for i in range(3):
        tifffile.imwrite(path, image(seed=i).astype(np.uint16), append=True)
    raw = path.read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) - 60])  # the end of the last frame's pixels is gone
    with pytest.raises(NanosegError, match="truncated") as err:
        read_series(tmp_path / "cut.tif")
    assert "cut.tif" in str(err.value)


def test_dm_cut_short_is_truncated_even_when_rosettasciio_would_read_it(tmp_path):
    path = make_dm.write_dm(tmp_path / "full.dm4", image((64, 64)))
    raw = path.read_bytes()
    (tmp_path / "cut.dm4").write_bytes(raw[:-40])
    with pytest.raises(NanosegError, match="truncated") as err:
        read(tmp_path / "cut.dm4")
    assert "cut.dm4" in str(err.value)


# ------------------------------------------------------------------------------------------------- CLI
def test_info_cli_good_and_bad_files(tmp_path):
    from typer.testing import CliRunner

    from nanoseg.cli import app

    good = make_dm.write_dm(tmp_path / "good.dm4", image(), scale=1.8, units="Å", image_tags=DM_TAGS)
    write_tiff(tmp_path / "stack.tif", np.stack([image(), image()]), pixel_size_nm=0.1)
    bad = tmp_path / "bad.dm4"
    bad.write_bytes(b"not a dm file at all")
    runner = CliRunner()
    result = runner.invoke(app, ["info", str(good), str(tmp_path / "stack.tif")])
    assert result.exit_code == 0, result.output
    assert "0.18 nm" in result.output and "420 e/Å²" in result.output and "(2 frames)" in result.output
    result = runner.invoke(app, ["info", str(good), str(bad), "--json"])
    assert result.exit_code == 1
    start = result.stdout.index("[")
    rows = json.loads(result.stdout[start: result.stdout.rindex("]") + 1])
    assert rows[0]["pixel_size_nm"] == pytest.approx(0.18) and rows[0]["metadata"]["voltage_kV"] == 300.0
    assert rows[0]["field_of_view_nm"] == [pytest.approx(24 * 0.18), pytest.approx(20 * 0.18)]
    assert describe(good)["dose_e_per_A2"] == 420.0


def test_info_cli_keeps_hints_lists_signals_and_takes_signal_and_pixel_size(tmp_path):
    from typer.testing import CliRunner

    from nanoseg.cli import app

    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4, 5), np.float32))
    two = tmp_path / "two.tif"
    tifffile.imwrite(two, image((12, 10)).astype(np.uint8))
    tifffile.imwrite(two, image().astype(np.uint16), append=True)
    np.save(tmp_path / "plain.npy", image())
    runner = CliRunner()
    def output(*args):
        result = runner.invoke(app, ["info", *map(str, args)])
        return result.exit_code, " ".join(result.output.split())  # Rich wraps long lines

    code, text = output(tmp_path / "cube.npy", two)
    assert code == 1
    assert "save one image (rows, cols) or a stack" in text  # the hint is shown, not dropped
    assert "--signal 1" in text and "`nanoseg info FILE` lists them" in text  # the library's signal=1, as a flag
    code, text = output(two, "--signal", "1")
    assert code == 0, text
    assert "24 × 20" in text and "signal 1 of: 0 12×10 uint8 (YX); 1 24×20 uint16 (YX)" in text
    code, text = output(tmp_path / "plain.npy", "--pixel-size", "0.5")
    assert code == 0, text
    assert "0.5 nm (given)" in text and "field of view 12 × 10 nm" in text


def test_example_reads_back_through_every_writer(tmp_path):
    m = example_micrograph()
    write_tiff(tmp_path / "e.tif", m)
    write_npy(tmp_path / "e.npy", m)
    for name in ("e.tif", "e.npy"):
        np.testing.assert_array_equal(read(tmp_path / name).data, m.data)
    back = read(tmp_path / "e.tif")
    assert back.pixel_size_nm == 0.02 and back.dose_e_per_A2 == 400.0 and back.metadata["voltage_kV"] == 300.0


def test_unreadable_tiff_datetime_is_kept_as_text_not_dropped(tmp_path):
    path = tmp_path / "odd_time.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), extratags=[(306, "s", 0, "yesterday noon", True)],
                     resolution=(1e7, 1e7, "CENTIMETER"))
    meta = read(path).metadata
    assert "timestamp_s" not in meta and meta["datetime_text"] == "yesterday noon"
