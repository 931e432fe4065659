"""Hyperparameter search with Optuna inside a study: trials are Dask tasks, the objective is validation loss.

For each (train set, option) the search trains on fold 0's training part and scores the validation part
(never the held-out test fold). Trials are asked in batches of ``search.parallel`` per search and run side by
side on the cluster; the Optuna study lives in ``search/<train>__<option>.db`` (SQLite), so an interrupted
search resumes with its finished trials. The best parameters land in ``search/<train>__<option>.json`` and are
merged into the training config of every fold and seed (Sytwu's "tuned models").

Example
-------
>>> space = {"lr": {"low": 1e-5, "high": 1e-2, "log": True}, "batch_size": [8, 16]}
>>> import optuna
>>> trial = optuna.create_study().ask()
>>> sorted(suggest(trial, space))
['batch_size', 'lr']
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nanoseg._util import atomic_path
from nanoseg.errors import NanosegError
from nanoseg.study.backends import error_text, get_backend, pick_device
from nanoseg.study.grid import TrainTask, set_dotted
from nanoseg.study.spec import StudySpec


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """Draw one value per key of ``space`` from an Optuna trial."""
    params = {}
    for key, dist in space.items():
        if isinstance(dist, list):
            params[key] = trial.suggest_categorical(key, dist)
        elif dist.get("int"):
            params[key] = trial.suggest_int(key, int(dist["low"]), int(dist["high"]), log=bool(dist.get("log")),
                                            step=int(dist.get("step", 1)))
        else:
            params[key] = trial.suggest_float(key, float(dist["low"]), float(dist["high"]),
                                              log=bool(dist.get("log")), step=dist.get("step"))
    return params


def trial_task(backend_name: str, config: dict[str, Any], train_dir: str, val_dir: str, trial_dir: str) -> float:
    """Train one trial and return its validation loss (the trial's checkpoint is removed afterwards)."""
    backend = get_backend(backend_name)
    try:
        checkpoint = backend.train(Path(train_dir), Path(val_dir), config, Path(trial_dir),
                                   device=pick_device(config))
        return float(backend.validation_loss(checkpoint))
    finally:
        shutil.rmtree(trial_dir, ignore_errors=True)


def run_searches(spec: StudySpec, trainings: list[TrainTask], folds: dict, out: Path, ex, *,
                 progress: bool = True) -> dict[str, dict[str, Any]]:
    """Best parameters (a training-config patch) per ``TrainTask.search_key``; resumes from ``out/search``."""
    import optuna

    assert spec.search is not None
    search = spec.search
    folder = Path(out) / "search"
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    representative: dict[str, TrainTask] = {}
    for t in trainings:
        representative.setdefault(t.search_key, t)
    best: dict[str, dict[str, Any]] = {}
    studies = {}
    for key in representative:
        done_path = folder / f"{key}.json"
        if done_path.exists():
            best[key] = json.loads(done_path.read_text())["patch"]
            continue
        sampler = (optuna.samplers.RandomSampler(seed=search.seed) if search.sampler == "random"
                   else optuna.samplers.TPESampler(seed=search.seed))
        studies[key] = optuna.create_study(study_name=key, storage=f"sqlite:///{folder / (key + '.db')}",
                                           load_if_exists=True, direction="minimize", sampler=sampler)
    while studies:
        batch = []
        for key, study in studies.items():
            n_done = len([tr for tr in study.trials if tr.state.is_finished()])
            for _ in range(min(search.parallel, search.n_trials - n_done)):
                trial = study.ask()
                params = suggest(trial, search.space)
                config = dict(representative[key].config)
                for name, value in params.items():
                    config = set_dotted(config, name, value)
                parts = folds[representative[key].train_set][0]
                fut = ex.submit(_safe_trial, spec.backend, config, str(parts["train"]), str(parts["val"]),
                                str(folder / key / f"trial{trial.number}"), key=f"trial-{spec.name}-{key}-{trial.number}")
                batch.append((key, trial, fut))
        for key, trial, fut in batch:
            value, error = fut.result()
            study = studies[key]
            if error is None:
                study.tell(trial, value)
            else:
                trial.set_user_attr("error", error)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        for key in list(studies):
            study = studies[key]
            if len([tr for tr in study.trials if tr.state.is_finished()]) < search.n_trials:
                continue
            complete = [tr for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE]
            if not complete:
                errors = {tr.user_attrs.get("error") for tr in study.trials}
                raise NanosegError(f"every search trial of {key} failed: {sorted(e for e in errors if e)[:3]}")
            patch: dict[str, Any] = {}
            for name, value in study.best_params.items():
                patch = set_dotted(patch, name, value)
            best[key] = patch
            record = {"patch": patch, "best_params": study.best_params, "best_val_loss": study.best_value,
                      "n_trials": len(study.trials)}
            with atomic_path(folder / f"{key}.json") as tmp:
                tmp.write_text(json.dumps(record, default=str))
            del studies[key]
    return best


def _safe_trial(backend_name, config, train_dir, val_dir, trial_dir) -> tuple[float | None, str | None]:
    try:
        return trial_task(backend_name, config, train_dir, val_dir, trial_dir), None
    except Exception as exc:
        return None, error_text(exc)
