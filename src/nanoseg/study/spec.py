"""The study spec: a YAML file saying what to train on, what to test on, and which options to sweep.

A spec is validated by pydantic; a mistake raises :class:`~nanoseg.errors.NanosegError` naming the bad key
(``datasets.d80.preset: unknown field``), never a traceback. ``sizes`` holds named partial specs that are
deep-merged on top of the spec (``--size small|full``), so one file describes both the quick run on a laptop
and the full-size reproduction.

Example
-------
>>> spec = StudySpec.model_validate({
...     "name": "demo", "n_images": 4,
...     "datasets": {"a": {"path": "data/a"}, "b": {"preset": "au_5nm", "n_images": 8}},
...     "folds": 3, "sweep": {"augmentation.noise_rho": [0.0, 0.5]}})
>>> spec.train_sets, spec.test_sets, spec.datasets["b"].n_images
(['a', 'b'], ['a', 'b'], 8)
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nanoseg.errors import NanosegError

_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _check_name(name: str, what: str) -> str:
    if not name or not set(name) <= _NAME_OK or name.startswith("."):
        raise ValueError(f"{what} {name!r} must use only letters, digits, '_', '-', '.'")
    return name


class DatasetSpec(BaseModel):
    """One dataset: an existing directory (``path``) or a simulator preset generated on demand (``preset``)."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    preset: str | None = None  # a name in examples/simulate/ or a path to a simulation YAML
    n_images: int | None = Field(default=None, ge=1)  # for presets; default: the spec's n_images
    seed: int = 0  # simulation seed for presets
    overrides: dict[str, Any] = Field(default_factory=dict)  # simulation parameters replacing the preset's
    group_by: str | None = None  # metadata column grouping images into folds; default: the spec's group_by

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.path is None) == (self.preset is None):
            raise ValueError("give exactly one of 'path' (an existing dataset) or 'preset' (a simulator preset)")
        if self.path is not None and self.overrides:
            raise ValueError("'overrides' apply to simulator presets only")
        return self


class SearchSpec(BaseModel):
    """Hyperparameter search with Optuna (objective: validation loss of the trained model).

    ``space`` maps a training-config key to ``[a, b, c]`` (categorical) or ``{low, high, log}`` (float, or int
    when ``int: true``). The best parameters found for each (train set, option) are used by every fold.
    """

    model_config = ConfigDict(extra="forbid")

    n_trials: int = Field(default=20, ge=1)
    parallel: int = Field(default=2, ge=1)  # trials run at once as Dask tasks
    space: dict[str, list[Any] | dict[str, Any]]
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 0

    @field_validator("space")
    @classmethod
    def _space(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise ValueError("the search space is empty")
        for key, dist in space.items():
            if isinstance(dist, list):
                if not dist:
                    raise ValueError(f"{key}: empty list of choices")
            else:
                extra = set(dist) - {"low", "high", "log", "int", "step"}
                if extra or not {"low", "high"} <= set(dist):
                    raise ValueError(f"{key}: a range needs 'low' and 'high' (and optional 'log', 'int', 'step')")
                if not float(dist["low"]) < float(dist["high"]):
                    raise ValueError(f"{key}: low must be < high")
        return space


class StudySpec(BaseModel):
    """A train × test study (see the module docstring and ``docs/studies.md``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    datasets: dict[str, DatasetSpec]
    train: list[str] | None = None  # default: every dataset
    test: list[str] | None = None  # default: every dataset
    folds: int = Field(default=5, ge=2)
    val_fraction: float = Field(default=0.125, gt=0, lt=0.5)  # of the non-test part (70/10/20 with 5 folds)
    seeds: list[int] = Field(default_factory=lambda: [0])
    # also score the ensemble of the seeds' models (mean probability) of every (train set, fold, option)
    ensemble: bool = False
    group_by: str = "source"  # images sharing this metadata value stay in one fold (no leakage)
    n_images: int = Field(default=32, ge=1)  # default number of images for preset datasets
    simulation: dict[str, Any] = Field(default_factory=dict)  # overrides for every preset (e.g. image_size_px)
    backend: str = "nanoseg"  # "nanoseg", "threshold" (a baseline) or "package.module:Class"
    training: dict[str, Any] = Field(default_factory=dict)  # nanoseg.train.TrainConfig fields
    # one product of options ({key: values}), or a list of such blocks whose union is run; a block may hold
    # `train: [names]` to apply only to those training sets
    sweep: dict[str, Any] | list[dict[str, Any]] = Field(default_factory=dict)
    search: SearchSpec | None = None
    threshold: float = Field(default=0.5, gt=0, lt=1)  # probability threshold of the hard metrics
    smooth: float = Field(default=1.0, ge=0)  # Dice smoothing (1 as in Sytwu's code)
    size: str | None = None  # which entry of `sizes` was applied (set by load_spec)
    sizes: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_name(name, "study name")

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, datasets: dict[str, DatasetSpec]) -> dict[str, DatasetSpec]:
        if not datasets:
            raise ValueError("a study needs at least one dataset")
        for name in datasets:
            _check_name(name, "dataset name")
        return datasets

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError("give at least one seed, without repeats")
        return seeds

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, sweep):
        for i, block in enumerate([sweep] if isinstance(sweep, dict) else sweep):
            where = "" if isinstance(sweep, dict) else f"block {i}: "
            for key, values in block.items():
                if key == "train":
                    if not isinstance(values, list) or not values:
                        raise ValueError(f"{where}'train' must be a non-empty list of dataset names")
                    continue
                if not isinstance(values, (list, dict)):
                    raise ValueError(f"{where}sweep option {key!r} needs a list of values or a mapping label: value")
                if not values:
                    raise ValueError(f"{where}sweep option {key!r} has no values")
                if isinstance(values, dict):
                    for label in values:
                        _check_name(str(label), f"sweep label of {key}")
        return sweep

    @property
    def sweep_blocks(self) -> list[dict[str, Any]]:
        return [self.sweep] if isinstance(self.sweep, dict) else list(self.sweep)

    @model_validator(mode="after")
    def _references(self) -> StudySpec:
        for role in ("train", "test"):
            names = getattr(self, role)
            if names is None:
                setattr(self, role, list(self.datasets))
                continue
            if not names:
                raise ValueError(f"{role}: empty list of datasets")
            unknown = [n for n in names if n not in self.datasets]
            if unknown:
                raise ValueError(f"{role}: unknown dataset(s) {unknown}; defined: {list(self.datasets)}")
        if self.ensemble and len(self.seeds) < 2:
            raise ValueError(f"ensemble: true needs at least 2 seeds (the ensemble's members); seeds: {self.seeds}")
        for block in self.sweep_blocks:
            unknown = [n for n in block.get("train", []) if n not in (self.train or [])]
            if unknown:
                raise ValueError(f"sweep: train set(s) {unknown} are not in train: {self.train}")
            for key in block:
                if self.search is not None and _strip(key) in {_strip(k) for k in self.search.space}:
                    raise ValueError(f"{key!r} is both swept and searched; choose one")
        return self

    @property
    def train_sets(self) -> list[str]:
        return list(self.train or [])

    @property
    def test_sets(self) -> list[str]:
        return list(self.test or [])

    def dataset_n_images(self, name: str) -> int:
        ds = self.datasets[name]
        return ds.n_images if ds.n_images is not None else self.n_images

    def dataset_group_by(self, name: str) -> str:
        return self.datasets[name].group_by or self.group_by


def _strip(key: str) -> str:
    return key[len("training."):] if key.startswith("training.") else key


def deep_merge(base: dict[str, Any], patch: dict[str, Any], *, none_removes: bool = False) -> dict[str, Any]:
    """``base`` updated recursively by ``patch`` (mappings merge, anything else replaces).

    With ``none_removes`` (used for ``sizes`` patches) a ``null`` in the patch deletes the key.

    >>> deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}, "e": 6})
    {'a': {'b': 5, 'c': 2}, 'd': 3, 'e': 6}
    >>> deep_merge({"a": {"b": 1}, "d": 3}, {"a": None}, none_removes=True)
    {'d': 3}
    """
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None and none_removes:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value, none_removes=none_removes)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def load_spec(source: str | os.PathLike | dict[str, Any], *, size: str | None = None,
              base_dir: str | os.PathLike | None = None) -> StudySpec:
    """Read and validate a study spec from a YAML file (or a dict), applying the named ``size``.

    Relative dataset ``path``\\ s are resolved against the spec file's folder (or ``base_dir``).

    Parameters
    ----------
    source : path or dict
        The YAML file, or the already parsed mapping.
    size : str, optional
        A key of the spec's ``sizes`` (e.g. ``"small"`` or ``"full"``); default: the spec's own ``size``
        entry if it names one, else no patch.

    Examples
    --------
    >>> spec = load_spec({"name": "s", "datasets": {"a": {"preset": "au_5nm"}}, "n_images": 100,
    ...                   "sizes": {"small": {"n_images": 8, "training": {"epochs": 2}}}}, size="small")
    >>> spec.n_images, spec.training["epochs"], spec.size
    (8, 2, 'small')
    """
    path = None
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise NanosegError("study spec not found", path=path, hint="give a YAML file, e.g. examples/studies/tiny.yaml")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise NanosegError(f"not valid YAML ({exc})", path=path) from exc
        if not isinstance(raw, dict):
            raise NanosegError("a study spec must be a YAML mapping (name:, datasets:, ...)", path=path)
    sizes = raw.get("sizes") or {}
    if not isinstance(sizes, dict):
        raise NanosegError("sizes: must map a size name to a partial spec", path=path)
    chosen = size if size is not None else raw.get("size")
    if chosen is not None:
        if chosen not in sizes:
            raise NanosegError(f"size {chosen!r} is not defined in the spec", path=path,
                               hint=f"defined sizes: {', '.join(sizes) or 'none'}")
        patch = sizes[chosen] or {}
        if not isinstance(patch, dict) or "sizes" in patch:
            raise NanosegError(f"sizes.{chosen}: must be a partial spec without 'sizes'", path=path)
        raw = deep_merge(raw, patch, none_removes=True)
        raw["size"] = chosen
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise NanosegError(f"invalid study spec: {_format_errors(exc)}", path=path,
                           hint="see docs/studies.md for the keys") from None
    root = Path(base_dir) if base_dir is not None else (path.parent if path is not None else None)
    if root is not None:
        for ds in spec.datasets.values():
            if ds.path is not None and not Path(ds.path).is_absolute():
                ds.path = str((root / ds.path).resolve())
    return spec
