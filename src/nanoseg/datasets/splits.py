"""Train/validation/test splits grouped by source image or session: no image (or session) in two splits.

Patches cut from one micrograph are strongly correlated; splitting *patches* at random leaks information
from the test set into training (Sytwu et al. warn about this). Every split here is made over *groups*
(a metadata column: ``id`` = the source image, ``session``, ``source`` ...) and then expanded to image ids.

Example
-------
>>> import pandas as pd
>>> meta = pd.DataFrame({"id": [f"im{i}" for i in range(12)], "session": list("aabbccddeeff")})
>>> folds = grouped_kfold(meta, k=5, group_by="session", seed=0)
>>> len(folds), sorted(len(f.test_ids) for f in folds)
(5, [2, 2, 2, 2, 4])
>>> all(not set(f.test_ids) & set(f.train_ids) for f in folds)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError


@dataclass
class Split:
    """Image ids of one split (and the groups they came from)."""

    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]
    fold: int = 0
    seed: int = 0
    groups: dict[str, list] = field(default_factory=dict)

    def __iter__(self):  # allows ``train, val, test = split``
        return iter((self.train_ids, self.val_ids, self.test_ids))

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_ids), "val": len(self.val_ids), "test": len(self.test_ids)}


def group_labels(meta: pd.DataFrame, group_by: str = "id") -> pd.Series:
    """The group of each row; rows with a missing group value form a group of their own (their id)."""
    if "id" not in meta:
        raise NanosegError("metadata has no 'id' column")
    if group_by not in meta:
        raise NanosegError(f"cannot group by {group_by!r}: no such metadata column",
                           hint=f"columns are: {', '.join(map(str, meta.columns))}")
    groups = meta[group_by].astype(object)
    missing = groups.isna()
    groups = groups.where(~missing, "image:" + meta["id"].astype(str))
    return groups.astype(str)


def _take_groups(groups: list[str], sizes: dict[str, int], target: float) -> tuple[list[str], list[str]]:
    """Take groups from the front until their image count reaches ``target`` (at least one group)."""
    taken, count = [], 0
    for g in groups:
        if taken and count >= target:
            break
        taken.append(g)
        count += sizes[g]
    return taken, [g for g in groups if g not in set(taken)]


def _expand(meta: pd.DataFrame, labels: pd.Series, chosen: list[str]) -> list[str]:
    return list(meta.loc[labels.isin(chosen).to_numpy(), "id"].astype(str))


def grouped_kfold(meta: pd.DataFrame, k: int = 5, *, group_by: str = "id", seed: int = 0,
                  val_fraction: float = 0.125) -> list[Split]:
    """k folds over groups: fold ``i`` tests on ~1/k of the images, validates on ``val_fraction`` of the rest.

    With k = 5 and the default ``val_fraction`` (0.125 of the remaining 80 %) the sizes are the 70/10/20 of
    Sytwu et al. Groups are shuffled with ``seed`` and dealt into k folds of nearly equal image counts; the
    validation groups of fold ``i`` are drawn with the fixed seed ``seed + i``.

    Returns a list of :class:`Split` (unpackable as ``train_ids, val_ids, test_ids``).
    """
    labels = group_labels(meta, group_by)
    sizes = labels.value_counts().to_dict()
    unique = sorted(sizes)
    if k < 2:
        raise NanosegError(f"cross-validation needs k ≥ 2 folds, got {k}")
    if len(unique) < k + 1:
        raise NanosegError(f"{len(unique)} groups (by {group_by!r}) cannot make {k} folds with a validation set",
                           hint="use fewer folds, group by a finer column, or add images")
    if not 0 < val_fraction < 1:
        raise NanosegError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = list(np.random.default_rng(seed).permutation(unique))
    # deal groups (largest first, ties in shuffled order) into the fold with the fewest images so far
    order.sort(key=lambda g: -sizes[g])
    folds: list[list[str]] = [[] for _ in range(k)]
    counts = [0] * k
    for g in order:
        i = int(np.argmin(counts))
        folds[i].append(g)
        counts[i] += sizes[g]
    splits = []
    for i in range(k):
        rest = [g for j in range(k) if j != i for g in folds[j]]
        rest = list(np.random.default_rng(seed + i).permutation(sorted(rest)))
        n_rest = sum(sizes[g] for g in rest)
        val, train = _take_groups(rest, sizes, val_fraction * n_rest)
        if not train:
            raise NanosegError("too few groups to leave any for training", hint="use fewer folds")
        splits.append(Split(_expand(meta, labels, train), _expand(meta, labels, val),
                            _expand(meta, labels, folds[i]), fold=i, seed=seed + i,
                            groups={"train": sorted(train), "val": sorted(val), "test": sorted(folds[i])}))
    return splits


def grouped_split(meta: pd.DataFrame, *, val_fraction: float = 0.1, test_fraction: float = 0.2,
                  group_by: str = "id", seed: int = 0) -> Split:
    """One grouped train/val/test split (default 70/10/20). ``test_fraction=0`` makes no test set.

    >>> import pandas as pd
    >>> meta = pd.DataFrame({"id": [str(i) for i in range(10)]})
    >>> grouped_split(meta, seed=1).sizes
    {'train': 7, 'val': 1, 'test': 2}
    """
    labels = group_labels(meta, group_by)
    sizes = labels.value_counts().to_dict()
    if not (0 <= test_fraction < 1 and 0 < val_fraction < 1 and val_fraction + test_fraction < 1):
        raise NanosegError(f"bad split fractions val={val_fraction}, test={test_fraction}",
                           hint="both in [0, 1) with val > 0 and val + test < 1")
    needed = 2 + (test_fraction > 0)
    if len(sizes) < needed:
        raise NanosegError(f"{len(sizes)} groups (by {group_by!r}) are too few for a train/val"
                           f"{'/test' if test_fraction else ''} split", hint="add images or group by 'id'")
    order = list(np.random.default_rng(seed).permutation(sorted(sizes)))
    total = len(labels)
    test: list[str] = []
    if test_fraction > 0:
        test, order = _take_groups(order, sizes, test_fraction * total)
    val, train = _take_groups(order, sizes, val_fraction * total)
    if not train:
        raise NanosegError("too few groups to leave any for training", hint="lower val/test fractions")
    return Split(_expand(meta, labels, train), _expand(meta, labels, val), _expand(meta, labels, test),
                 seed=seed, groups={"train": sorted(train), "val": sorted(val), "test": sorted(test)})
