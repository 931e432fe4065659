"""Batch inference over files: the workflow ``nanoseg predict`` runs (was ``nanoseg.infer.batch``).

For every input file ``<stem>.<ext>`` the output folder receives

=========================  ===========================================================================
``<stem>.mask.tif``         uint8 0/1 mask, ImageJ TIFF with the input's pixel size (nm)
``<stem>.probability.tif``  float32 particle probability, same calibration
``<stem>.variance.tif``     float32 per-pixel variance (only with an ensemble or ``tta``)
``<stem>.particles.csv``    one row per particle (``nanoseg.particles.particle_table``: sizes in nm, ...;
                            ``ml_weight``: the Miles–Lantuéjoul border weight, NaN for cut particles;
                            ``image_estimated_dice`` / ``image_low_confidence``: the image's quality estimate)
``<stem>.overlay.png``      8-bit preview with the mask outline in red
``<stem>.json``             metadata: models, threshold, warnings, out-of-distribution flags, timings,
                            ``estimated_dice`` / ``low_confidence`` and ``quality`` (:mod:`nanoseg.infer.quality`)
=========================  ===========================================================================

The JSON is written last, so its presence marks a finished input: a rerun skips it (resume) unless
``overwrite``. A rerun resumes only with the same settings: ``predict_settings.json`` records the model
(a sha1 of its card and weights files), the threshold, ``tta``, the pixel-size override, the tile size and
the smallest particle kept; a rerun with other settings is refused (redo with ``overwrite``, or use another
folder). How the work runs (device, engine, batch size, Dask) and ``assume_model_pixel_size`` (which only
decides whether an uncalibrated file can run at all) are not part of it. Bad files (unreadable, NaNs, no pixel size, ...) are skipped and reported
(:class:`nanoseg._util.BatchReport`). With ``scheduler`` (a Dask scheduler address) or ``workers`` (a local
Dask cluster of that many processes), files are spread over Dask workers; each worker loads the model
once and keeps it for every file it gets.

Example
-------
>>> # result = predict_files(["a.dm4", "b.dm4"], "out", model="default", tta=True)
>>> # print(result.report.summary())
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanoseg._util import BatchReport, progress_iter
from nanoseg.errors import NanosegError
from nanoseg.infer.fingerprint import model_fingerprint

SETTINGS_FILE = "predict_settings.json"
#: options of :func:`nanoseg.infer.predict` that change no finished output, so a resume may differ in them
RUN_ONLY_OPTIONS = frozenset({"batch_size", "device", "engine", "assume_model_pixel_size"})
SUFFIXES = {"mask": ".mask.tif", "probability": ".probability.tif", "variance": ".variance.tif",
            "particles": ".particles.csv", "overlay": ".overlay.png", "metadata": ".json"}


@dataclass
class BatchResult:
    """Outcome of :func:`predict_files`: the skip-and-report ledger plus warnings and outputs per file."""

    report: BatchReport
    warnings: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.report.ok


def output_paths(out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """The output files of one input (see the module docstring)."""
    out = Path(out_dir)
    return {kind: out / f"{stem}{suffix}" for kind, suffix in SUFFIXES.items()}


def is_finished(out_dir: str | os.PathLike, stem: str) -> bool:
    """True when the input's metadata JSON (written last) exists."""
    return output_paths(out_dir, stem)["metadata"].exists()


def resume_settings(model, *, min_diameter_nm: float, **options) -> dict[str, Any]:
    """The settings every finished output depends on: the key for resuming a folder (see the module docstring)."""
    settings: dict[str, Any] = {"model": model_fingerprint(model), "min_diameter_nm": min_diameter_nm}
    settings.update({k: v for k, v in sorted(options.items()) if k not in RUN_ONLY_OPTIONS})
    return settings


def finished_stems(out_dir: str | os.PathLike) -> list[str]:
    """Stems of the finished inputs in a predict folder (mask written and metadata JSON, written last)."""
    masks = sorted(Path(out_dir).glob(f"*{SUFFIXES['mask']}"))
    stems = [p.name[: -len(SUFFIXES["mask"])] for p in masks]
    return [stem for stem in stems if is_finished(out_dir, stem)]


def check_resume_settings(out: Path, settings: dict[str, Any], *, overwrite: bool) -> None:
    """Refuse to mix outputs of other settings into ``out`` (unless ``overwrite``); then record ``settings``.

    A folder without finished outputs (e.g. every input failed) takes the new settings without asking.
    """
    from nanoseg._util import atomic_path, require_same_settings, settings_digest

    path = out / SETTINGS_FILE
    hint = "rerun with overwrite=True to redo the inputs with these settings, or choose another out_dir=FOLDER"
    any_finished = bool(finished_stems(out))
    if not overwrite and any_finished:
        if path.exists():
            try:
                stored = json.loads(path.read_text(encoding="utf-8")).get("settings")
            except (json.JSONDecodeError, AttributeError):
                raise NanosegError("unreadable settings record", path=path, hint=hint) from None
            require_same_settings(stored, settings, path=out, hint=hint)
        else:
            raise NanosegError("this folder holds finished predictions whose settings were not recorded",
                               path=out, hint=hint)
    record = {"settings": settings, "settings_sha1": settings_digest(settings)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")


def _stems(paths: Sequence[Path]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    seen: dict[str, Path] = {}
    for stem, path in zip(stems, paths, strict=True):
        if stem in seen and seen[stem] != path:
            raise NanosegError(f"two inputs would write the same outputs ({seen[stem]} and {path})",
                               hint="run them into different output folders, or rename one")
        seen[stem] = path
    return stems


def write_prediction(pred, micrograph, out_dir: str | os.PathLike, stem: str, *, min_diameter_nm: float = 0.5,
                     extra: dict[str, Any] | None = None) -> dict[str, str]:
    """Write the outputs of one :class:`~nanoseg.infer.Prediction` (metadata JSON last); return the paths."""
    from nanoseg._util import atomic_path
    from nanoseg.io import write_png_preview, write_tiff
    from nanoseg.particles import label_particles, miles_lantuejoul_weights, particle_table

    paths = output_paths(out_dir, stem)
    px = pred.pixel_size_nm
    table_px = px
    if table_px is None:  # assumed to be at the model's pixel size
        table_px = next((m["model_pixel_size_nm"] for m in pred.metadata.get("models", [])
                         if m.get("model_pixel_size_nm")), None)
    write_tiff(paths["mask"], pred.mask.astype(np.uint8), pixel_size_nm=px)
    write_tiff(paths["probability"], pred.probability.astype(np.float32), pixel_size_nm=px)
    written = {"mask": str(paths["mask"]), "probability": str(paths["probability"])}
    if pred.variance is not None:
        write_tiff(paths["variance"], pred.variance.astype(np.float32), pixel_size_nm=px)
        written["variance"] = str(paths["variance"])
    n_particles, labels = None, None
    if table_px is not None:
        labels = label_particles(pred.mask, pixel_size_nm=table_px, min_diameter_nm=min_diameter_nm)
        std = None if pred.variance is None else np.sqrt(np.clip(pred.variance, 0, None))
        table = particle_table(labels, pixel_size_nm=table_px, image=micrograph.data, probability=pred.probability,
                               probability_std=std, threshold=pred.threshold)
        # border correction for the size statistics of the report: NaN for particles cut by the frame
        table["ml_weight"] = miles_lantuejoul_weights(labels, table["label"].to_numpy())
        table.loc[table["touches_edge"].to_numpy(dtype=bool), "ml_weight"] = np.nan
        # the image's quality estimate on every row (one value per image; see nanoseg.infer.quality)
        table["image_estimated_dice"] = pred.estimated_dice
        table["image_low_confidence"] = pred.low_confidence
        with atomic_path(paths["particles"]) as tmp:
            table.to_csv(tmp, index=False)
        written["particles"] = str(paths["particles"])
        n_particles = len(table)
    # the particles of the table, one outline each (the lines where touching particles were split too)
    write_png_preview(paths["overlay"], micrograph.data, overlay_mask=pred.mask if labels is None else labels)
    written["overlay"] = str(paths["overlay"])
    meta = {"input": micrograph.source, "pixel_size_nm": px, "particle_table_pixel_size_nm": table_px,
            "dose_e_per_A2": micrograph.dose_e_per_A2, "n_particles": n_particles,
            "mask_fraction": float(pred.mask.mean()), "estimated_dice": pred.estimated_dice,
            "low_confidence": pred.low_confidence, "warnings": pred.warnings, "ood": pred.ood,
            "outputs": written, **pred.metadata, **(extra or {})}
    with atomic_path(paths["metadata"]) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=_json_default), encoding="utf-8")
    return written


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def predict_file(path: str | os.PathLike, out_dir: str | os.PathLike, models, *, stem: str | None = None,
                 min_diameter_nm: float = 0.5, **options) -> tuple[dict[str, str], list[str]]:
    """Read one file, predict, write its outputs; return ``(outputs, warnings)``."""
    from nanoseg.infer.predict import predict
    from nanoseg.io import read

    path = Path(path)
    try:
        micrograph = read(path)
        pred = predict(micrograph, models, **options)
    except NanosegError as exc:
        # The batch ledger keeps only the message: fold the hint into it so the fix is listed too.
        message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
        raise NanosegError(message, path=path if exc.path in (None, str(path)) else exc.path) from None
    written = write_prediction(pred, micrograph, out_dir, stem or path.stem, min_diameter_nm=min_diameter_nm)
    return written, list(pred.warnings)


# ------------------------------------------------------------------------------------------ Dask workers
_WORKER_MODELS: dict[str, list] = {}


def _worker_task(path: str, out_dir: str, stem: str, model_spec, options: dict) -> tuple:
    """Runs on a Dask worker: the model is loaded on first use and kept for the worker's lifetime."""
    from nanoseg.infer.predict import resolve_models

    key = json.dumps(model_spec, default=str)
    try:
        if key not in _WORKER_MODELS:
            _WORKER_MODELS[key] = model_spec if model_spec == "auto" else resolve_models(model_spec)
        written, notes = predict_file(path, out_dir, _WORKER_MODELS[key], stem=stem, **options)
        return "done", written, notes
    except NanosegError as exc:
        return "failed", str(exc.message if exc.path in (None, path) else exc), []


def _picklable_spec(model):
    if model is None or isinstance(model, (str, os.PathLike)):
        return None if model is None else str(model)
    if isinstance(model, (list, tuple)) and all(isinstance(m, (str, os.PathLike)) for m in model):
        return [str(m) for m in model]
    raise NanosegError("on Dask (scheduler=ADDRESS or workers=K) the model must be given as a path (or 'default')",
                       hint="save the model with nanoseg.models.save_model and pass its path")


def predict_files(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    model=None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    scheduler: str | None = None,
    workers: int | None = None,
    min_diameter_nm: float = 0.5,
    **options,
) -> BatchResult:
    """Predict every file and write its outputs (see the module docstring).

    ``options`` go to :func:`nanoseg.infer.predict` (``threshold``, ``tta``, ``pixel_size_nm``,
    ``assume_model_pixel_size``, ``tile_size``, ``batch_size``, ``device``, ``engine``).
    """
    from nanoseg.infer.predict import resolve_models

    paths = [Path(p) for p in paths]
    if not paths:
        raise NanosegError("no input files given", hint="e.g. `nanoseg predict frames/*.dm4 --out masks`")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NanosegError("the output path exists and is not a folder", path=out)
    out.mkdir(parents=True, exist_ok=True)
    stems = _stems(paths)
    settings = resume_settings(model, min_diameter_nm=min_diameter_nm, **options)
    check_resume_settings(out, settings, overwrite=overwrite)
    result = BatchResult(report=BatchReport())
    todo = []
    for path, stem in zip(paths, stems, strict=True):
        if not overwrite and is_finished(out, stem):
            result.report.skip(str(path))
        else:
            todo.append((path, stem))
    if not todo:
        return result
    options = {**options, "min_diameter_nm": min_diameter_nm}
    if scheduler is None and not workers:
        models = model if isinstance(model, str) and model == "auto" else resolve_models(model)
        for path, stem in progress_iter(todo, "predicting", enabled=progress):
            with result.report.item(str(path)):
                written, notes = predict_file(path, out, models, stem=stem, **options)
                result.outputs[str(path)] = written
                if notes:
                    result.warnings[str(path)] = notes
        return result
    _run_on_dask(todo, out, _picklable_spec(model), options, result, scheduler=scheduler, workers=workers,
                 progress=progress)
    return result


def _run_on_dask(todo, out: Path, spec, options, result: BatchResult, *, scheduler, workers, progress) -> None:
    from dask.distributed import Client, as_completed

    from nanoseg._util import local_cluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise NanosegError(f"cannot reach the Dask scheduler {scheduler!r} ({exc})",
                               hint="check the address (tcp://host:8786) or use workers=K for a local cluster"
                               ) from None
        cluster = None
    else:
        if int(workers) < 1:
            raise NanosegError(f"workers={workers} must be ≥ 1")
        cluster = local_cluster(int(workers), dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(_worker_task, str(path), str(out), stem, spec, options, pure=False): path
                   for path, stem in todo}
        for future in progress_iter(as_completed(futures), "predicting", total=len(futures), enabled=progress):
            path = futures[future]
            try:
                status, payload, notes = future.result()
            except Exception as exc:  # a crash on the worker (not a user error): record it and go on
                status, payload, notes = "failed", f"worker error: {exc}", []
            if status == "done":
                result.report.done.append(str(path))
                result.outputs[str(path)] = payload
                if notes:
                    result.warnings[str(path)] = notes
            else:
                result.report.failed.append((str(path), payload))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
