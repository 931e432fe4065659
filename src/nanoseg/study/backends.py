"""What a study trains and how it predicts: a *backend*.

A backend has four methods, all running inside Dask tasks (so they must be importable by the workers):

* ``train(train_dir, val_dir, config, out_dir, *, device) -> Path`` — fit a model on the dataset directory
  ``train_dir`` (validation images in ``val_dir``), write a checkpoint directory ``out_dir``, return it;
* ``load(checkpoint, *, device)`` — the model, loaded once per evaluation cell;
* ``predict(model, micrograph) -> ndarray`` — the particle probability map of one image;
* ``validation_loss(checkpoint) -> float`` — the objective of hyperparameter search.

Shipped backends: ``"nanoseg"`` (``nanoseg.train`` + ``nanoseg.infer``) and ``"threshold"``, a one-parameter
baseline that learns the best global threshold of the (blurred, standardized) image — useful to see how hard a
dataset is without a network, and fast enough to test the study machinery. A spec may name any other backend as
``"package.module:Class"``.

Example
-------
>>> backend = get_backend("threshold")
>>> type(backend).__name__
'ThresholdBackend'
"""

from __future__ import annotations

import importlib
import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from nanoseg._util import atomic_path
from nanoseg.datasets import open_dataset
from nanoseg.errors import NanosegError


def error_text(exc: BaseException) -> str:
    """One line for a failed task: the NanosegError message, or the exception type, text and where it rose."""
    if isinstance(exc, NanosegError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def pick_device(config: dict[str, Any]) -> str | None:
    """The device a task trains on: ``config["device"]``, else one GPU per Dask worker (by worker name), else CPU;
    None without torch."""
    if config.get("device"):
        return str(config["device"])
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return "cpu"
    index = 0
    try:  # one GPU per worker: LocalCluster names its workers 0, 1, ...
        from distributed import get_worker

        name = get_worker().name
        index = int(name) if str(name).isdigit() else abs(hash(str(name)))
    except (ImportError, ValueError):  # not inside a Dask worker: the first GPU
        index = 0
    return f"cuda:{index % torch.cuda.device_count()}"


def get_backend(name: str):
    """The backend object named ``name`` (``nanoseg``, ``threshold`` or ``package.module:Class``)."""
    if name == "nanoseg":
        return NanosegBackend()
    if name == "threshold":
        return ThresholdBackend()
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise NanosegError(f"cannot import backend {name!r} ({exc})",
                               hint="make the module importable on every worker (PYTHONPATH)") from exc
        return obj() if isinstance(obj, type) else obj
    raise NanosegError(f"unknown backend {name!r}", hint="use 'nanoseg', 'threshold' or 'package.module:Class'")


# --------------------------------------------------------------------------------------------------- nanoseg
class NanosegBackend:
    """Train with :func:`nanoseg.train.train_model`, predict with :func:`nanoseg.infer.predict`."""

    def train(self, train_dir: Path, val_dir: Path | None, config: dict[str, Any], out_dir: Path, *,
              device: str | None = None) -> Path:
        """Train on exactly the study's split: ``train_dir`` images for training, ``val_dir`` images for
        checkpoint selection, no test part (the study tests on its own held-out fold)."""
        from nanoseg.datasets.splits import Split
        from nanoseg.train import TrainConfig, TrainingData, train_model

        config = dict(config)
        if device is not None and config.get("device", "auto") == "auto":
            config["device"] = device
        cfg = TrainConfig.from_dict(config)
        dirs = [Path(train_dir)] + ([Path(val_dir)] if val_dir is not None else [])
        data = TrainingData.open(dirs)
        parts = [list(data.meta.loc[data.meta["dataset"] == name, "id"].astype(str)) for name in data.names]
        split = Split(train_ids=parts[0], val_ids=parts[1] if len(parts) > 1 else [], test_ids=[],
                      seed=cfg.seed)
        return Path(train_model(dirs, cfg, out_dir, progress=False, resume=True, split=split))

    def load(self, checkpoint: Path, *, device: str | None = None):
        from nanoseg.models.checkpoint import load_model

        return load_model(checkpoint, device=device or "cpu")

    def predict(self, model, micrograph) -> np.ndarray:
        from nanoseg.infer import predict

        # out-of-distribution warnings are the point of a study, not news: switched off; run on the device
        # the model was loaded on (one GPU per worker)
        device = next(iter(model.module.parameters())).device
        return np.asarray(predict(micrograph, model, ood=False, device=str(device)).probability, dtype=np.float32)

    def validation_loss(self, checkpoint: Path) -> float:
        from nanoseg.models.checkpoint import load_model

        card = load_model(checkpoint).card
        for source in (card.metrics, card.training):
            for key in ("best_val_loss", "val_loss", "validation_loss"):
                if isinstance(source, dict) and source.get(key) is not None:
                    return float(source[key])
        raise NanosegError("the checkpoint's card records no validation loss", path=checkpoint)


# ------------------------------------------------------------------------------------------------- threshold
def _features(image: np.ndarray, sigma_px: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    img = np.asarray(image, dtype=np.float32)
    if sigma_px > 0:
        img = gaussian_filter(img, sigma_px)
    std = float(img.std())
    return (img - float(img.mean())) / (std if std > 0 else 1.0)


class ThresholdBackend:
    """A global threshold on the blurred, standardized image, fitted to maximize mean hard Dice.

    Training config keys: ``sigma_px`` (Gaussian blur before standardizing, default 1), ``softness``
    (width of the sigmoid turning distance-to-threshold into a probability, default 0.1), ``seed`` (unused:
    the fit is deterministic). Particles may be darker or brighter than the background: both are tried.
    """

    KEYS = {"sigma_px", "softness", "seed", "device"}

    def train(self, train_dir: Path, val_dir: Path | None, config: dict[str, Any], out_dir: Path, *,
              device: str | None = None) -> Path:
        from nanoseg.evaluate.pixel import dice

        unknown = set(config) - self.KEYS
        if unknown:
            raise NanosegError(f"threshold backend: unknown training key(s) {sorted(unknown)}",
                               hint=f"allowed: {sorted(self.KEYS)}")
        sigma = float(config.get("sigma_px", 1.0))
        softness = float(config.get("softness", 0.1))
        ds = open_dataset(train_dir)
        if len(ds) == 0:
            raise NanosegError("no training images", path=train_dir)
        feats = [_features(ds.image(i), sigma) for i in ds.ids]
        masks = [ds.mask(i) > 0 for i in ds.ids]
        candidates = np.quantile(np.concatenate([f.ravel() for f in feats]), np.linspace(0.02, 0.98, 49))
        best = (-1.0, 0.0, True)
        for dark in (True, False):
            for t in candidates:
                score = float(np.mean([dice((f < t) if dark else (f > t), m) for f, m in zip(feats, masks, strict=True)]))
                if score > best[0]:
                    best = (score, float(t), dark)
        params = {"threshold": best[1], "particles_dark": best[2], "sigma_px": sigma, "softness": softness,
                  "train_dice": best[0]}
        if val_dir is not None and len(open_dataset(val_dir)):
            val = open_dataset(val_dir)
            model = params
            params["val_loss"] = float(np.mean([1.0 - dice(self.predict(model, val.micrograph(i)) > 0.5,
                                                           val.mask(i)) for i in val.ids]))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / "threshold.json") as tmp:
            tmp.write_text(json.dumps(params))
        return out_dir

    def load(self, checkpoint: Path, *, device: str | None = None) -> dict[str, Any]:
        path = Path(checkpoint) / "threshold.json"
        if not path.exists():
            raise NanosegError("not a threshold-backend checkpoint", path=checkpoint)
        return json.loads(path.read_text())

    def predict(self, model: dict[str, Any], micrograph) -> np.ndarray:
        data = micrograph.data if hasattr(micrograph, "data") else np.asarray(micrograph)
        f = _features(data, model["sigma_px"])
        signed = (model["threshold"] - f) if model["particles_dark"] else (f - model["threshold"])
        from scipy.special import expit

        return expit(signed / max(model["softness"], 1e-6)).astype(np.float32)

    def validation_loss(self, checkpoint: Path) -> float:
        params = self.load(checkpoint)
        if "val_loss" not in params:
            raise NanosegError("the threshold model has no validation images", path=checkpoint)
        return float(params["val_loss"])
