"""The DistributedDataParallel code path, on CPU with the gloo backend and 2 processes (what
``torchrun --nproc_per_node 2 -m nanoseg train …`` runs)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from conftest import disks_image
from nanoseg.datasets import DatasetWriter


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    import os

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    from nanoseg.train import TrainConfig, train_model

    cfg = TrainConfig(model="sytwu_resunet", model_config={"depth": 2, "filters": [4, 4, 4]}, patch_size=32,
                      epochs=2, batch_size=4, device="cpu", lr=1e-2)
    train_model([data], cfg, out, progress=False)


@pytest.mark.slow
def test_ddp_gloo_two_processes(tmp_path):
    data = tmp_path / "disks"
    with DatasetWriter(data) as w:
        for i in range(6):
            image, mask = disks_image((64, 64), ((20, 20, 8), (44, 40, 6)), noise=0.1, seed=i)
            w.add(f"im{i}", image, mask, {"pixel_size_nm": 0.05})
    out = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(out)), nprocs=2, join=True)
    from nanoseg.models import load_model

    loaded = load_model(out)
    assert loaded.card.training["processes"] == 2 and "2 processes" in loaded.card.training["machine"]
    # each process saw half of every epoch: 4 training images × 4 patches / 2 processes / batch 4 = 2 steps
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["finished"]
    steps = state["optimizer"]["state"][0]["step"]
    assert int(steps) == 2 * 2
    assert np.isfinite(loaded.card.metrics["val_loss"])
