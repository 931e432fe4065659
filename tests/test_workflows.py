"""nanoseg.workflows: each user recipe is one call (issue #17); here ``evaluate_folder`` (``nanoseg evaluate``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import disks_image
from nanoseg.datasets import DatasetWriter, open_dataset
from nanoseg.errors import NanosegError
from nanoseg.io import write_tiff
from nanoseg.workflows.evaluate import evaluate_folder


@pytest.fixture
def dataset_and_predictions(tmp_path):
    with DatasetWriter(tmp_path / "ds") as writer:
        for i in range(2):
            image, mask = disks_image((48, 48), ((16, 16, 6 + i), (34, 30, 7)), seed=i)
            writer.add(f"im{i}", image, mask, {"pixel_size_nm": 0.2})
    ds = open_dataset(tmp_path / "ds")
    for image_id in ds.ids:  # a perfect prediction folder, as `nanoseg predict` names its files
        write_tiff(tmp_path / "preds" / f"{image_id}.probability.tif",
                   ds.mask(image_id).astype(np.float32) * 0.8 + 0.1, pixel_size_nm=0.2)
    return tmp_path / "ds", tmp_path / "preds"


def test_evaluate_folder_is_the_whole_evaluate_verb(tmp_path, dataset_and_predictions):
    dataset, predictions = dataset_and_predictions
    pd.DataFrame({"diameter_nm": [2.5, 2.8, 2.9]}).to_csv(tmp_path / "manual.csv", index=False)
    started = []
    run = evaluate_folder(predictions, dataset, tmp_path / "ev", threshold="0.5", reference_sizes=tmp_path / "manual.csv",
                          progress=False, on_start=started.append, n_worst=1)
    assert run.source_kind == "predictions" and run.n_images == 2
    assert started == [f"evaluating 2 images ({predictions})"]
    assert run.summary_lines()[0] == "dice: 1.000 ± 0.000 (per-image mean ± std)"
    assert any(line.startswith("sizes: mean") and "manual" in line for line in run.summary_lines())
    assert {p.name for p in run.written} >= {"metrics.csv", "summary.csv", "thresholds.csv"}
    assert list(pd.read_csv(tmp_path / "ev" / "metrics.csv")["id"]) == ["im0", "im1"]


def test_evaluate_folder_refuses_a_bad_threshold_before_any_work(tmp_path, dataset_and_predictions):
    dataset, predictions = dataset_and_predictions
    with pytest.raises(NanosegError, match="threshold must be a number in \\(0, 1\\) or 'otsu'"):
        evaluate_folder(predictions, dataset, tmp_path / "ev", threshold="half", progress=False)
    assert not (tmp_path / "ev").exists()
