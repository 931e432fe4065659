"""benchmarks/real_images.py: box matching on hand-made boxes, and a clear refusal without ../shared."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("real_images", ROOT / "benchmarks" / "real_images.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["real_images"] = bench  # dataclasses look their module up
_spec.loader.exec_module(bench)

ARDAGEN = ROOT.parent / "shared" / "real" / "ardagen"


def test_matching_is_one_to_one_inside_box_or_within_half_its_size():
    boxes = np.array([[10.0, 10.0, 8.0, 8.0],     # detections (11, 9) and (12, 12): one match, one spare
                      [40.0, 10.0, 4.0, 20.0],    # (40, 18): inside the tall box (|dy| 8 ≤ 10)
                      [70.0, 70.0, 6.0, 6.0]])    # (74, 70): outside, and 4 px > max(w, h)/2 = 3: no match
    det = np.array([[11.0, 9.0], [12.0, 12.0], [40.0, 18.0], [74.0, 70.0], [90.0, 90.0]])
    assert bench.match_detections(det, boxes) == (2, 3, 1)
    # within half the box size of the centre but outside it (a thin box): a match
    assert bench.match_detections(np.array([[13.0, 10.0]]), np.array([[10.0, 10.0, 2.0, 8.0]])) == (1, 0, 0)
    # one detection between two boxes matches one of them only; nothing at all
    assert bench.match_detections(np.array([[15.0, 10.0]]), np.array([[12.0, 10.0, 8.0, 8.0],
                                                                     [18.0, 10.0, 8.0, 8.0]])) == (1, 0, 1)
    assert bench.match_detections(np.zeros((0, 2)), boxes) == (0, 0, 3)
    s = bench.scores(2, 3, 1)
    assert s["recall"] == pytest.approx(2 / 3) and s["precision"] == pytest.approx(0.4)
    assert s["f1"] == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))


def test_yolo_boxes_in_pixels_and_centroids(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("0 0.25 0.5 0.1 0.2\n0 0.75 0.5 0.1 0.2\n")
    boxes = bench.load_boxes(f, (50, 100))
    assert boxes.tolist() == [[25.0, 25.0, 10.0, 10.0], [75.0, 25.0, 10.0, 10.0]]
    labels = np.zeros((50, 100), np.int32)
    labels[20:31, 20:31] = 1
    labels[20:31, 70:81] = 2
    assert bench.centroids_of_labels(labels).tolist() == [[25.0, 25.0], [75.0, 25.0]]
    assert bench.match_detections(bench.centroids_of_labels(labels), boxes) == (2, 0, 0)


def test_refuses_cleanly_without_the_real_images(tmp_path, capsys):
    assert bench.main(["--root", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert "no real images" in err and "../shared/real/ardagen" in err and "Traceback" not in err


@pytest.mark.skipif(not (ARDAGEN / "images").is_dir(), reason="../shared/real/ardagen is not beside the repository")
def test_polarity_of_a_real_haadf_and_a_bright_field_image():
    for stem, polarity in (("Cu1", "bright"), ("PtC1", "dark")):
        image = bench.read_grey(ARDAGEN / "images" / f"{stem}.jpg")
        boxes = bench.load_boxes(ARDAGEN / "labels" / f"{stem}.txt", image.shape)
        assert bench.polarity_from_boxes(image, boxes) == polarity
