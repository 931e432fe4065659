"""Expand a study spec into trainings and evaluation cells (the Sytwu protocol).

* One **training** per (train set, fold, seed, option combination). Fold ``f`` of a dataset holds out its
  ``f``-th group-wise fold as the test part; the rest is split into training and validation images.
* One **evaluation cell** per (training, test set). In-distribution (test set = train set): the held-out fold
  of the same dataset. Out-of-distribution: the whole other dataset, for every fold model.

Sweep options are expanded as a product; each combination gets a label (``noise_rho=0.5``) and one column per
option in the results table (``opt_noise_rho``).

Example
-------
>>> from nanoseg.study.spec import StudySpec
>>> spec = StudySpec.model_validate({"name": "s", "datasets": {"a": {"path": "a"}, "b": {"path": "b"}},
...     "folds": 2, "seeds": [0, 1], "sweep": {"augmentation.noise_rho": [0, 0.5]}})
>>> trainings, cells = expand_grid(spec)
>>> len(trainings), len(cells)   # 2 sets × 2 folds × 2 seeds × 2 options; × 2 test sets
(16, 32)
>>> trainings[0].key
'a__f0__s0__noise_rho=0'

With ``ensemble: true`` each (train set, fold, option) also gets one cell per test set for the mean
probability of its seeds' models:

>>> spec = StudySpec.model_validate({"name": "s", "datasets": {"a": {"path": "a"}}, "folds": 2,
...     "seeds": [0, 1, 2], "ensemble": True})
>>> trainings, cells = expand_grid(spec)
>>> len(trainings), len(cells), cells[-1].key, cells[-1].option_label
(6, 8, 'a__f1__ensemble3__base__test_a', 'base,ensemble=3')
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from nanoseg.study.spec import StudySpec, deep_merge


@dataclass(frozen=True)
class Option:
    """One combination of sweep values: ``labels`` maps option name → label; ``overrides`` the config patch."""

    labels: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels.items()) or "base"


@dataclass(frozen=True)
class TrainTask:
    """One model to train: ``config`` is the complete training config (spec ``training`` + option patch)."""

    train_set: str
    fold: int
    seed: int
    option: Option
    config: dict[str, Any]

    @property
    def key(self) -> str:
        return _safe(f"{self.train_set}__f{self.fold}__s{self.seed}__{self.option.label}")

    @property
    def search_key(self) -> str:
        """Trainings that share a hyperparameter search (same train set and option, any fold/seed)."""
        return _safe(f"{self.train_set}__{self.option.label}")


@dataclass(frozen=True)
class EvalCell:
    """One evaluation: the model of ``training`` on ``test_set`` (its held-out fold when in distribution).

    An ensemble cell (``members``: the trainings of every seed of one train set, fold and option; ``training``
    is the first) scores the mean probability of their models.
    """

    training: TrainTask
    test_set: str
    members: tuple[TrainTask, ...] = ()

    @property
    def in_distribution(self) -> bool:
        return self.test_set == self.training.train_set

    @property
    def trainings(self) -> tuple[TrainTask, ...]:
        """The models this cell evaluates: its members, or its one training."""
        return self.members or (self.training,)

    @property
    def option_label(self) -> str:
        """The option's label, with ``ensemble=N`` appended for an ensemble cell (its own row in the report)."""
        label = self.training.option.label
        return f"{label},ensemble={len(self.members)}" if self.members else label

    @property
    def key(self) -> str:
        if self.members:
            t = self.training
            return _safe(f"{t.train_set}__f{t.fold}__ensemble{len(self.members)}__{t.option.label}"
                         f"__test_{self.test_set}")
        return _safe(f"{self.training.key}__test_{self.test_set}")


def option_name(key: str) -> str:
    """The column-friendly name of a sweep key: its last dotted part (``augmentation.noise_rho`` → ``noise_rho``)."""
    return key.split(".")[-1]


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, default=str)
        return "v" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return str(value)


def _safe(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "_-.=," else "_" for c in text)
    if len(out) > 120:  # keep file names short but unique
        out = out[:100] + "_" + hashlib.sha1(text.encode()).hexdigest()[:10]
    return out


def set_dotted(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``config`` with ``a.b.c`` set (``training.`` prefix ignored).

    >>> set_dotted({"augmentation": {"flip": True}}, "training.augmentation.noise_rho", 0.5)
    {'augmentation': {'flip': True, 'noise_rho': 0.5}}
    """
    parts = key.removeprefix("training.").split(".")
    patch: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        patch = {part: patch}
    return deep_merge(config, patch)


def _block_options(block: dict[str, Any]) -> list[Option]:
    keys = [k for k in block if k != "train"]
    if not keys:
        return [Option()]
    names = [option_name(k) for k in keys]
    if len(set(names)) != len(names):  # two keys ending alike: use the full dotted key
        names = [k.removeprefix("training.").replace(".", "_") for k in keys]
    axes = []
    for key in keys:
        values = block[key]
        items = list(values.items()) if isinstance(values, dict) else [(_label(v), v) for v in values]
        axes.append([(key, str(label), value) for label, value in items])
    options = []
    for combo in itertools.product(*axes):
        labels = {name: label for name, (_, label, _) in zip(names, combo, strict=True)}
        overrides: dict[str, Any] = {}
        for key, _, value in combo:
            overrides = set_dotted(overrides, key, value)
        options.append(Option(labels=labels, overrides=overrides))
    return options


def expand_options(spec: StudySpec, train_set: str | None = None) -> list[Option]:
    """Every option combination of the spec's sweep (for ``train_set``: blocks restricted to others are left out).

    A mapping is one product; a list of mappings is the union of their products (duplicates dropped). With
    nothing swept there is one option, ``base``.
    """
    options: dict[str, Option] = {}
    for block in spec.sweep_blocks:
        if train_set is not None and "train" in block and train_set not in block["train"]:
            continue
        for option in _block_options(block):
            options.setdefault(option.label, option)
    return list(options.values())


def expand_grid(spec: StudySpec) -> tuple[list[TrainTask], list[EvalCell]]:
    """All trainings and evaluation cells of a study, in a stable order."""
    trainings = []
    for train_set in spec.train_sets:
        for option in expand_options(spec, train_set):
            for seed in spec.seeds:
                for fold in range(spec.folds):
                    config = deep_merge(spec.training, option.overrides)
                    config["seed"] = seed * 100 + fold  # a fixed, distinct seed per fold (Sytwu)
                    trainings.append(TrainTask(train_set, fold, seed, option, config))
    cells = [EvalCell(t, test_set) for t in trainings for test_set in spec.test_sets]
    if spec.ensemble:
        groups: dict[tuple[str, str, int], list[TrainTask]] = {}
        for t in trainings:
            groups.setdefault((t.train_set, t.option.label, t.fold), []).append(t)
        cells += [EvalCell(members[0], test_set, tuple(members)) for members in groups.values()
                  for test_set in spec.test_sets]
    return trainings, cells
