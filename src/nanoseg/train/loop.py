"""The training loop: grouped split → patches → train with checkpoint selection, resume and a model card.

A run writes into ``out_dir``:

* ``weights.safetensors`` + ``card.json`` — the selected (best) model, loadable with
  :func:`nanoseg.models.load_model`;
* ``last.pt`` — the state after the last finished epoch (model, optimizer, scheduler, best weights, history,
  RNG state; torch tensors and plain containers only, loadable with ``weights_only=True``), used to resume;
* ``history.csv`` (one row per epoch), ``split.json`` (image ids per split), ``curves.png``.

Determinism: the model is initialised from ``seed``; the shuffling order of epoch ``e`` and the
augmentation of every sample derive from ``(seed, e, index)``; the global torch RNG is saved with each
epoch. A resumed run therefore ends with the same weights as an uninterrupted one (on CPU).

Multi-GPU: when ``WORLD_SIZE`` > 1 (``torchrun --nproc_per_node N -m nanoseg train …``) the model is wrapped
in ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPU), each process takes its share of every epoch's
order, and only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nanoseg.datasets.imagestats import image_statistics
from nanoseg.datasets.patches import PatchSet, extract_patches
from nanoseg.datasets.splits import Split, grouped_split
from nanoseg.datasets.store import Dataset, open_dataset
from nanoseg.datasets.torchdata import PatchDataset
from nanoseg.errors import NanosegError
from nanoseg.models import ModelCard, build_model, count_parameters, receptive_field, save_model
from nanoseg.models.device import resolve_device
from nanoseg.models.zoo import config_dict
from nanoseg.train.config import TrainConfig
from nanoseg.train.losses import SegmentationLoss, hard_dice, inverse_frequency_weights, soft_dice

LAST, HISTORY, SPLIT, CURVES = "last.pt", "history.csv", "split.json", "curves.png"


# ------------------------------------------------------------------------------------------ data
@dataclass
class TrainingData:
    """Several datasets seen as one: ``meta`` has a unique ``id`` per image (``name:id`` when several)."""

    datasets: list[Dataset]
    names: list[str]
    meta: pd.DataFrame
    keys: dict[str, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def open(cls, dataset_dirs: Sequence[str | os.PathLike] | str | os.PathLike) -> TrainingData:
        if isinstance(dataset_dirs, (str, os.PathLike)):
            dataset_dirs = [dataset_dirs]
        if not dataset_dirs:
            raise NanosegError("no training dataset given")
        datasets = [open_dataset(d) for d in dataset_dirs]
        names = []
        for ds in datasets:
            name = str(ds.info.get("name") or ds.root.name)
            while name in names:
                name += "_"
            names.append(name)
        frames, keys = [], {}
        several = len(datasets) > 1
        for i, (ds, name) in enumerate(zip(datasets, names, strict=True)):
            if len(ds) == 0:
                raise NanosegError("dataset has no images", path=ds.root)
            frame = ds.meta.copy()
            frame["image_id"] = frame["id"].astype(str)
            frame["dataset"] = name
            if several:
                frame["id"] = name + ":" + frame["image_id"]
                for col in ("session", "source"):
                    if col in frame:
                        frame[col] = frame[col].map(lambda v, n=name: v if pd.isna(v) else f"{n}:{v}")
            for key, image_id in zip(frame["id"], frame["image_id"], strict=True):
                keys[str(key)] = (i, image_id)
            frames.append(frame)
        meta = pd.concat(frames, ignore_index=True)
        return cls(datasets, names, meta, keys)

    def rows(self, ids: Sequence[str]) -> pd.DataFrame:
        return self.meta[self.meta["id"].isin(list(ids))]

    def patches(self, ids: Sequence[str], config: TrainConfig, pipeline, *, progress: bool = False) -> PatchSet:
        by_dataset: dict[int, list[str]] = {}
        for key in ids:
            i, image_id = self.keys[str(key)]
            by_dataset.setdefault(i, []).append(image_id)
        sets = []
        for i, image_ids in sorted(by_dataset.items()):
            p = extract_patches(self.datasets[i], patch_size=config.patch_size, stride=config.stride,
                                min_particle_px=config.min_particle_px, ids=image_ids,
                                pixel_size_nm=config.pixel_size_nm, pipeline=pipeline, progress=progress)
            p.table["dataset"] = self.names[i]
            sets.append(p)
        sets = [s for s in sets if len(s)]
        if not sets:
            return PatchSet(np.zeros((0, config.patch_size, config.patch_size), np.float32),
                            np.zeros((0, config.patch_size, config.patch_size), np.uint8), pd.DataFrame())
        return PatchSet.concatenate(sets)


def _pipeline(config: TrainConfig):
    from nanoseg.preprocess import Pipeline

    try:
        return Pipeline.from_spec(config.preprocessing)
    except NanosegError:
        raise
    except Exception as exc:  # a malformed spec
        raise NanosegError(f"invalid preprocessing spec ({exc})", hint="a list of {name: step, ...} dicts") from exc


# ------------------------------------------------------------------------------------------ device, ddp
# resolve_device: nanoseg.models.device (the one definition, shared with inference)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: torch.device) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        here = True
    return _Dist(rank, world, local, here)


def _machine(device: torch.device, world: int) -> str:
    cpu = f"{os.cpu_count()} CPU cores, {platform.machine()}, {platform.system()}"
    if device.type == "cuda":
        return f"{world}× {torch.cuda.get_device_name(device)} ({cpu})"
    return f"CPU: {cpu}" + (f", {world} processes" if world > 1 else "")


# ------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate_patches(model: nn.Module, dataset: PatchDataset, loss_fn: nn.Module, *, device: torch.device,
                     batch_size: int = 8, amp_dtype=None) -> dict[str, float]:
    """Mean loss (per patch), hard Dice and soft Dice (means over patches) of a model on patches."""
    if len(dataset) == 0:
        return {"loss": math.nan, "hard_dice": math.nan, "soft_dice": math.nan, "n": 0}
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    total_loss, hd, sd, n = 0.0, 0.0, 0.0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(images)
        logits = logits.float()
        total_loss += float(loss_fn(logits, masks)) * len(images)
        hd += float(hard_dice(logits, masks).sum())
        sd += float(soft_dice(logits, masks).sum())
        n += len(images)
    return {"loss": total_loss / n, "hard_dice": hd / n, "soft_dice": sd / n, "n": n}


# ------------------------------------------------------------------------------------------ card
def _range(values) -> tuple[float, float] | None:
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return (float(v.min()), float(v.max())) if len(v) else None


def _diameters(rows: pd.DataFrame) -> tuple[float, float] | None:
    values: list[float] = []
    if "diameters_nm" in rows:
        for text in rows["diameters_nm"].dropna():
            try:
                values += [float(x) for x in (json.loads(text) if isinstance(text, str) else text)]
            except (ValueError, TypeError):
                continue
    if not values and "diameter_nm" in rows:
        values = list(pd.to_numeric(rows["diameter_nm"], errors="coerce").dropna())
    return (float(min(values)), float(max(values))) if values else None


def _strings(rows: pd.DataFrame, column: str) -> list[str]:
    return sorted({str(v) for v in rows[column].dropna()}) if column in rows else []


def training_image_statistics(data: TrainingData, ids: Sequence[str], *, max_images: int = 200,
                              seed: int = 0) -> dict[str, tuple[float, float]]:
    """1st–99th percentile range over training images of the statistics inference uses to warn about
    out-of-distribution inputs (:func:`nanoseg.datasets.imagestats.image_statistics`: contrast, roughness,
    noise)."""
    ids = list(ids)
    if len(ids) > max_images:
        ids = list(np.random.default_rng(seed).choice(ids, max_images, replace=False))
    values: dict[str, list[float]] = {}
    for key in ids:
        i, image_id = data.keys[str(key)]
        ds = data.datasets[i]
        stats = image_statistics(ds.image(image_id), ds.mask(image_id).astype(bool))
        for name, v in stats.items():
            values.setdefault(name, []).append(float(v))
    return {k: (float(np.percentile(v, 1)), float(np.percentile(v, 99))) for k, v in values.items() if v}


def build_card(model: nn.Module, config: TrainConfig, data: TrainingData, split: Split, *,
               training: dict[str, Any], metrics: dict[str, Any], name: str | None = None) -> ModelCard:
    """The model card of a finished run, with the training distribution taken from the metadata."""
    seen = data.rows(split.train_ids + split.val_ids)
    pixel = config.pixel_size_nm
    if pixel is None and "pixel_size_nm" in seen:
        sizes = pd.to_numeric(seen["pixel_size_nm"], errors="coerce").dropna().unique()
        pixel = float(sizes[0]) if len(sizes) == 1 else None
    net = getattr(model, "module", model)
    return ModelCard(
        name=name, architecture=net.architecture, config=config_dict(net), n_parameters=count_parameters(net),
        receptive_field_px=receptive_field(net), preprocessing=list(config.preprocessing), pixel_size_nm=pixel,
        pixel_size_range_nm=_range(seen.get("pixel_size_nm", [])),
        dose_range_e_per_A2=_range(seen.get("dose_e_per_A2", [])),
        voltage_range_kV=_range(seen.get("voltage_kV", [])),
        particle_diameter_range_nm=_diameters(seen),
        materials=_strings(seen, "material"), supports=_strings(seen, "support"),
        detectors=_strings(seen, "detector"), dataset_ids=list(data.names),
        image_statistics=training_image_statistics(data, split.train_ids + split.val_ids, seed=config.seed),
        training=training, metrics=metrics, seed=config.seed,
    )


# ------------------------------------------------------------------------------------------ curves
def plot_curves(history: pd.DataFrame, path: Path, *, best_epoch: int | None = None) -> Path:
    """Training and validation loss, validation hard Dice per epoch (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(history["epoch"], history["train_loss"], label="train")
    a.plot(history["epoch"], history["val_loss"], label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(history["epoch"], history["val_hard_dice"], color="C2", label="val hard Dice")
    b.plot(history["epoch"], history["val_soft_dice"], color="C2", ls="--", label="val soft Dice")
    b.set_xlabel("epoch")
    b.set_ylabel("Dice")
    b.set_ylim(0, 1)
    b.legend()
    if best_epoch is not None:
        for ax in (a, b):
            ax.axvline(best_epoch, color="grey", ls=":", lw=1)
    fig.tight_layout()
    from nanoseg._util import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ training
def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimizer):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size_epochs, gamma=config.step_gamma)
    return None


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


def _is_better(score: float, best: float | None, selection: str) -> bool:
    """Whether this epoch's validation ``score`` replaces the kept state (``selection="last"``: always).

    >>> _is_better(0.2, 0.3, "val_loss"), _is_better(0.2, 0.3, "val_dice"), _is_better(0.2, 0.3, "last")
    (True, False, True)
    """
    if selection == "last":
        return True
    if math.isnan(score):
        return False
    if best is None:
        return True
    return score < best if selection == "val_loss" else score > best


class _Progress:
    """Rich progress: one bar over epochs with loss and validation Dice."""

    def __init__(self, enabled: bool, total: int, description: str):
        self.bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}  val loss {task.fields[val_loss]}  "
                                       "val Dice {task.fields[dice]}"), TimeElapsedColumn(),
                            console=Console(stderr=True))
        self.bar.start()
        self.task = self.bar.add_task(description, total=total, loss="–", val_loss="–", dice="–")

    def update(self, completed: int, row: dict | None = None) -> None:
        if self.bar is None:
            return
        fields = {}
        if row is not None:
            fields = {"loss": f"{row['train_loss']:.4f}", "val_loss": f"{row['val_loss']:.4f}",
                      "dice": f"{row['val_hard_dice']:.3f}"}
        self.bar.update(self.task, completed=completed, **fields)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def train_model(dataset_dirs, config: TrainConfig | dict, out_dir: str | os.PathLike, *, progress: bool = True,
                resume: bool = True, split: Split | None = None, name: str | None = None,
                on_epoch_end: Callable[[int, dict], None] | None = None) -> Path:
    """Train one model and write a checkpoint directory (see the module docstring); returns ``out_dir``.

    Parameters
    ----------
    dataset_dirs : one or several dataset directories (``nanoseg.datasets`` format).
    config : a :class:`TrainConfig` (or a dict of its fields).
    out_dir : checkpoint directory; a finished run there is returned as is when ``resume``.
    progress : show a Rich progress bar (epoch, loss, validation Dice).
    resume : continue from ``last.pt`` after an interruption (False starts over).
    split : a precomputed :class:`~nanoseg.datasets.splits.Split` (cross-validation); default a grouped
        ``1 − val − test`` / ``val`` / ``test`` split by ``config.group_by`` with ``config.seed``.
    on_epoch_end : called as ``on_epoch_end(epoch, history_row)`` after each epoch (rank 0).

    Example
    -------
    >>> # train_model(["data/au5"], TrainConfig(model="norm_unet", epochs=20), "runs/norm")
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    out = Path(out_dir)
    device = resolve_device(config.device)
    dist_info = _setup_distributed(device)
    if dist_info.world > 1 and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        return _train(dataset_dirs, config, out, device, dist_info, progress=progress, resume=resume, split=split,
                      name=name, on_epoch_end=on_epoch_end)
    finally:
        torch.set_num_threads(threads)
        if dist_info.initialized_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(dataset_dirs, config: TrainConfig, out: Path, device: torch.device, dist_info: _Dist, *,
           progress: bool, resume: bool, split: Split | None, name: str | None,
           on_epoch_end) -> Path:
    """One training run, in named steps: data, model, resume, the epoch loop, selection, card."""
    start_time = time.time()
    main = dist_info.main
    if _already_finished(out, resume=resume, main=main):
        return out
    data = _data_step(dataset_dirs, config, split, show=progress and main)
    parts = _model_step(config, device, data)
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    run = _resume_step(out, config_json, parts) if resume and (out / LAST).exists() else _RunState()
    stopped_early = _epoch_loop(config, device, dist_info, data, parts, run, out=out, config_json=config_json,
                                show=progress and main, on_epoch_end=on_epoch_end)
    test = _selection_step(config, device, data, parts, run)
    if not main:
        return out
    _card_step(config, device, dist_info, data, parts, run, test, out=out, name=name, start_time=start_time,
               stopped_early=stopped_early)
    return out


def _already_finished(out: Path, *, resume: bool, main: bool) -> bool:
    """True when ``out`` holds a finished run to keep; otherwise prepares the folder (cleared unless resuming)."""
    card_path = out / "card.json"
    if resume and card_path.exists() and not (out / LAST).exists():
        return True  # finished earlier: nothing to do
    if resume and card_path.exists() and (out / LAST).exists():
        state = torch.load(out / LAST, map_location="cpu", weights_only=True)
        if state.get("finished"):
            return True
    if not resume and main and out.exists():
        for item in (LAST, HISTORY, SPLIT, CURVES, "card.json", "weights.safetensors"):
            (out / item).unlink(missing_ok=True)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    return False


@dataclass
class _RunData:
    """The data step's result: the split, the patch sets and their torch datasets."""

    data: TrainingData
    split: Split
    train_p: PatchSet
    val_p: PatchSet
    test_p: PatchSet
    train_ds: PatchDataset
    val_ds: PatchDataset
    test_ds: PatchDataset


def _data_step(dataset_dirs, config: TrainConfig, split: Split | None, *, show: bool) -> _RunData:
    """Open the datasets, split them by group, cut the patches and wrap them as torch datasets."""
    data = TrainingData.open(dataset_dirs)
    if split is None:
        split = grouped_split(data.meta, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                              group_by=config.group_by, seed=config.seed)
    pipeline = _pipeline(config)
    raw = config.augmentation.needs_raw_counts
    train_p = data.patches(split.train_ids, config, None if raw else pipeline, progress=show)
    val_p = data.patches(split.val_ids, config, None if raw else pipeline)
    test_p = data.patches(split.test_ids, config, None if raw else pipeline)
    if len(train_p) == 0:
        raise NanosegError("no training patches (images smaller than a patch, or none above min_particle_px)",
                           hint="lower patch_size or min_particle_px")
    if len(val_p) == 0:
        raise NanosegError("no validation patches", hint="lower min_particle_px or add images")
    if config.max_patches is not None and len(train_p) > config.max_patches:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(train_p), config.max_patches, replace=False))
        train_p = train_p.subset(keep)

    def doses(p: PatchSet):
        return p.table["dose_e_per_A2"].to_numpy(float) if raw and "dose_e_per_A2" in p.table else None

    train_ds = PatchDataset(train_p.images, train_p.masks, augment=None if config.augmentation.is_identity
                            else config.augmentation, seed=config.seed,
                            pipeline=pipeline if raw else None, doses_e_per_A2=doses(train_p))
    val_ds = PatchDataset(val_p.images, val_p.masks, pipeline=pipeline if raw else None)
    test_ds = PatchDataset(test_p.images, test_p.masks, pipeline=pipeline if raw else None)
    return _RunData(data, split, train_p, val_p, test_p, train_ds, val_ds, test_ds)


@dataclass
class _ModelParts:
    """The model step's result: network, loss, optimizer, schedule and mixed-precision settings."""

    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    particle_fraction: float


def _model_step(config: TrainConfig, device: torch.device, data: _RunData) -> _ModelParts:
    """Build the network (seeded), the loss (class weights from the training patches) and the optimizer."""
    size_multiple = build_model(config.model, **config.model_kwargs).size_multiple
    if config.patch_size % size_multiple:
        raise NanosegError(f"patch_size {config.patch_size} is not a multiple of {size_multiple}, which "
                           f"{config.model} needs", hint=f"use a patch size divisible by {size_multiple}")

    torch.manual_seed(config.seed)
    model = build_model(config.model, **config.model_kwargs).to(device)
    particle_fraction = float(data.train_p.masks.mean())
    weights = inverse_frequency_weights(particle_fraction) if config.loss == "ce_weighted" else None
    loss_fn = SegmentationLoss(config.loss, weights).to(device)
    optimizer = _optimizer(config, model.parameters())
    scheduler = _scheduler(config, optimizer)
    amp_dtype = None
    if device.type == "cuda" and config.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return _ModelParts(model, loss_fn, optimizer, scheduler, amp_dtype, scaler, particle_fraction)


@dataclass
class _RunState:
    """Where the epoch loop stands: the next epoch, the best score so far and the history rows."""

    start_epoch: int = 0
    best_score: float | None = None
    best_epoch: int | None = None
    best_state: dict | None = None
    history: list = field(default_factory=list)


def _resume_step(out: Path, config_json: str, parts: _ModelParts) -> _RunState:
    """Restore model, optimizer, schedule, scaler, history and torch RNG from ``last.pt`` (same config only)."""
    try:
        state = torch.load(out / LAST, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged file from a hard kill
        raise NanosegError(f"cannot read {LAST} to resume ({exc})", path=out / LAST,
                           hint="start over with resume=False") from exc
    if state.get("config") != config_json:
        raise NanosegError("the checkpoint directory holds a run with a different config", path=out,
                           hint="use another out_dir=FOLDER, or resume=False to start over")
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    if parts.scheduler is not None and state.get("scheduler"):
        parts.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        parts.scaler.load_state_dict(state["scaler"])
    run = _RunState(start_epoch=int(state["epoch"]) + 1, best_score=state.get("best_score"),
                    best_epoch=state.get("best_epoch"), best_state=state.get("best_state"),
                    history=list(state.get("history", [])))
    torch.set_rng_state(state["torch_rng"])
    if run.best_score is not None and math.isnan(run.best_score):
        run.best_score = None
    return run


def _train_one_epoch(net: nn.Module, config: TrainConfig, device: torch.device, dist_info: _Dist,
                     data: _RunData, parts: _ModelParts, epoch: int) -> float:
    """One pass over the (rank's share of the) epoch's patch order; returns the mean training loss."""
    data.train_ds.set_epoch(epoch)
    order = _epoch_order(len(data.train_ds), config.seed, epoch)
    if dist_info.world > 1:
        per = len(order) // dist_info.world
        order = order[dist_info.rank * per: (dist_info.rank + 1) * per]
    drop_last = len(order) % config.batch_size == 1 and len(order) > 1  # a batch of 1 breaks BatchNorm
    loader = torch.utils.data.DataLoader(data.train_ds, batch_size=config.batch_size, sampler=order,
                                         num_workers=config.num_workers, drop_last=drop_last,
                                         pin_memory=device.type == "cuda")
    net.train()
    total, count = 0.0, 0
    for images, masks in loader:
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        parts.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=parts.amp_dtype, enabled=parts.amp_dtype is not None):
            logits = net(images)
        loss = parts.loss_fn(logits, masks)
        if not torch.isfinite(loss):
            raise NanosegError(f"training diverged (loss {float(loss)}) at epoch {epoch + 1}",
                               hint="lower the learning rate")
        parts.scaler.scale(loss).backward()
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        total += float(loss.detach()) * len(images)
        count += len(images)
    if parts.scheduler is not None:
        parts.scheduler.step()
    return total / max(count, 1)


def _epoch_loop(config: TrainConfig, device: torch.device, dist_info: _Dist, data: _RunData, parts: _ModelParts,
                run: _RunState, *, out: Path, config_json: str, show: bool, on_epoch_end) -> bool:
    """Train epoch by epoch from ``run.start_epoch``: validate, keep the best state, save ``last.pt`` and the
    history after each epoch; returns whether early stopping ended the loop."""
    model, main = parts.model, dist_info.main
    net = model
    if dist_info.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    bar = _Progress(show, config.epochs, f"training {config.model}")
    bar.update(run.start_epoch)
    try:
        for epoch in range(run.start_epoch, config.epochs):
            epoch_start = time.time()
            train_loss = _train_one_epoch(net, config, device, dist_info, data, parts, epoch)
            val = evaluate_patches(model, data.val_ds, parts.loss_fn, device=device, batch_size=config.batch_size,
                                   amp_dtype=parts.amp_dtype)
            row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val["loss"],
                   "val_hard_dice": val["hard_dice"], "val_soft_dice": val["soft_dice"],
                   "lr": parts.optimizer.param_groups[0]["lr"], "seconds": time.time() - epoch_start}
            run.history.append(row)
            score = val["loss"] if config.selection == "val_loss" else val["hard_dice"]
            if _is_better(score, run.best_score, config.selection):
                run.best_score, run.best_epoch = float(score), epoch + 1
                run.best_state = _cpu_state(model.state_dict())
            if main:
                _save_last(out, model, parts.optimizer, parts.scheduler, parts.scaler, epoch, run.best_score,
                           run.best_epoch, run.best_state, run.history, config_json)
                pd.DataFrame(run.history).to_csv(out / HISTORY, index=False)
            bar.update(epoch + 1, row)
            if on_epoch_end is not None and main:
                on_epoch_end(epoch + 1, row)
            if (config.early_stopping_patience is not None and run.best_epoch is not None
                    and epoch + 1 - run.best_epoch >= config.early_stopping_patience):
                return True
    finally:
        bar.close()
    return False


def _selection_step(config: TrainConfig, device: torch.device, data: _RunData, parts: _ModelParts,
                    run: _RunState) -> dict[str, float]:
    """Load the best epoch's weights into the model and score them on the test patches."""
    if run.best_state is None:
        raise NanosegError("no epoch produced a finite validation score")
    parts.model.load_state_dict(run.best_state)
    return evaluate_patches(parts.model, data.test_ds, parts.loss_fn, device=device, batch_size=config.batch_size,
                            amp_dtype=parts.amp_dtype)


def _card_step(config: TrainConfig, device: torch.device, dist_info: _Dist, data: _RunData, parts: _ModelParts,
               run: _RunState, test: dict[str, float], *, out: Path, name: str | None, start_time: float,
               stopped_early: bool) -> None:
    """Write split.json, the curves, the model card and weights, and mark ``last.pt`` finished."""
    history, best_epoch, split = run.history, run.best_epoch, data.split
    best_row = history[best_epoch - 1]
    wall = sum(r["seconds"] for r in history)
    training = {
        "epochs": config.epochs, "epochs_run": len(history), "best_epoch": best_epoch,
        "stopped_early": stopped_early, "selection": config.selection, "loss": config.loss,
        "optimizer": config.optimizer, "lr": config.lr, "batch_size": config.batch_size,
        "schedule": config.schedule, "patch_size": config.patch_size, "augmentation":
            config.augmentation.model_dump(mode="json"), "config": config.to_dict(),
        "n_images": split.sizes,
        "n_patches": {"train": len(data.train_p), "val": len(data.val_p), "test": len(data.test_p)},
        "particle_pixel_fraction": parts.particle_fraction,
        "train_time_s": round(wall, 1), "wall_time_s": round(time.time() - start_time, 1),
        "machine": _machine(device, dist_info.world), "device": str(device),
        "torch_version": torch.__version__, "processes": dist_info.world,
    }
    metrics = {"val_loss": best_row["val_loss"], "val_hard_dice": best_row["val_hard_dice"],
               "val_soft_dice": best_row["val_soft_dice"], "test_loss": test["loss"],
               "test_hard_dice": test["hard_dice"], "test_soft_dice": test["soft_dice"], "n_test_patches": test["n"]}
    metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    (out / SPLIT).write_text(json.dumps({"fold": split.fold, "seed": split.seed, "group_by": config.group_by,
                                         "sizes": split.sizes, "train": split.train_ids, "val": split.val_ids,
                                         "test": split.test_ids}, indent=1))
    plot_curves(pd.DataFrame(history), out / CURVES, best_epoch=best_epoch)
    card = build_card(parts.model, config, data.data, split, training=training, metrics=metrics, name=name)
    save_model(out, parts.model, card)
    state = torch.load(out / LAST, map_location="cpu", weights_only=True)
    state["finished"] = True
    _atomic_torch_save(state, out / LAST)


def _atomic_torch_save(obj, path: Path) -> None:
    from nanoseg._util import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _save_last(out: Path, model, optimizer, scheduler, scaler, epoch, best_score, best_epoch, best_state,
               history, config_json) -> None:
    state = {
        "epoch": epoch, "model": _cpu_state(model.state_dict()), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "best_score": best_score, "best_epoch": best_epoch, "best_state": best_state,
        "history": history, "torch_rng": torch.get_rng_state(), "config": config_json, "finished": False,
    }
    _atomic_torch_save(state, out / LAST)


def copy_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the model files (weights + card) of a run to ``dst`` (e.g. to ship a model)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for item in ("weights.safetensors", "card.json"):
        shutil.copy2(Path(src) / item, dst / item)
    return dst
