"""nanoseg.train.loop: a tiny training gives exactly the numbers it gave before ``_train`` was split into steps.

The numbers were recorded on the code before the split (issue #17 item 5): 3 epochs of ``unet3`` on six 48²
disk images, one CPU thread. A change in the data step, the model step, the epoch loop, the selection of the
best epoch or the card shows up here as a different loss sequence or card.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import disks_image
from nanoseg.datasets import DatasetWriter
from nanoseg.models import load_model
from nanoseg.train import TrainConfig, train_model

RECORDED = {  # history.csv before the split
    "train_loss": [0.6894645094871521, 0.610146701335907, 0.5099825263023376],
    "val_loss": [0.5867623090744019, 0.47044825553894043, 0.30365556478500366],
    "val_hard_dice": [0.012500000186264515, 0.027027027681469917, 0.029411764815449715],
    "val_soft_dice": [0.05566404014825821, 0.058232735842466354, 0.06829920411109924],
}
RECORDED_METRICS = {"val_loss": 0.30365556478500366, "test_loss": 0.37203964591026306,
                    "test_hard_dice": 0.038550056517124176, "test_soft_dice": 0.12467609345912933,
                    "n_test_patches": 2}
RECORDED_IMAGE_STATISTICS = {"roughness": (0.1098475974634419, 0.1257795799394959),
                             "noise": (0.807189282209829, 0.849042254129648),
                             "contrast": (2.0769742806246665, 2.1943708357156364)}


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _six_disk_images(root):
    rng = np.random.default_rng(0)
    with DatasetWriter(root) as writer:
        for i in range(6):
            disks = [(int(rng.integers(10, 38)), int(rng.integers(10, 38)), int(rng.integers(4, 8))) for _ in range(2)]
            image, mask = disks_image((48, 48), disks, noise=0.15, seed=i)
            writer.add(f"im{i}", np.clip(image, 0, None) * 100, mask,
                       {"pixel_size_nm": 0.05, "material": "Au", "dose_e_per_A2": 400.0 + i, "session": f"s{i // 2}"})
    return root


def test_tiny_training_repeats_the_recorded_losses_and_card(tmp_path, one_thread):
    data = _six_disk_images(tmp_path / "disks")
    config = TrainConfig(model="unet3", patch_size=32, lr=1e-2, batch_size=4, device="cpu", epochs=3)
    out = train_model([data], config, tmp_path / "run", progress=False)
    history = pd.read_csv(out / "history.csv")
    for column, values in RECORDED.items():
        np.testing.assert_allclose(history[column].to_numpy(), values, rtol=1e-6, atol=1e-7, err_msg=column)
    card = load_model(out).card
    for name, value in RECORDED_METRICS.items():
        assert card.metrics[name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    assert card.training["best_epoch"] == 3
    assert set(card.image_statistics) == set(RECORDED_IMAGE_STATISTICS)
    for name, (low, high) in RECORDED_IMAGE_STATISTICS.items():
        assert tuple(card.image_statistics[name]) == pytest.approx((low, high), rel=1e-9), name
