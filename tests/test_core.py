"""Micrograph, Series, dataset store, model card, shared helpers."""

from __future__ import annotations

import numpy as np
import pytest

from nanoseg._util import BatchReport, atomic_path
from nanoseg.datasets import DatasetWriter, open_dataset
from nanoseg.errors import NanosegError
from nanoseg.io import Micrograph, Series
from nanoseg.models.card import ModelCard


def test_micrograph_casts_and_validates():
    m = Micrograph(np.arange(6, dtype=np.int16).reshape(2, 3), pixel_size_nm=0.5)
    assert m.data.dtype == np.float32 and m.field_of_view_nm == (1.0, 1.5)
    with pytest.raises(NanosegError, match="2-D"):
        Micrograph(np.zeros((2, 2, 2)), source="stack.tif")
    with pytest.raises(NanosegError, match="pixel size"):
        Micrograph(np.zeros((2, 2)), pixel_size_nm=-1)
    with pytest.raises(NanosegError, match="NaN"):
        Micrograph(np.full((2, 2), np.nan)).check_finite()


def test_series_is_lazy_and_ordered():
    loads = []
    frames = np.arange(12, dtype=float).reshape(3, 2, 2)
    s = Series.from_array(frames, frame_interval_s=0.5, pixel_size_nm=0.18)
    s._loader = (lambda inner: (lambda i: loads.append(i) or inner(i)))(s._loader)
    assert loads == []
    frame = s[2]
    assert frame.data[0, 0] == 8 and frame.metadata["time_s"] == 1.0 and loads == [2]
    with pytest.raises(NanosegError, match="decrease"):
        Series(lambda i: None, [0.0, 2.0, 1.0])


def test_dataset_round_trip_and_resume(tmp_path):
    image = np.random.default_rng(0).normal(size=(16, 12)).astype(np.float32)
    mask = (image > 0).astype(np.uint8) * 255
    with DatasetWriter(tmp_path / "ds") as writer:
        writer.add("a", image, mask, {"pixel_size_nm": 0.02, "dose_e_per_A2": 423.0, "material": "Au"},
                   instances=mask.astype(np.int32) // 255)
    writer = DatasetWriter(tmp_path / "ds")
    assert writer.has("a") and not writer.has("b")
    writer.add("b", image[:8], mask[:8], {"pixel_size_nm": 0.042, "dose_e_per_A2": 80.0, "material": "Ag"})
    writer.close()
    ds = open_dataset(tmp_path / "ds")
    assert ds.ids == ["a", "b"]
    np.testing.assert_array_equal(ds.image("a"), image)
    assert set(np.unique(ds.mask("a"))) <= {0, 1} and ds.mask("a").sum() == (mask > 0).sum()
    assert ds.instances("b") is None and ds.instances("a").max() == 1
    assert ds.micrograph("b").pixel_size_nm == pytest.approx(0.042)
    assert ds.query(material="Au") == ["a"]
    assert ds.query(pixel_size_nm=0.021, tolerance=0.1) == ["a"]
    assert ds.query(dose_e_per_A2=(50, 100)) == ["b"]
    with pytest.raises(NanosegError, match="no metadata column"):
        ds.query(colour="red")


def test_dataset_rejects_bad_input(tmp_path):
    with pytest.raises(NanosegError, match="not a nanoseg dataset"):
        open_dataset(tmp_path)
    with DatasetWriter(tmp_path / "ds") as writer, pytest.raises(NanosegError, match="NaN"):
        writer.add("x", np.full((4, 4), np.nan), np.zeros((4, 4)))


def test_card_round_trip_keeps_extra_fields():
    card = ModelCard(architecture="norm_unet", pixel_size_nm=0.02, notes="kept")
    again = ModelCard.model_validate_json(card.model_dump_json())
    assert again.pixel_size_nm == 0.02 and again.notes == "kept" and again.format_version == 1


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_batch_report_collects_user_errors_only():
    report = BatchReport()
    with report.item("good"):
        pass
    with report.item("bad"):
        raise NanosegError("truncated file", hint="re-export")
    with pytest.raises(ZeroDivisionError), report.item("bug"):
        1 / 0  # noqa: B018
    assert report.done == ["good"] and report.failed[0][0] == "bad" and not report.ok


def test_atomic_path_output_follows_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
