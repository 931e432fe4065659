"""k-fold cross-validation grouped by source image (or session): k checkpoints and a summary table.

Fold ``i`` trains with seed ``config.seed + i`` on the fold's training groups, selects on its validation
groups and reports on its test groups; no image (or session, with ``group_by="session"``) appears in two
splits of a fold. Sizes of every split are recorded (70/10/20 for k = 5).

Example
-------
>>> # cross_validate(["data/au5"], TrainConfig(model="sytwu_resunet"), "runs/cv", folds=5)
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from nanoseg.datasets.splits import grouped_kfold
from nanoseg.errors import NanosegError
from nanoseg.models.checkpoint import read_card
from nanoseg.train.config import TrainConfig
from nanoseg.train.loop import TrainingData, train_model

SUMMARY = "summary.csv"


def cross_validate(dataset_dirs, config: TrainConfig | dict, out_dir: str | os.PathLike, *, folds: int = 5,
                   progress: bool = True, resume: bool = True) -> pd.DataFrame:
    """Train ``folds`` models on grouped folds into ``out_dir/fold{i}``; write and return ``summary.csv``.

    Finished folds are skipped on a rerun (``resume``); an interrupted fold resumes from its ``last.pt``.
    The summary has one row per fold: fold, seed, image and patch counts per split, best epoch,
    validation/test loss and hard/soft Dice, training time, plus a ``mean`` and a ``std`` row.
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    out = Path(out_dir)
    data = TrainingData.open(dataset_dirs)
    splits = grouped_kfold(data.meta, folds, group_by=config.group_by, seed=config.seed,
                           val_fraction=config.val_fraction / (1 - 1 / folds))
    rows = []
    for split in splits:
        fold_config = config.with_overrides(seed=config.seed + split.fold)
        fold_dir = out / f"fold{split.fold}"
        train_model(dataset_dirs, fold_config, fold_dir, progress=progress, resume=resume, split=split,
                    name=f"fold {split.fold} of {folds}")
        card_file = fold_dir / "card.json"
        if not card_file.exists():  # a non-zero rank in a distributed run does not write
            continue
        card = read_card(card_file.read_text(), path=card_file)
        t, m = card.training, card.metrics
        rows.append({
            "fold": split.fold, "seed": fold_config.seed, "checkpoint": str(fold_dir),
            "n_train_images": split.sizes["train"], "n_val_images": split.sizes["val"],
            "n_test_images": split.sizes["test"], "n_train_patches": t["n_patches"]["train"],
            "n_val_patches": t["n_patches"]["val"], "n_test_patches": t["n_patches"]["test"],
            "best_epoch": t["best_epoch"], "val_loss": m["val_loss"], "val_hard_dice": m["val_hard_dice"],
            "test_loss": m["test_loss"], "test_hard_dice": m["test_hard_dice"],
            "test_soft_dice": m["test_soft_dice"], "train_time_s": t["train_time_s"],
        })
    if not rows:
        raise NanosegError("no fold finished", path=out)
    table = pd.DataFrame(rows)
    numeric = table.drop(columns=["checkpoint"]).select_dtypes("number")
    summary = pd.concat([table, pd.DataFrame([{**numeric.mean().to_dict(), "fold": "mean"},
                                              {**numeric.std().to_dict(), "fold": "std"}])], ignore_index=True)
    from nanoseg._util import atomic_path

    with atomic_path(out / SUMMARY) as tmp:
        summary.to_csv(tmp, index=False)
    return summary
