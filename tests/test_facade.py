"""The top-level facade (``import nanoseg as ns``): lazy, complete for the README tour, callable verbs."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nanoseg as ns

README = Path(__file__).resolve().parents[1] / "README.md"

FACADE_NAMES = ["read", "read_series", "predict", "label_particles", "particle_table", "evaluate", "evaluate_folder", "track",
                "simulate", "train", "load_model", "Micrograph", "Series", "Pipeline", "open_dataset",
                "SimulationConfig", "TrainConfig", "NanosegError"]


def test_import_nanoseg_imports_no_heavy_library():
    code = ("import sys, nanoseg; heavy = [m for m in ('numpy', 'torch', 'pandas', 'nanoseg.io', 'nanoseg.infer') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_facade_names_resolve_and_are_listed():
    listed = dir(ns)
    for name in FACADE_NAMES:
        assert name in listed, name
        assert getattr(ns, name) is not None
    assert set(FACADE_NAMES) <= set(ns.__all__)
    assert ns.read is __import__("nanoseg.io", fromlist=["read"]).read
    assert ns.track.__name__ == "track_movie"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        ns.nonexistent  # noqa: B018


def test_verb_packages_are_callable_and_keep_their_contents():
    from nanoseg.evaluate import evaluate_dataset
    from nanoseg.simulate import simulate_image
    from nanoseg.train import train_model

    assert callable(ns.evaluate) and ns.evaluate.dice is not None
    assert "predictions" in inspect.signature(ns.evaluate).parameters
    assert inspect.signature(ns.simulate) == inspect.signature(simulate_image)
    assert inspect.signature(ns.train) == inspect.signature(train_model)
    assert inspect.signature(ns.evaluate) == inspect.signature(evaluate_dataset)
    import nanoseg.evaluate.pixel as pixel  # sub-modules still import as modules

    assert pixel.dice is ns.evaluate.dice


def test_ns_evaluate_runs_evaluate_dataset(tmp_path):
    from nanoseg.datasets import DatasetWriter, open_dataset

    yy, xx = np.mgrid[:32, :32]
    mask = (yy - 16) ** 2 + (xx - 16) ** 2 < 36
    with DatasetWriter(tmp_path / "ds") as writer:
        writer.add("a", mask.astype(np.float32), mask, {"pixel_size_nm": 0.1})
    ds = open_dataset(tmp_path / "ds")
    ev = ns.evaluate(ds, {"a": mask.astype(np.float32)})
    assert ev.per_image["dice"].iloc[0] == pytest.approx(1.0)


def _readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_tour_runs_through_the_facade(tmp_path, monkeypatch):
    """Every ``python`` block of README.md runs, on tiny files named as in the tour."""
    from nanoseg.io import example_micrograph, write_tiff

    blocks = _readme_python_blocks()
    assert blocks, "README.md has no python block"
    for block in blocks:  # the tour uses the facade only
        assert "import nanoseg as ns" in block
        assert not re.search(r"^\s*from nanoseg", block, flags=re.M), block
    m = example_micrograph()
    # 128² px (2.6 nm): the tour runs in seconds. A 96² crop cuts the particles to slivers at the model's
    # 0.04 nm/px (48² px); the v3 model's peak probability there is 0.497 (v2: 0.568), a coin toss
    crop = m.data[64:192, 64:192]
    monkeypatch.chdir(tmp_path)
    write_tiff("image.tif", crop, pixel_size_nm=m.pixel_size_nm)
    write_tiff("movie.tif", np.stack([crop, np.roll(crop, 1, axis=1), np.roll(crop, 2, axis=1)]),
               pixel_size_nm=m.pixel_size_nm)
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert len(namespace["table"]) >= 1


def test_internals_left_all_but_stay_importable_from_their_package():
    from nanoseg import infer, io, models
    from nanoseg.infer import tile_layout, tiled_apply  # old code keeps working
    from nanoseg.infer.tiling import tiled_apply as from_module

    assert tiled_apply is from_module and callable(tile_layout)
    assert "tiled_apply" not in infer.__all__ and "tiled_apply" in dir(infer)
    assert "predict" in infer.__all__ and "read" in io.__all__ and "load_model" in models.__all__
    with pytest.raises(ImportError):
        from nanoseg.infer import no_such_name  # noqa: F401


@pytest.mark.parametrize("make", [
    lambda: __import__("nanoseg.train", fromlist=["TrainConfig"]).TrainConfig(epochs=-1),
    lambda: __import__("nanoseg.train", fromlist=["TrainConfig"]).TrainConfig(no_such_option=1),
    lambda: __import__("nanoseg.simulate", fromlist=["SimulationConfig"]).SimulationConfig(image_size_px=-5),
    lambda: __import__("nanoseg.simulate", fromlist=["SimulationConfig"]).SimulationConfig(no_such_key=1),
], ids=["train-value", "train-unknown", "simulate-value", "simulate-unknown"])
def test_config_constructors_raise_nanoseg_error(make):
    with pytest.raises(ns.NanosegError, match="invalid (training config|simulation spec)") as info:
        make()
    assert "ValidationError" not in str(info.value) and info.value.hint


def test_config_constructor_and_from_dict_say_the_same():
    from nanoseg.simulate import SimulationConfig
    from nanoseg.train import TrainConfig

    for cls, parse, bad in [(TrainConfig, TrainConfig.from_dict, {"epochs": 0}),
                            (SimulationConfig, SimulationConfig.parse, {"pixel_size_nm": -1})]:
        with pytest.raises(ns.NanosegError) as direct:
            cls(**bad)
        with pytest.raises(ns.NanosegError) as parsed:
            parse(bad)
        assert str(direct.value) == str(parsed.value)
    assert TrainConfig(epochs=3).epochs == 3 and SimulationConfig(name="x").name == "x"


def test_one_name_one_meaning():
    """Names that meant different things in different packages now mean one thing each (old names warn)."""
    import warnings

    from nanoseg.explain import _network
    from nanoseg.infer import engine
    from nanoseg.models.device import resolve_device
    from nanoseg.simulate import labels
    from nanoseg.train import loop

    assert engine.resolve_device is resolve_device and loop.resolve_device is resolve_device
    with pytest.raises(ns.NanosegError, match="cuda"):
        if __import__("torch").cuda.is_available():
            raise ns.NanosegError("cuda present: nothing to check")
        resolve_device("cuda")
    assert hasattr(_network, "network_logits") and hasattr(labels, "footprint_labels")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels.instance_labels([], shape=(4, 4), pixel_size_A=1.0)
    assert any("footprint_labels" in str(w.message) for w in caught)


def test_frame_statistics_share_one_definition():
    from nanoseg.datasets.imagestats import image_statistics
    from nanoseg.simulate.movie import image_statistics as movie_statistics

    rng = np.random.default_rng(0)
    image = rng.normal(size=(48, 40))
    mask = np.zeros(image.shape, bool)
    mask[10:20, 5:25] = True
    image[mask] -= 1.0
    a, b = image_statistics(image, mask), movie_statistics(image, mask)
    assert b["contrast"] == pytest.approx(a["contrast"], rel=1e-12)
    assert b["roughness"] == pytest.approx(a["roughness"], rel=1e-9)


def test_atomic_writes_go_through_one_helper():
    """Files are moved into place by nanoseg._util.atomic_path only (no hand-written tmp + os.replace)."""
    import ast

    src = Path(ns.__file__).parent
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "_util.py" and path.parent == src:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("replace", "rename")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"):
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not found, found


def test_one_minimum_size_cut():
    """label_particles (labels, given or found) and the table-level cut keep exactly the same particles."""
    from nanoseg._pixel import above_min_diameter, min_area_px

    px, d_min = 0.1, 1.0
    need = min_area_px(d_min, px)  # π·5² ≈ 78.5 px
    labels = np.zeros((40, 40), np.int32)
    labels[2:11, 2:11] = 1   # 81 px: kept
    labels[20:28, 20:30] = 2  # 80 px: kept
    labels[30:37, 2:13] = 3   # 77 px: dropped
    for given in (labels, labels > 0):
        out = ns.label_particles(given, pixel_size_nm=px, min_diameter_nm=d_min, split_touching=False)
        kept = np.bincount(out.ravel())[1:]
        assert sorted(kept.tolist()) == [80, 81]
    table = ns.particle_table(labels, pixel_size_nm=px)
    assert above_min_diameter(table["diameter_nm"], d_min).tolist() == [a >= need for a in (81, 80, 77)]
    assert above_min_diameter(table["diameter_nm"], 0).all() and above_min_diameter(table["diameter_nm"], None).all()
