"""Run a study on Dask: one task per training, one per evaluation cell depending on it; resume; record failures.

Layout of a study directory::

    spec.yaml                 the resolved spec that ran (after the size patch)
    data/<dataset>/           simulated preset datasets (generated on demand)
    folds/<dataset>/f<k>/     train / val / test subsets of fold k (symbolic links, no copies)
    descriptors/<dataset>.json
    search/<train>__<option>.json   best hyperparameters (Optuna), when the spec has `search`
    models/<training>/        checkpoints + training.json (status, config hash, wall time)
    results/cells/<cell>.json one row per evaluation cell, written atomically by the task itself
    results.parquet           all rows, consolidated as cells finish and at the end

Running the same spec into the same directory again skips every finished training (its ``training.json`` says
ok for the same config) and every finished cell (its row says ok for the same config); failed ones run again.

Example
-------
>>> run_study("examples/studies/tiny.yaml", "runs/tiny", scheduler="sync")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from nanoseg._util import atomic_path
from nanoseg.datasets import open_dataset
from nanoseg.errors import NanosegError
from nanoseg.study.backends import error_text, get_backend, pick_device
from nanoseg.study.data import make_fold_subsets, prepare_dataset
from nanoseg.study.descriptors import dataset_descriptors
from nanoseg.study.grid import EvalCell, TrainTask, expand_grid
from nanoseg.study.spec import StudySpec, deep_merge, load_spec
from nanoseg.study.store import ResultsStore

METRICS = ("dice", "soft_dice", "iou", "precision", "recall", "f1", "pixel_error")


def config_hash(config: dict[str, Any], backend: str, *data: Any) -> str:
    """A short hash of what a result depends on: the training config, the backend and the data (image ids)."""
    text = json.dumps({"config": config, "backend": backend, "data": data}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _ids(dataset_dir) -> list[str]:
    return sorted(open_dataset(dataset_dir).ids)


# ----------------------------------------------------------------------------------------------- the tasks
def train_task(task: TrainTask, backend_name: str, train_dir: str, val_dir: str | None, model_dir: str,
               threads: int | None = None, chash: str = "") -> dict[str, Any]:
    """Train one model (skipped when ``model_dir/training.json`` says it is done with the same ``chash``, the
    hash of config, backend and training/validation ids). Never raises."""
    model_dir_p = Path(model_dir)
    record_path = model_dir_p / "training.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("status") == "ok" and record.get("config_hash") == chash:
            record["skipped"] = True
            return record
    if threads:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
    start = time.perf_counter()
    record: dict[str, Any] = {"training": task.key, "config_hash": chash, "config": task.config}
    try:
        backend = get_backend(backend_name)
        checkpoint = backend.train(Path(train_dir), None if val_dir is None else Path(val_dir), dict(task.config),
                                   model_dir_p / "model", device=pick_device(task.config))
        record.update(status="ok", error=None, checkpoint=str(checkpoint))
    except Exception as exc:  # a failed training is recorded; its cells are recorded as failed
        record.update(status="failed", error=error_text(exc), checkpoint=None)
    record["train_wall_s"] = time.perf_counter() - start
    record["host"] = socket.gethostname()
    model_dir_p.mkdir(parents=True, exist_ok=True)
    with atomic_path(record_path) as tmp:
        tmp.write_text(json.dumps(record, default=str))
    return record


def base_row(spec: StudySpec, cell: EvalCell, chash: str) -> dict[str, Any]:
    t = cell.training
    row: dict[str, Any] = {
        "study": spec.name, "size": spec.size, "cell": cell.key, "training": t.key, "train_set": t.train_set,
        "test_set": cell.test_set, "in_distribution": cell.in_distribution, "fold": t.fold,
        "seed": -1 if cell.members else t.seed, "ensemble_size": len(cell.trainings),
        "option": cell.option_label, "backend": spec.backend, "config_hash": chash,
    }
    for name, label in t.option.labels.items():
        row[f"opt_{name}"] = label
    if cell.members:  # its own option column, so sweep figures draw ensembles and single models apart
        row["opt_ensemble"] = str(len(cell.members))
    return row


def eval_task(spec_json: str, cell: EvalCell, training: dict[str, Any] | list[dict[str, Any]], test_dir: str,
              study_dir: str, chash: str = "") -> dict[str, Any]:
    """Evaluate one cell and store its row (status ok or failed; ``chash`` identifies config and data).
    ``training``: the training record of the cell's model, or the list of its members' records (an ensemble
    cell: the mean probability of their models is scored). Never raises."""
    from nanoseg.evaluate.pixel import pixel_metrics

    spec = StudySpec.model_validate_json(spec_json)
    records = training if isinstance(training, list) else [training]
    row = base_row(spec, cell, chash)
    row["train_wall_s"] = float(sum(r.get("train_wall_s") or 0.0 for r in records))
    start = time.perf_counter()
    try:
        for task, record in zip(cell.trainings, records, strict=True):
            if record.get("status") != "ok":
                raise NanosegError(f"training {task.key} failed: {record.get('error')}")
        backend = get_backend(spec.backend)
        device = pick_device(cell.training.config)
        models = [backend.load(Path(record["checkpoint"]), device=device) for record in records]
        ds = open_dataset(test_dir)
        if len(ds) == 0:
            raise NanosegError("the test set is empty", path=test_dir)
        per_image = []
        for image_id in ds.ids:
            micrograph = ds.micrograph(image_id)
            probability = np.mean([backend.predict(model, micrograph) for model in models], axis=0)
            per_image.append(pixel_metrics(probability, ds.mask(image_id), threshold=spec.threshold,
                                           smooth=spec.smooth))
        table = pd.DataFrame(per_image)
        for name in METRICS:
            if name in table:
                row[name] = float(table[name].mean())  # per-patch mean (Sytwu)
                row[f"{name}_image_std"] = float(table[name].std(ddof=0))
        row.update(status="ok", error=None, n_images=len(ds))
    except Exception as exc:
        row.update(status="failed", error=error_text(exc))
    row["eval_wall_s"] = time.perf_counter() - start
    row["wall_s"] = row["eval_wall_s"] + row["train_wall_s"]
    row["finished_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    row["host"] = socket.gethostname()
    ResultsStore(study_dir).write(row)
    return row


def descriptor_task(dataset_dir: str, out_path: str) -> dict[str, Any]:
    path = Path(out_path)
    if path.exists():
        return json.loads(path.read_text())
    values = dataset_descriptors(dataset_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(values))
    return values


# ------------------------------------------------------------------------------------------------ execution
class _Executor:
    """``submit`` / ``as_completed`` over a Dask client, or in-process (``sync``) for debugging."""

    def __init__(self, scheduler: str | None, n_workers: int | None):
        self.client = None
        self.cluster = None
        self.n_workers = 1
        self.local = scheduler in (None, "local", "processes", "threads", "sync")
        if scheduler == "sync":
            return
        from distributed import Client

        from nanoseg._util import local_cluster

        if scheduler in (None, "local", "processes", "threads"):
            n_gpus = _gpu_count()
            n = n_workers or (n_gpus or os.cpu_count() or 1)
            self.cluster = local_cluster(n, processes=scheduler != "threads", silence_logs=40)
            self.client = Client(self.cluster)
            self.n_workers = n
        else:
            try:
                self.client = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise NanosegError(f"cannot reach the Dask scheduler {scheduler!r} ({exc})",
                                   hint="start one with `dask scheduler`, or leave scheduler= out for a local cluster") from None
            self.n_workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    @property
    def address(self) -> str | None:
        return None if self.client is None else self.client.scheduler.address

    def submit(self, func, *args, key: str | None = None, priority: int = 0):
        if self.client is None:
            return _Done(func, args)
        return self.client.submit(func, *args, key=key, pure=False, priority=priority)

    def as_completed(self, futures):
        if self.client is None:
            yield from futures
            return
        from distributed import as_completed

        yield from as_completed(futures)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class _Done:
    """A lazily computed stand-in for a future in ``sync`` mode (computes on first ``result()``)."""

    def __init__(self, func, args):
        self.func, self.args, self._value, self._done = func, args, None, False

    def result(self):
        if not self._done:
            args = [[b.result() if isinstance(b, _Done) else b for b in a] if isinstance(a, list)
                    else a.result() if isinstance(a, _Done) else a for a in self.args]
            self._value, self._done = self.func(*args), True
        return self._value


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def _check_study_dir(out: Path, spec: StudySpec) -> None:
    stored = out / "spec.yaml"
    if stored.exists():
        old = yaml.safe_load(stored.read_text()) or {}
        if old.get("name") not in (None, spec.name):
            raise NanosegError(f"this folder holds study {old.get('name')!r}, not {spec.name!r}", path=out,
                               hint="use another out_dir=FOLDER")
    with atomic_path(stored) as tmp:
        tmp.write_text(yaml.safe_dump(json.loads(spec.model_dump_json()), sort_keys=False))


def run_study(spec: str | os.PathLike | dict | StudySpec, out_dir: str | os.PathLike, *, size: str | None = None,
              scheduler: str | None = None, n_workers: int | None = None, progress: bool = True,
              descriptors: bool = True) -> pd.DataFrame:
    """Run (or resume) a study and return its results table (one row per evaluation cell).

    Parameters
    ----------
    spec : path, dict or StudySpec
        The study spec (``docs/studies.md``).
    out_dir : path
        The study directory (created; reused to resume).
    size : str, optional
        The ``sizes`` entry to apply (``"small"``, ``"full"``).
    scheduler : str, optional
        ``None``/``"local"``: a Dask ``LocalCluster`` of worker processes (one per GPU when there are GPUs,
        else one per core); ``"threads"``: a LocalCluster of threads; ``"sync"``: no Dask, in this process;
        else the address of a running scheduler (``tcp://host:8786``).
    n_workers : int, optional
        Workers of the LocalCluster.
    progress : bool
        Show a progress bar.
    descriptors : bool
        Compute the dataset descriptors (for the report's drop-vs-descriptor plot).

    Examples
    --------
    >>> table = run_study("examples/studies/tiny.yaml", "runs/tiny", scheduler="sync")  # doctest: +SKIP
    >>> table.groupby(["train_set", "test_set"])["dice"].mean()  # doctest: +SKIP
    """
    spec_dir = None
    if isinstance(spec, StudySpec):
        if size is not None:
            spec = load_spec(spec.model_dump(), size=size)
    else:
        spec_dir = None if isinstance(spec, dict) else Path(spec).resolve().parent
        spec = load_spec(spec, size=size)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _check_study_dir(out, spec)
    spec_json = spec.model_dump_json()
    store = ResultsStore(out)
    get_backend(spec.backend)  # fail early on a bad backend name

    ex = _Executor(scheduler, n_workers)
    try:
        names = list(dict.fromkeys(spec.train_sets + spec.test_sets))
        dataset_dirs: dict[str, str] = {}
        for name in names:  # presets are simulated on the study's cluster (one task per image)
            try:
                dataset_dirs[name] = str(prepare_dataset(spec, name, out, spec_dir=spec_dir,
                                                         scheduler=ex.address, progress=progress))
            except NanosegError:
                raise
            except Exception as exc:
                raise NanosegError(f"cannot prepare dataset {name!r}: {error_text(exc)}") from None
        desc_futures = []
        if descriptors:
            desc_futures = [ex.submit(descriptor_task, dataset_dirs[n], str(out / "descriptors" / f"{n}.json"),
                                      key=f"descriptors-{spec.name}-{n}") for n in names]
        folds = {n: make_fold_subsets(spec, n, dataset_dirs[n], out) for n in spec.train_sets}

        trainings, cells = expand_grid(spec)
        if spec.search is not None:
            from nanoseg.study.search import run_searches

            best = run_searches(spec, trainings, folds, out, ex, progress=progress)
            trainings = [TrainTask(t.train_set, t.fold, t.seed, t.option, deep_merge(t.config, best[t.search_key]))
                         for t in trainings]
            by_key = {t.key: t for t in trainings}
            cells = [EvalCell(by_key[c.training.key], c.test_set, tuple(by_key[t.key] for t in c.members))
                     for c in cells]

        finished = store.finished_cells()
        train_hash = {}
        for t in trainings:
            parts = folds[t.train_set][t.fold]
            train_hash[t.key] = config_hash(t.config, spec.backend, _ids(parts["train"]), _ids(parts["val"]))
        test_dirs = {c.key: (str(folds[c.test_set][c.training.fold]["test"]) if c.in_distribution
                             else dataset_dirs[c.test_set]) for c in cells}
        test_ids = {d: _ids(d) for d in set(test_dirs.values())}
        # a single model's cell keeps the hash it always had (finished studies resume); an ensemble's lists its members
        models_hash = {c.key: [train_hash[t.key] for t in c.members] if c.members else train_hash[c.training.key]
                       for c in cells}
        cell_hash = {c.key: config_hash({}, models_hash[c.key], test_ids[test_dirs[c.key]]) for c in cells}
        todo = [c for c in cells if finished.get(c.key, "missing") != cell_hash[c.key]]
        needed = {t.key for c in todo for t in c.trainings}
        # local workers share this machine's cores; remote workers keep their own torch defaults
        threads = max(1, (os.cpu_count() or 1) // max(1, ex.n_workers)) if ex.local else None
        train_futures = {}
        for t in trainings:
            if t.key not in needed:
                continue
            parts = folds[t.train_set][t.fold]
            val = str(parts["val"]) if len(open_dataset(parts["val"])) else None
            train_futures[t.key] = ex.submit(train_task, t, spec.backend, str(parts["train"]), val,
                                             str(out / "models" / t.key), threads, train_hash[t.key],
                                             key=f"train-{spec.name}-{t.key}")
        cell_futures = {}
        for c in todo:
            records = ([train_futures[t.key] for t in c.members] if c.members
                       else train_futures[c.training.key])
            cell_futures[c.key] = ex.submit(eval_task, spec_json, c, records,
                                            test_dirs[c.key], str(out), cell_hash[c.key],
                                            key=f"eval-{spec.name}-{c.key}", priority=1)
        _wait(ex, spec, train_futures, cell_futures, {c.key: c for c in todo}, store, len(cells) - len(todo),
              progress, cell_hash)
        for fut in desc_futures:
            try:
                fut.result()
            except Exception:  # descriptors are optional: the report says when they are missing
                pass
    finally:
        ex.close()
    store.consolidate()
    return store.load()


def _wait(ex: _Executor, spec: StudySpec, train_futures: dict, cell_futures: dict, cells: dict[str, EvalCell],
          store: ResultsStore, n_skipped: int, progress: bool, cell_hash: dict[str, str]) -> None:
    """Follow trainings and cells as they finish (one progress bar); record cells whose worker died."""
    from nanoseg._util import progress_iter

    key_of = {f: ("train", k) for k, f in train_futures.items()}
    key_of.update({f: ("cell", k) for k, f in cell_futures.items()})
    last = time.monotonic()
    label = (f"study {spec.name}: {len(train_futures)} trainings + {len(cell_futures)} cells"
             + (f" ({n_skipped} cells done before)" if n_skipped else ""))
    done = progress_iter(ex.as_completed(list(key_of)), label, total=len(key_of), enabled=progress)
    for fut in done:
        kind, key = key_of[fut]
        try:
            fut.result()
        except Exception as exc:  # the worker died (KilledWorker, lost connection): record the cell here
            if kind == "cell":
                row = base_row(spec, cells[key], cell_hash[key])
                row.update(status="failed", error=error_text(exc))
                store.write(row)
        if time.monotonic() - last > 30:
            store.consolidate()
            last = time.monotonic()
