"""The napari plugin (src/nanoseg/napari): manifest, reader, sample data, the widgets' work, and the widgets
themselves in a headless napari viewer (napari's ``make_napari_viewer`` fixture, Qt's offscreen platform).

The viewer tests need napari + pytest-qt (``pip install -e '.[napari,napari-test]'``) and an OpenGL context:
with no ``DISPLAY`` they start an ``Xvfb`` server for the session (``apt-get install xvfb``) and skip, saying
so, when there is none. The reader and compute tests need neither.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from nanoseg.errors import NanosegError
from nanoseg.io import FORMATS, example_micrograph, write_tiff
from nanoseg.napari import _compute, _reader, _sample_data

MANIFEST = Path(_reader.__file__).with_name("napari.yaml")
VENDOR = Path(__file__).resolve().parents[1].parent / "shared" / "vendor"


# ------------------------------------------------------------------------------------------ manifest
def test_manifest_reader_patterns_are_the_io_formats():
    manifest = yaml.safe_load(MANIFEST.read_text())
    [reader] = manifest["contributions"]["readers"]
    assert sorted(reader["filename_patterns"]) == sorted(f"*{suffix}" for suffix in FORMATS)


def test_manifest_commands_point_at_callables():
    import importlib

    manifest = yaml.safe_load(MANIFEST.read_text())
    for command in manifest["contributions"]["commands"]:
        module, name = command["python_name"].split(":")
        assert callable(getattr(importlib.import_module(module), name)), command["id"]


def test_npe2_discovers_the_plugin():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert "nanoseg" in pm._manifests, "reinstall nanoseg (pip install -e .) to register the napari.manifest entry point"
    widgets = {w.display_name for w in pm.iter_widgets() if w.plugin_name == "nanoseg"}
    assert widgets == {"Segment particles", "Track movie"}
    samples = {s.key for plugin, contribs in pm.iter_sample_data() if plugin == "nanoseg" for s in contribs}
    assert samples == {"example", "demo_movie"}


# ------------------------------------------------------------------------------------------ reader
def test_reader_sets_the_pixel_size_in_nm(tmp_path):
    path = tmp_path / "example.tif"
    write_tiff(path, example_micrograph())
    [(data, kwargs, kind)] = _reader.get_reader(str(path))(str(path))
    assert kind == "image" and data.shape == (256, 256)
    assert kwargs["scale"] == (0.02, 0.02) and kwargs["units"] == ("nm", "nm")
    assert kwargs["metadata"]["nanoseg"]["pixel_size_nm"] == 0.02


def test_reader_declines_other_files():
    assert _reader.get_reader("notes.txt") is None
    assert _reader.get_reader(["a.tif", "b.csv"]) is None


def test_reader_opens_an_untimed_stack_lazily_without_calibration(tmp_path):
    path = tmp_path / "movie.npy"
    np.save(path, np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8))
    [(data, kwargs, _)] = _reader.read_layers(path)
    assert data.shape == (3, 8, 8) and hasattr(data, "dask")  # lazy, frame by frame
    np.testing.assert_array_equal(np.asarray(data[2]), np.load(path)[2])
    assert kwargs["scale"] == (1.0, 1.0, 1.0) and kwargs["units"] == ("pixel", "pixel", "pixel")
    meta = kwargs["metadata"]["nanoseg"]
    assert meta["pixel_size_nm"] is None and meta["times_s"] is None  # no timestamps: none invented


def test_reader_opens_an_in_situ_capture_folder_as_a_timed_movie(tmp_path):
    frames = example_micrograph()
    for second, frame in [(0, 0), (0, 1), (1, 0)]:  # two frames per second, named as Gatan's in situ capture
        write_tiff(tmp_path / f"cap_Hour_00_Minute_00_Second_{second:02d}_Frame_{frame:04d}.tif", frames)
    assert _reader.get_reader(str(tmp_path)) is not None
    [(data, kwargs, _)] = _reader.read_layers(tmp_path)
    assert data.shape == (3, 256, 256) and kwargs["scale"] == (1.0, 0.02, 0.02)
    assert kwargs["metadata"]["nanoseg"]["times_s"] == [0.0, 0.5, 1.0]  # from the names


def test_reader_declines_a_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert _reader.get_reader(str(tmp_path)) is None


def test_reader_bad_file_is_one_nanoseg_error(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"not a tiff")
    with pytest.raises(NanosegError, match="broken.tif"):
        _reader.read_layers(path)


@pytest.mark.skipif(not (VENDOR / "TRUTH.md").is_file(), reason="../shared/vendor is absent")
def test_reader_vendor_dm4_scale_from_its_calibration():
    # TRUTH.md: JEOL HAADF Image.dm4, (112, 112) float32, y = x = 0.00124901 µm
    [(data, kwargs, _)] = _reader.read_layers(VENDOR / "dm" / "JEOL HAADF Image.dm4")
    assert data.shape == (112, 112)
    assert kwargs["scale"] == pytest.approx((1.24901, 1.24901), rel=1e-5) and kwargs["units"] == ("nm", "nm")


# ------------------------------------------------------------------------------------------ sample data
def test_sample_data_example_and_demo_movie():
    [(image, kwargs, _)] = _sample_data.example_micrograph()
    assert image.shape == (256, 256) and kwargs["scale"] == (0.02, 0.02)
    [(movie, kwargs, _)] = _sample_data.demo_movie()
    spec = _sample_data.DEMO_MOVIE
    assert movie.shape == (spec["n_frames"], *spec["shape_px"])
    assert kwargs["scale"] == (1.0, spec["pixel_size_nm"], spec["pixel_size_nm"])
    times = kwargs["metadata"]["nanoseg"]["times_s"]
    assert np.allclose(np.diff(times), spec["frame_interval_s"])


# ------------------------------------------------------------------------------------------ compute
class _Layer:
    def __init__(self, scale, units=None, metadata=None):
        self.scale, self.units, self.metadata = scale, units, metadata or {}


def test_layer_pixel_size_from_metadata_or_nm_scale_only():
    assert _compute.layer_pixel_size_nm(_Layer((1, 1), metadata={"nanoseg": {"pixel_size_nm": 0.05}})) == 0.05
    assert _compute.layer_pixel_size_nm(_Layer((0.2, 0.2), units=("nanometer", "nanometer"))) == 0.2
    assert _compute.layer_pixel_size_nm(_Layer((1.0, 1.0), units=("pixel", "pixel"))) is None
    assert _compute.layer_pixel_size_nm(_Layer((0.2, 0.3), units=("nanometer", "nanometer"))) is None


def test_no_pixel_size_is_refused_with_the_fix():
    assert _compute.resolve_pixel_size_nm(None, 0.1, name="a") == 0.1
    assert _compute.resolve_pixel_size_nm(0.02, None, name="a") == 0.02
    with pytest.raises(NanosegError, match="pixel size.*set 'pixel size"):
        _compute.resolve_pixel_size_nm(None, None, name="a")


def test_untimed_movie_is_refused_like_the_cli():
    frames = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(NanosegError, match="no timestamps.*frame interval"):
        _compute.movie_series(frames, pixel_size_nm=0.2, times_s=None, frame_interval_s=None, name="m")
    series = _compute.movie_series(frames, pixel_size_nm=0.2, times_s=None, frame_interval_s=0.5, name="m")
    assert list(series.times_s) == [0.0, 0.5, 1.0] and series[1].pixel_size_nm == 0.2


def test_track_layers_mark_coalescences_in_the_graph_and_as_points():
    from types import SimpleNamespace

    import pandas as pd

    # tracks 1 and 2 merge into 3 at frame 2; track 4 vanishes
    tracks = pd.DataFrame({"track_id": [1, 2, 1, 2, 3, 3, 4], "frame": [0, 0, 1, 1, 2, 3, 0],
                           "y_nm": [1.0, 3.0, 1.5, 2.5, 2.0, 2.1, 8.0], "x_nm": [1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 8.0],
                           "diameter_nm": [2.0, 2.0, 2.0, 2.0, 2.5, 2.5, 1.0]})
    events = pd.DataFrame({"kind": ["coalescence", "vanish"], "frame": [2, 1], "parents": [(1, 2), (4,)],
                           "children": [(3,), ()]})
    fits = pd.DataFrame({"model": ["n=3"], "n": [3.0], "k": [0.1], "k_std": [0.01], "rate_units": ["nm^3/s"],
                         "delta_aic": [0.0]})
    result = SimpleNamespace(tracks=tracks, events=events, fits=fits,
                             summary={"n_tracks": 4, "n_frames": 4, "pixel_size_nm": 0.1,
                                      "events": {"coalescence": 1, "vanish": 1}})
    out = _compute.track_layers(result, translate_nm=(0.5, 0.25), name="m")
    (data, kwargs, kind), (points, point_kwargs, point_kind) = out.layers
    assert (kind, point_kind) == ("tracks", "points")
    assert data.shape == (7, 4) and kwargs["graph"] == {3: [1, 2]}
    assert kwargs["translate"] == point_kwargs["translate"] == (0.0, 0.5, 0.25)
    np.testing.assert_array_equal(points, [[2.0, 2.0, 1.0]])  # where the merged particle first appears
    assert "1 coalescence" in out.summary and "k = 0.1" in out.summary and "nm^3/s" in out.summary


def test_segment_layers_on_the_example(tmp_path):
    micrograph = example_micrograph()
    result = _compute.segment_layers(micrograph.data, pixel_size_nm=0.02, tta=True, engine="fused", name="ex")
    (prob, prob_kw, k1), (labels, lab_kw, k2) = result.layers
    assert (k1, k2) == ("image", "labels") and prob.shape == labels.shape == (256, 256)
    assert prob_kw["scale"] == lab_kw["scale"] == (0.02, 0.02)
    table = lab_kw["features"]
    assert len(table) == int(labels.max()) == 3  # the example's three particles (2.0, 1.6, 1.0 nm)
    assert np.allclose(table["diameter_nm"], 2 * np.sqrt(table["area_nm2"] / np.pi))
    assert "diameter_std_nm" in table.columns  # TTA: the per-particle spread
    # the v2 default model draws the smallest (1.0 nm) particle's edge inside: 0.7 nm (docs/models.md)
    assert sorted(table["diameter_nm"].round(1)) == pytest.approx([1.0, 1.6, 2.0], abs=0.35)
    assert "3 particles at 0.02 nm/px" in result.summary and "training range" in result.summary


def test_segment_layers_without_a_pixel_size_assumes_one_and_says_so():
    """Like `nanoseg predict`: an uncalibrated image gets a pixel size from its particles' size, and a warning."""
    assert _compute.resolve_pixel_size_nm(None, None, name="a", allow_estimate=True) is None
    micrograph = example_micrograph()
    result = _compute.segment_layers(micrograph.data, pixel_size_nm=None, name="ex")
    (_, prob_kw, _), (_, lab_kw, _) = result.layers
    px = lab_kw["metadata"]["nanoseg"]["pixel_size_nm"]
    assert px is not None and 0.005 < px < 0.2 and prob_kw["scale"] == (px, px)
    assert any("assumed" in w for w in result.quality["warnings"]) and "warning: no pixel size" in result.summary
    assert result.table["diameter_nm"].notna().all()


# ------------------------------------------------------------------------------------------ viewer
_ENV_BEFORE: dict[str, str | None] = {}


@pytest.fixture(scope="module", autouse=True)
def _restore_display_env():
    """After this module, DISPLAY and QT_QPA_PLATFORM as they were (later tests' matplotlib then stays on Agg);
    Qt keeps its open connection to the display."""
    yield
    for name, value in _ENV_BEFORE.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def _display():
    """An X display for Qt's offscreen platform to take OpenGL from: the current one, else an Xvfb server.

    Session-scoped and autouse so that it runs before pytest-qt's session ``qapp`` (the QApplication picks its
    platform once); returns why the viewer tests must skip, or None.
    """
    import importlib.util

    _ENV_BEFORE.update({name: os.environ.get(name) for name in ("DISPLAY", "QT_QPA_PLATFORM")})
    if importlib.util.find_spec("napari") is None or importlib.util.find_spec("pytestqt") is None:
        return "napari and pytest-qt are not installed (pip install -e '.[napari,napari-test]')"
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if os.environ.get("DISPLAY"):
        return None
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        return "napari's canvas needs OpenGL: no DISPLAY and no Xvfb (apt-get install xvfb)"
    read_fd, write_fd = os.pipe()
    # the server outlives every test (Qt keeps its X connection until the process ends, and losing it is fatal),
    # so a small shell watcher stops it once this process has exited
    watcher = ('parent=$1; shift; "$@" & server=$!; '
               'while kill -0 "$parent" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done; '
               'kill "$server" 2>/dev/null')
    subprocess.Popen(["sh", "-c", watcher, "xvfb-watcher", str(os.getpid()), xvfb, "-displayfd", str(write_fd),
                      "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                     pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        return "Xvfb did not start"
    os.environ["DISPLAY"] = f":{number}"
    return None


def _prime_opengl() -> None:
    """Ask for the OpenGL capabilities once, from a canvas of their own, before any viewer exists.

    napari caches them (``lru_cache``); queried first from a viewer's not-yet-shown canvas under the offscreen
    platform they sometimes come back empty (``glGetString`` → None, an AttributeError in vispy).
    """
    from napari._vispy.utils.gl import get_gl_extensions, get_max_texture_sizes

    for _ in range(3):
        try:
            get_gl_extensions()
            get_max_texture_sizes()
            return
        except AttributeError:
            continue
    pytest.skip("no OpenGL context on this display (glGetString returned nothing)")


@pytest.fixture
def viewer(request, _display):
    if _display is not None:
        pytest.skip(_display)
    _prime_opengl()
    return request.getfixturevalue("make_napari_viewer")()


def _panel(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("nanoseg", name)
    panel = widget._nanoseg_panel
    panel.engine = "fused"  # a fixed engine: no calibration run inside the test
    return panel


def _wait(qtbot, panel, timeout_ms=60_000):
    qtbot.waitUntil(lambda: panel.worker is not None and (panel.result is not None or panel.error is not None)
                    and panel.run_button.enabled, timeout=timeout_ms)


def test_viewer_opens_a_file_with_the_nanoseg_reader(viewer, tmp_path):
    path = tmp_path / "example.tif"
    write_tiff(path, example_micrograph())
    [layer] = viewer.open(path, plugin="nanoseg")
    assert tuple(layer.scale) == (0.02, 0.02) and str(layer.units[0]) == "nanometer"


def test_segment_widget_adds_probability_labels_and_table(viewer, qtbot):
    viewer.open_sample("nanoseg", "example")
    panel = _panel(viewer, "Segment particles")
    panel.layer.value = "nanoseg example"
    panel.run_button.changed.emit(True)
    # the click returns at once: the work runs in a worker thread (its result needs the event loop to arrive)
    assert panel.result is None and panel.worker is not None
    assert panel.worker.pbar.total == 2 and "segmenting" in panel.worker.pbar.desc  # napari's activity dock
    _wait(qtbot, panel)
    assert panel.error is None
    labels = viewer.layers["nanoseg example particles"]
    assert tuple(labels.scale) == (0.02, 0.02)
    assert len(labels.features) == int(labels.data.max()) > 0
    assert "diameter_nm" in labels.features.columns
    assert panel.table.shape[0] == len(labels.features)
    assert "nm/px" in panel.status.value
    assert "nanoseg example probability" in viewer.layers


def test_segment_widget_on_a_movie_segments_the_displayed_frame(viewer, qtbot):
    viewer.open_sample("nanoseg", "demo_movie")
    viewer.dims.set_current_step(0, 5)
    panel = _panel(viewer, "Segment particles")
    panel.layer.value = "nanoseg demo movie"
    panel.run_button.changed.emit(True)
    _wait(qtbot, panel)
    assert panel.error is None
    labels = viewer.layers["nanoseg demo movie frame 5 particles"]
    px = _sample_data.DEMO_MOVIE["pixel_size_nm"]
    assert labels.data.shape == _sample_data.DEMO_MOVIE["shape_px"] and tuple(labels.scale) == (px, px)


def test_segment_widget_assumes_a_pixel_size_for_an_uncalibrated_image_and_says_so(viewer, qtbot):
    viewer.add_image(example_micrograph().data, name="plain")  # opened without a calibration
    panel = _panel(viewer, "Segment particles")
    panel.layer.value = "plain"
    panel.run_button.changed.emit(True)
    _wait(qtbot, panel)
    assert panel.error is None and "warning: no pixel size in plain: assumed" in panel.result.summary
    for name in ("plain particles", "plain probability"):
        viewer.layers.remove(name)
    panel.pixel_size.value = 0.05  # the override replaces the assumption
    panel.run_button.changed.emit(True)
    _wait(qtbot, panel)
    assert panel.error is None and tuple(viewer.layers["plain particles"].scale) == (0.05, 0.05)


def test_segment_widget_reports_a_failing_prediction_in_the_panel(viewer, qtbot):
    viewer.add_image(np.zeros((32, 32), np.float32), name="blank", scale=(0.05, 0.05), units=("nm", "nm"))
    panel = _panel(viewer, "Segment particles")
    panel.layer.value = "blank"
    panel.run_button.changed.emit(True)
    _wait(qtbot, panel)  # the worker's NanosegError lands in the panel, not in Qt's event loop
    assert panel.error and "constant" in panel.error and panel.result is None  # a blank frame cannot be standardized


def test_track_widget_on_the_demo_movie(viewer, qtbot):
    viewer.open_sample("nanoseg", "demo_movie")
    panel = _panel(viewer, "Track movie")
    panel.n_boot = 0
    panel.layer.value = "nanoseg demo movie"
    panel.run_button.changed.emit(True)
    _wait(qtbot, panel, timeout_ms=120_000)
    assert panel.error is None, panel.error
    tracks = viewer.layers["nanoseg demo movie tracks"]
    assert tracks.data.shape[1] == 4 and len(np.unique(tracks.data[:, 0])) == panel.result.summary["n_tracks"]
    coalescences = (panel.result.events["kind"] == "coalescence").sum()
    if coalescences:
        assert len(viewer.layers["nanoseg demo movie coalescences"].data) >= coalescences
        assert tracks.graph
    assert "fit" in panel.status.value and "nm^" in panel.status.value
    assert (panel.result.out_dir / "tracks.csv").is_file()


def test_track_widget_refuses_an_untimed_movie(viewer):
    viewer.add_image(np.zeros((3, 16, 16), np.float32), name="untimed", scale=(1, 0.2, 0.2), units=("pixel", "nm", "nm"))
    panel = _panel(viewer, "Track movie")
    panel.layer.value = "untimed"
    panel.run_button.changed.emit(True)
    assert "no timestamps" in panel.error and "frame interval (s)" in panel.error
    assert panel.worker is None


def test_screenshot_renders_offscreen(viewer):
    viewer.open_sample("nanoseg", "example")
    shot = viewer.screenshot(canvas_only=False)
    assert shot.ndim == 3 and shot.shape[2] == 4 and shot[..., :3].std() > 1  # not a blank frame
