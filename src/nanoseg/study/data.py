"""Datasets of a study: generate simulator presets on demand, split into group-wise folds, fold subsets.

Fold subsets are light: a directory with a filtered ``meta.parquet`` and symbolic links to the parent's
``images.zarr`` / ``masks.zarr`` (readers list images from ``meta.parquet``), so a 5-fold study does not copy
any image.

Example
-------
>>> import pandas as pd
>>> meta = pd.DataFrame({"id": list("abcdef"), "source": ["s1", "s1", "s2", "s3", "s4", "s5"]})
>>> folds = assign_folds(meta, n_folds=3, group_by="source")
>>> bool(folds[0] == folds[1])   # images of one source stay in one fold
True
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg._util import atomic_path
from nanoseg.datasets import open_dataset
from nanoseg.datasets.store import IMAGES, INFO, INSTANCES, MASKS, META
from nanoseg.errors import NanosegError
from nanoseg.study.spec import StudySpec, deep_merge


def _groups(meta: pd.DataFrame, group_by: str) -> pd.Series:
    """The group of every image; without a usable ``group_by`` column (missing, incomplete, or one value for
    the whole dataset, like ``source: simulated``) every image is its own group."""
    if group_by in meta.columns and meta[group_by].notna().all() and meta[group_by].nunique() > 1:
        return meta[group_by].astype(str)
    return meta["id"].astype(str)


def assign_folds(meta: pd.DataFrame, *, n_folds: int, group_by: str = "source", seed: int = 0) -> np.ndarray:
    """Fold index (0 … n_folds−1) of every row; rows sharing ``group_by`` share a fold; fold sizes balanced.

    Groups are shuffled with ``seed``, then placed largest first into the fold with fewest images.
    """
    groups = _groups(meta, group_by)
    sizes = groups.value_counts()
    if len(sizes) < n_folds:
        raise NanosegError(f"only {len(sizes)} distinct '{group_by}' groups ({len(meta)} images) for {n_folds} folds",
                           hint="use fewer folds, more images, or another group_by column")
    rng = np.random.default_rng(seed)
    order = list(sizes.index[rng.permutation(len(sizes))])
    order.sort(key=lambda g: -sizes[g])  # stable: ties keep the shuffled order
    load = np.zeros(n_folds, dtype=int)
    fold_of: dict[str, int] = {}
    for group in order:
        target = int(np.argmin(load))
        fold_of[group] = target
        load[target] += sizes[group]
    return groups.map(fold_of).to_numpy(dtype=int)


def split_fold(meta: pd.DataFrame, folds: np.ndarray, fold: int, *, val_fraction: float, group_by: str,
               seed: int = 0) -> dict[str, list[str]]:
    """Ids of the ``train`` / ``val`` / ``test`` parts of ``fold`` (validation groups drawn from the rest)."""
    ids = meta["id"].astype(str).to_numpy()
    groups = _groups(meta, group_by).to_numpy()
    test = folds == fold
    rest_groups = list(dict.fromkeys(groups[~test]))
    rng = np.random.default_rng(seed + 7919 * (fold + 1))
    rng.shuffle(rest_groups)
    wanted = max(1, int(round(val_fraction * (~test).sum())))
    val_groups, n_val = set(), 0
    for group in rest_groups[:-1]:  # always leave at least one group for training
        if n_val >= wanted:
            break
        val_groups.add(group)
        n_val += int((groups == group).sum())
    val = np.isin(groups, list(val_groups)) & ~test
    return {"train": list(ids[~test & ~val]), "val": list(ids[val]), "test": list(ids[test])}


def subset_dataset(parent: str | os.PathLike, ids: list[str], out: str | os.PathLike) -> Path:
    """A dataset directory listing only ``ids`` of ``parent`` (images shared through symbolic links)."""
    parent, out = Path(parent).resolve(), Path(out)
    ds = open_dataset(parent)
    meta = ds.meta[ds.meta["id"].astype(str).isin(set(ids))]
    if len(meta) != len(set(ids)):
        raise NanosegError("some ids of the subset are not in the dataset", path=parent)
    if (out / META).exists():
        old = pd.read_parquet(out / META)
        if list(old["id"].astype(str)) == list(meta["id"].astype(str)):
            return out  # already made (resume)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in (IMAGES, MASKS, INSTANCES):
        if (parent / name).exists():
            os.symlink(parent / name, out / name, target_is_directory=True)
    info = dict(ds.info)
    info["subset_of"] = str(parent)
    (out / INFO).write_text(json.dumps(info, indent=2, default=str))
    with atomic_path(out / META) as tmp:
        meta.to_parquet(tmp, index=False)
    return out


def find_preset(name: str, spec_dir: Path | None) -> str | Path:
    """The simulation preset a spec names: a path, or ``<name>.yaml`` next to the spec, in
    ``examples/simulate`` of the spec's project, the working folder or this checkout; else ``name`` as given."""
    candidates = [Path(name)]
    stem = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    if spec_dir is not None:
        candidates += [spec_dir / stem, spec_dir.parent / "simulate" / stem]
    candidates += [Path.cwd() / "examples" / "simulate" / stem,
                   Path(__file__).resolve().parents[3] / "examples" / "simulate" / stem]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return name  # let the simulator resolve its own preset names


def prepare_dataset(spec: StudySpec, name: str, out_dir: str | os.PathLike, *, spec_dir: Path | None = None,
                    scheduler: str | None = None, progress: bool = False) -> Path:
    """The directory of dataset ``name``: its path, or the preset simulated into ``out_dir/data/name`` (resumes).

    ``scheduler``: the Dask scheduler address the simulation runs on; ``None`` simulates in this process.
    """
    ds = spec.datasets[name]
    if ds.path is not None:
        path = Path(ds.path)
        open_dataset(path)  # raises a clear error when it is not a dataset
        return path
    target = Path(out_dir) / "data" / name
    wanted = spec.dataset_n_images(name)
    if (target / META).exists() and len(pd.read_parquet(target / META)) >= wanted:
        return target
    from nanoseg.simulate import generate_dataset

    preset = find_preset(ds.preset, spec_dir)
    overrides = deep_merge(spec.simulation, ds.overrides)
    if overrides:
        if not isinstance(preset, Path):
            raise NanosegError(f"dataset {name!r}: cannot find the preset file {ds.preset!r} to apply overrides",
                               hint="give the preset as a path to its YAML file")
        import yaml

        preset = deep_merge(yaml.safe_load(preset.read_text()) or {}, overrides)
    return Path(generate_dataset(preset, target, n_images=wanted, seed=ds.seed, scheduler=scheduler,
                                 n_workers=0 if scheduler is None else None, progress=progress))


def make_fold_subsets(spec: StudySpec, name: str, dataset_dir: str | os.PathLike, out_dir: str | os.PathLike
                      ) -> dict[int, dict[str, Path]]:
    """``{fold: {"train": dir, "val": dir, "test": dir}}`` for dataset ``name``, under ``out_dir/folds/name``."""
    meta = open_dataset(dataset_dir).meta
    group_by = spec.dataset_group_by(name)
    try:
        folds = assign_folds(meta, n_folds=spec.folds, group_by=group_by)
    except NanosegError as exc:
        raise NanosegError(f"dataset {name!r}: {exc.message}", path=dataset_dir, hint=exc.hint) from None
    out: dict[int, dict[str, Path]] = {}
    for fold in range(spec.folds):
        parts = split_fold(meta, folds, fold, val_fraction=spec.val_fraction, group_by=group_by)
        out[fold] = {part: subset_dataset(dataset_dir, ids, Path(out_dir) / "folds" / name / f"f{fold}" / part)
                     for part, ids in parts.items()}
    return out
