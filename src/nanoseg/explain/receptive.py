"""Receptive field vs capacity (Sytwu, Groschner & Scott 2022): which one limits HRTEM segmentation?

Two families of variants of one architecture are trained on the same data and scored on the same test set:

* **receptive-field axis** — the same layers with larger dilations: the receptive field grows, the parameter
  count stays exactly the same;
* **parameter axis** — the same layers with every width scaled: the parameter count grows (≈ quadratically),
  the receptive field stays exactly the same.

The default architecture is ``sytwu_resunet`` (kernel sizes and dilations per level are part of its config), at
a small size (depth 2, widths 4/8/16) so the study runs in minutes on a CPU. Every variant's receptive field
and parameter count are measured on the built network (``nanoseg.models.receptive_field``,
``count_parameters``), not assumed.

Example
-------
>>> variants = receptive_field_variants(dilations=(1, 2), width_factors=(1, 2))
>>> [v.name for v in variants]
['dilation=1', 'dilation=2', 'width×1', 'width×2']
>>> [v.receptive_field_px for v in variants[:2]], len({v.n_parameters for v in variants[:2]})
([44, 84], 1)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nanoseg._util import progress_iter
from nanoseg.errors import NanosegError

DEFAULT_BASE = {"depth": 2, "filters": (4, 8, 16)}


@dataclass
class Variant:
    """One network of the study: its axis, name, registry name and config, measured RF and size."""

    axis: str
    name: str
    architecture: str
    config: dict[str, Any]
    receptive_field_px: int = 0
    n_parameters: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _measure(variant: Variant) -> Variant:
    from nanoseg.models import build_model, count_parameters, receptive_field

    net = build_model(variant.architecture, **variant.config)
    variant.receptive_field_px = int(receptive_field(net))
    variant.n_parameters = int(count_parameters(net))
    return variant


def receptive_field_variants(*, architecture: str = "sytwu_resunet", base_config: dict[str, Any] | None = None,
                             dilations: Sequence[int] = (1, 2, 3), width_factors: Sequence[float] = (0.5, 1, 2)
                             ) -> list[Variant]:
    """The variants: one per dilation (fixed parameters) and one per width factor (fixed receptive field).

    Parameters
    ----------
    architecture : ``sytwu_resunet`` (dilations per level; ``filters`` scaled) or one of the Horwath U-Nets
        (``norm_unet``, ``twoconv_unet``, ``twoconv_norm_unet``: encoder dilations; ``widths`` scaled).
    base_config : the architecture's config at dilation 1 and width factor 1 (default: a small
        ``sytwu_resunet``, depth 2, filters 4/8/16).
    dilations : dilation of every level (RF axis).
    width_factors : multipliers of every width (parameter axis), rounded, at least 1 channel.
    """
    base = dict(DEFAULT_BASE if base_config is None and architecture == "sytwu_resunet" else base_config or {})
    if architecture == "sytwu_resunet":
        n = int(base.get("depth", 4)) + 1
        width_key, dilation_key = "filters", "dilations"
        widths = tuple(base.get("filters", (4, 8, 16, 32, 64)))
    elif architecture in ("norm_unet", "twoconv_unet", "twoconv_norm_unet", "dilated_unet"):
        n = 4
        width_key, dilation_key = "widths", "dilations"
        widths = tuple(base.get("widths", (8, 16, 32, 64)))
    else:
        raise NanosegError(f"receptive-field study: architecture {architecture!r} has no per-level dilations",
                           hint="use sytwu_resunet, norm_unet, twoconv_unet or twoconv_norm_unet")
    if not dilations or any(int(d) < 1 for d in dilations):
        raise NanosegError(f"dilations must be integers ≥ 1, got {tuple(dilations)}")
    if not width_factors or any(float(w) <= 0 for w in width_factors):
        raise NanosegError(f"width factors must be positive, got {tuple(width_factors)}")
    variants = []
    for d in dilations:
        config = {**base, dilation_key: (int(d),) * n}
        variants.append(Variant("receptive_field", f"dilation={int(d)}", architecture, config,
                                extra={"dilation": int(d), "width_factor": 1.0}))
    for w in width_factors:
        scaled = tuple(max(1, int(round(c * float(w)))) for c in widths)
        config = {**base, width_key: scaled}
        if architecture in ("norm_unet", "twoconv_unet", "twoconv_norm_unet", "dilated_unet"):
            config["decoder_widths"] = tuple(max(1, int(round(c * float(w))))
                                             for c in base.get("decoder_widths", (32, 32, 16, 16)))
            config["head_width"] = max(1, int(round(base.get("head_width", 8) * float(w))))
        variants.append(Variant("parameters", f"width×{float(w):g}", architecture, config,
                                extra={"dilation": 1, "width_factor": float(w)}))
    return [_measure(v) for v in variants]


def evaluate_checkpoint(checkpoint: str | os.PathLike, test_dir: str | os.PathLike, *, threshold: float = 0.5,
                        smooth: float = 1.0) -> pd.DataFrame:
    """Per-image hard Dice of a checkpoint on a dataset (``nanoseg.infer.predict``, whole-image pass)."""
    from nanoseg.datasets.store import open_dataset
    from nanoseg.evaluate.pixel import dice
    from nanoseg.infer import predict
    from nanoseg.models import load_model

    model = load_model(checkpoint)
    ds = open_dataset(test_dir)
    rows = []
    for image_id in ds.ids:
        prediction = predict(ds.micrograph(image_id), model, threshold=threshold, tile_size=None, ood=False,
                             device="cpu", assume_model_pixel_size=True)
        rows.append({"id": image_id, "dice": dice(prediction.probability >= threshold, ds.mask(image_id),
                                                  smooth=smooth)})
    return pd.DataFrame(rows)


def receptive_field_study(train_dir: str | os.PathLike | Sequence[str | os.PathLike], test_dir: str | os.PathLike,
                          out_dir: str | os.PathLike, *, architecture: str = "sytwu_resunet",
                          base_config: dict[str, Any] | None = None, dilations: Sequence[int] = (1, 2, 3),
                          width_factors: Sequence[float] = (0.5, 1, 2), training: dict[str, Any] | None = None,
                          seeds: Sequence[int] = (0,), progress: bool = False) -> pd.DataFrame:
    """Train every variant briefly on ``train_dir`` and score it on ``test_dir``; return (and save) the table.

    Parameters
    ----------
    train_dir : dataset directory (or several) to train on.
    test_dir : dataset directory to score on (keep it separate from the training images).
    out_dir : one checkpoint per variant and seed under ``out_dir/<variant>__s<seed>`` (finished ones are
        reused, so a rerun resumes), ``out_dir/receptive_field.csv`` and ``receptive_field.png``.
    training : ``nanoseg.train.TrainConfig`` fields (default: 3 epochs, patch 64, batch 8, lr 1e-3, CPU).
    seeds : one training per seed; the table gives mean and std over seeds.

    Returns
    -------
    DataFrame, one row per variant: ``axis``, ``variant``, ``receptive_field_px``, ``n_parameters``,
    ``dilation``, ``width_factor``, ``dice`` (mean over seeds of the mean per-image Dice), ``dice_std``
    (over seeds; 0 for one seed), ``train_wall_s``.
    """
    from nanoseg.datasets.store import open_dataset
    from nanoseg.models import model_config
    from nanoseg.train import TrainConfig, train_model

    open_dataset(test_dir)  # a bad test set fails now, not after the first training
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = receptive_field_variants(architecture=architecture, base_config=base_config, dilations=dilations,
                                        width_factors=width_factors)
    defaults = {"epochs": 3, "patch_size": 64, "batch_size": 8, "lr": 1e-3, "device": "cpu", "amp": False,
                "test_fraction": 0.0, "val_fraction": 0.2}
    dirs = [train_dir] if isinstance(train_dir, (str, os.PathLike)) else list(train_dir)
    jobs = [(v, int(s)) for v in variants for s in seeds]
    rows = []
    done: dict[tuple, tuple[float, float]] = {}  # the same network on both axes (dilation 1 = width × 1) trains once
    for variant, seed in progress_iter(jobs, "receptive-field variants", enabled=progress):
        network = (variant.architecture, repr(model_config(variant.architecture, **variant.config)), seed)
        if network in done:
            dice, wall = done[network]
        else:
            config = TrainConfig.from_dict({**defaults, **(training or {}), "model": variant.architecture,
                                            "model_config": _jsonable(variant.config), "seed": seed})
            start = time.perf_counter()
            checkpoint = train_model([str(d) for d in dirs], config, out / f"{_slug(variant.name)}__s{seed}",
                                     progress=False)
            wall = time.perf_counter() - start
            dice = float(evaluate_checkpoint(checkpoint, test_dir).dice.mean())
            done[network] = (dice, wall)
        rows.append({"axis": variant.axis, "variant": variant.name, "seed": seed,
                     "receptive_field_px": variant.receptive_field_px, "n_parameters": variant.n_parameters,
                     **variant.extra, "dice_seed": dice, "train_wall_s": wall})
    per_seed = pd.DataFrame(rows)
    table = (per_seed.groupby(["axis", "variant", "receptive_field_px", "n_parameters", "dilation", "width_factor"],
                              sort=False)
             .agg(dice=("dice_seed", "mean"), dice_std=("dice_seed", lambda x: float(np.std(x))),
                  train_wall_s=("train_wall_s", "sum"))
             .reset_index())
    table.to_csv(out / "receptive_field.csv", index=False)
    from nanoseg.explain.figures import plot_receptive_field

    plot_receptive_field(table, out / "receptive_field.png")
    return table


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def _slug(name: str) -> str:
    return name.replace("×", "x").replace("=", "").replace(" ", "_")


__all__ = ["Variant", "evaluate_checkpoint", "receptive_field_study", "receptive_field_variants"]
