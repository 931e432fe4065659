"""Score a whole dataset: per-image table, threshold sweeps, particle matching and size distributions.

:func:`evaluate_dataset` streams over the images of a :class:`nanoseg.datasets.Dataset` (one prediction in
memory at a time, plus the few worst cases kept for figures) and returns an :class:`Evaluation`;
:func:`write_evaluation` writes ``metrics.csv`` (one row per image), ``summary.csv`` (mean ± std over
images, pooled scores, size-distribution comparison), ``thresholds.csv`` (mean ± std per threshold),
``particles_pred.csv`` / ``particles_true.csv`` and the figures.

Predictions come from a mapping or a callable ``id -> probability map`` (same grid as the dataset image);
:func:`prediction_dir_loader` reads the outputs of ``nanoseg predict`` and :func:`model_predictor` predicts
with a model on the fly.

Example
-------
>>> # ds = open_dataset("data/test"); ev = evaluate_dataset(ds, model_predictor(ds, "default"))
>>> # write_evaluation(ev, "eval-out")
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError
from nanoseg.evaluate.matching import instance_labels, matching_scores
from nanoseg.evaluate.pixel import (
    DEFAULT_THRESHOLDS,
    Counts,
    binarize,
    confusion,
    pixel_metrics,
    scores_from_counts,
    summarize_sweep,
    threshold_sweep,
)
from nanoseg.evaluate.sizes import compare_size_distributions, particle_sizes

PER_IMAGE_SCORES = ("dice", "soft_dice", "iou", "precision", "recall", "f1", "pixel_error")


@dataclass
class Evaluation:
    """Everything :func:`evaluate_dataset` measured."""

    per_image: pd.DataFrame
    sweep: pd.DataFrame
    thresholds: pd.DataFrame
    summary: pd.DataFrame
    particles_pred: pd.DataFrame
    particles_true: pd.DataFrame
    size_comparison: dict[str, float]
    reference_sizes_nm: np.ndarray = field(default_factory=lambda: np.array([]))
    worst: list[dict] = field(default_factory=list)  # [{"id", "dice", "image", "truth", "probability"}]
    settings: dict = field(default_factory=dict)


def prediction_dir_loader(directory: str | os.PathLike) -> Callable[[str], np.ndarray]:
    """A loader ``id -> probability map`` for a folder written by ``nanoseg predict``.

    Looks for ``<id>.probability.tif`` and falls back to ``<id>.mask.tif`` (then soft Dice equals hard Dice
    and the threshold sweep is degenerate).
    """
    import tifffile

    directory = Path(directory)
    if not directory.is_dir():
        raise NanosegError("prediction folder not found", path=directory,
                           hint="give the output folder of `nanoseg predict`, or a model")

    def load(image_id: str) -> np.ndarray:
        for suffix in (".probability.tif", ".mask.tif"):
            path = directory / f"{image_id}{suffix}"
            if path.exists():
                try:
                    array = tifffile.imread(path)
                except Exception as exc:  # tifffile raises several types for damaged files
                    raise NanosegError(f"cannot read prediction ({exc})", path=path) from exc
                array = np.asarray(array, dtype=np.float32)
                return array if suffix == ".probability.tif" else (array > 0).astype(np.float32)
        raise NanosegError(f"no prediction for image {image_id!r}", path=directory,
                           hint=f"expected {image_id}.probability.tif; to predict every dataset image, pass the "
                                "model instead (`nanoseg evaluate MODEL DATASET --out DIR`)")

    return load


def model_predictor(dataset, model, *, tta: bool = False, **predict_options) -> Callable[[str], np.ndarray]:
    """A loader ``id -> probability map`` that runs ``nanoseg.infer.predict`` on each dataset image.

    ``model`` is anything :func:`nanoseg.infer.resolve_models` accepts ("default", a checkpoint path, a
    loaded model, a list for an ensemble). The model is loaded once.
    """
    from nanoseg.infer import predict, resolve_models

    models = resolve_models(model)

    def load(image_id: str) -> np.ndarray:
        return predict(dataset.micrograph(image_id), models, tta=tta, **predict_options).probability

    return load


def resolve_predictions(source: str | os.PathLike, dataset, **predict_options
                        ) -> tuple[Callable[[str], np.ndarray], str]:
    """What the first argument of ``nanoseg evaluate`` means: ``(loader, "predictions" | "model")``.

    ``"default"``, a ``.nanoseg`` file, a checkpoint folder (``card.json``) or a folder of checkpoints
    (ensemble) is a model, run on every dataset image; a folder of ``nanoseg predict`` outputs is predictions.
    """
    text = str(source)
    path = Path(text)
    is_model = text == "default" or path.suffix == ".nanoseg" or (path / "card.json").exists() or (
        path.is_dir() and any((p / "card.json").exists() or p.suffix == ".nanoseg" for p in path.iterdir()))
    if is_model:
        return model_predictor(dataset, text, **predict_options), "model"
    if not path.exists():
        raise NanosegError("not found: neither a prediction folder nor a model", path=path,
                           hint="give the output folder of `nanoseg predict`, a checkpoint, or 'default'")
    return prediction_dir_loader(path), "predictions"


def evaluate_dataset(
    dataset,
    predictions: Mapping[str, np.ndarray] | Callable[[str], np.ndarray],
    *,
    ids: Sequence[str] | None = None,
    threshold: float | str = 0.5,
    smooth: float = 1.0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    min_diameter_nm: float = 0.5,
    reference_sizes_nm: Sequence[float] | None = None,
    n_worst: int = 4,
    progress: bool = False,
    exclude_border: bool = True,
) -> Evaluation:
    """Score predictions against a dataset's ground-truth masks (see module docstring).

    Parameters
    ----------
    dataset : a :class:`nanoseg.datasets.Dataset` (images, masks, optional instances, ``pixel_size_nm``).
    predictions : ``id -> probability map`` (a mapping or a callable), same shape as the dataset image.
    threshold : the operating threshold for hard scores and particles (number in (0, 1) or ``"otsu"``).
    smooth : Dice smoothing (1 as in Sytwu et al.).
    thresholds : the sweep (Horwath's curves); Otsu is always added.
    iou_thresholds : IoU thresholds for particle matching.
    min_diameter_nm : particles smaller than this equivalent diameter (nm) are ignored on both sides, for
        matching and sizes (default 0.5 nm, as ``nanoseg predict``; 0 keeps every connected component).
    reference_sizes_nm : manual size measurements (nm) to compare the predicted size distribution against,
        instead of the sizes measured on the ground-truth masks.
    n_worst : keep this many lowest-Dice images for the worst-case figure.
    exclude_border : leave particles touching the image border out of the size distributions (they are cut, so
        their sizes are lower bounds and large particles are cut more often) and weight the others by their
        Miles–Lantuéjoul weight (:func:`nanoseg.evaluate.sizes.particle_sizes`); the count left out is reported
        (``n_border_excluded_*`` and the ``note`` of the size comparison). Matching always uses every particle.

    Particles on both sides are defined by :func:`nanoseg.particles.label_particles`, as in ``nanoseg predict``:
    binary masks are split into touching particles (when the pixel size is known), the dataset's instance
    labels are used as they are (validated).
    """
    from nanoseg._util import progress_iter

    get = predictions.__getitem__ if isinstance(predictions, Mapping) else predictions
    ids = list(dataset.ids if ids is None else ids)
    if not ids:
        raise NanosegError("the dataset holds no images to evaluate", path=getattr(dataset, "root", None))
    rows, sweeps, pred_tables, true_tables = [], [], [], []
    pooled = Counts(0, 0, 0, 0)
    worst: list[tuple[float, int, dict]] = []
    for k, image_id in enumerate(progress_iter(ids, "evaluating", enabled=progress)):
        truth = dataset.mask(image_id) > 0
        prob = np.asarray(get(image_id), dtype=np.float32)
        if prob.shape != truth.shape:
            raise NanosegError(f"prediction for {image_id!r} has shape {prob.shape}, ground truth {truth.shape}",
                               hint="predictions must be on the dataset image grid")
        if not np.isfinite(prob).all():
            raise NanosegError(f"prediction for {image_id!r} contains NaN/inf")
        row = dataset.row(image_id)
        pixel = row.get("pixel_size_nm")
        pixel = None if pixel is None or pd.isna(pixel) else float(pixel)
        scores = pixel_metrics(prob, truth, threshold=threshold, smooth=smooth)
        pred_mask = binarize(prob, scores["threshold"])
        pooled = pooled + confusion(pred_mask, truth)
        true_inst = dataset.instances(image_id) if hasattr(dataset, "instances") else None
        if true_inst is None:
            true_lab = _particles(truth, pixel, min_diameter_nm, image_id, "ground-truth mask")
        else:
            true_lab = _particles(true_inst, pixel, min_diameter_nm, image_id, "ground-truth instances",
                                  split_touching=False)
        pred_lab = _particles(pred_mask, pixel, min_diameter_nm, image_id, "prediction")
        out = {"id": image_id, **{k2: row.get(k2) for k2 in ("pixel_size_nm", "dose_e_per_A2", "material",
                                                             "diameter_nm") if k2 in row}}
        out.update(scores)
        out.update(matching_scores(true_lab, pred_lab, iou_thresholds=iou_thresholds))
        if pixel is not None:
            for side, lab, tables in (("pred", pred_lab, pred_tables), ("true", true_lab, true_tables)):
                table = _size_table(lab, pixel, exclude_border)
                used = table[table["in_size_distribution"]]
                out[f"mean_diameter_{side}_nm"] = _mean_diameter(used, exclude_border)
                out[f"n_border_{side}"] = int(table["touches_edge"].sum())
                tables.append(table.assign(id=image_id))
        rows.append(out)
        sweeps.append(threshold_sweep([prob], [truth], thresholds=thresholds, smooth=smooth, ids=[image_id]))
        if n_worst > 0:
            item = (-scores["dice"], -k, {"id": image_id, "dice": scores["dice"], "probability": prob,
                                          "truth": truth, "image": dataset.image(image_id)})
            if len(worst) < n_worst:
                heapq.heappush(worst, item)
            else:
                heapq.heappushpop(worst, item)
    per_image = pd.DataFrame(rows)
    sweep = pd.concat(sweeps, ignore_index=True)
    particles_pred = pd.concat(pred_tables, ignore_index=True) if pred_tables else pd.DataFrame()
    particles_true = pd.concat(true_tables, ignore_index=True) if true_tables else pd.DataFrame()
    pred_d, pred_w, n_border_pred = _distribution(particles_pred, exclude_border)
    if reference_sizes_nm is not None:
        ref_d, ref_w, n_border_ref, reference = np.asarray(reference_sizes_nm, dtype=float), None, 0, "manual"
    else:
        ref_d, ref_w, n_border_ref = _distribution(particles_true, exclude_border)
        reference = "ground_truth_masks"
    sizes = (compare_size_distributions(pred_d, ref_d, predicted_weights=pred_w, reference_weights=ref_w)
             if (len(pred_tables) or reference == "manual") else {})
    sizes["reference"] = reference
    if sizes.keys() - {"reference"}:
        sizes.update(_border_note(n_border_pred, n_border_ref, exclude_border, manual=reference == "manual"))
    summary = _summary(per_image, scores_from_counts(pooled, smooth=smooth), sizes)
    return Evaluation(
        per_image=per_image, sweep=sweep, thresholds=summarize_sweep(sweep), summary=summary,
        particles_pred=particles_pred, particles_true=particles_true, size_comparison=sizes,
        reference_sizes_nm=np.asarray(ref_d, dtype=float),
        worst=[w[2] for w in sorted(worst, reverse=True)],
        settings={"threshold": threshold, "smooth": smooth, "iou_thresholds": list(iou_thresholds),
                  "min_diameter_nm": min_diameter_nm, "n_images": len(ids), "size_reference": reference,
                  "exclude_border": exclude_border},
    )


def _particles(mask, pixel: float | None, min_diameter_nm: float, image_id: str, what: str, *,
               split_touching: bool = True) -> np.ndarray:
    """Instance labels by the project's one definition (``label_particles``); errors name the image."""
    from nanoseg.particles import label_particles

    try:
        if pixel is None:  # no physical scale: components only, no size cut
            return instance_labels(mask)
        return label_particles(mask, pixel_size_nm=pixel, min_diameter_nm=min_diameter_nm,
                               split_touching=split_touching)
    except NanosegError as exc:
        raise NanosegError(f"{what} of image {image_id!r}: {exc.message}", hint=exc.hint, path=exc.path) from None


def _size_table(labels: np.ndarray, pixel: float, exclude_border: bool) -> pd.DataFrame:
    """Every particle with ``ml_weight`` and ``in_size_distribution`` (False for border ones when excluded)."""
    table = particle_sizes(labels, pixel_size_nm=pixel, exclude_border=False, split_touching=False)
    table["in_size_distribution"] = ~table["touches_edge"].to_numpy(dtype=bool) if exclude_border else True
    return table


def _mean_diameter(used: pd.DataFrame, exclude_border: bool) -> float:
    if not len(used):
        return float("nan")
    weights = used["ml_weight"].to_numpy() if exclude_border else None
    return float(np.average(used["diameter_nm"].to_numpy(), weights=weights))


def _distribution(particles: pd.DataFrame, exclude_border: bool) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(diameters, Miles–Lantuéjoul weights or None, number of border particles left out) of a particle table."""
    if not len(particles):
        return np.array([]), None, 0
    used = particles[particles["in_size_distribution"].to_numpy(dtype=bool)]
    weights = used["ml_weight"].to_numpy(dtype=float) if exclude_border else None
    return used["diameter_nm"].to_numpy(dtype=float), weights, len(particles) - len(used)


def _border_note(n_pred: int, n_ref: int, exclude_border: bool, *, manual: bool) -> dict:
    """The size comparison's statement of how border particles were treated (read in summary.csv and the CLI)."""
    if not exclude_border:
        note = "border particles included (their sizes are lower bounds); unweighted"
    else:
        ref = "manual reference unweighted" if manual else f"reference: {n_ref} border particles excluded"
        note = f"predicted: {n_pred} border particles excluded; {ref}; Miles–Lantuéjoul weighted"
    return {"n_border_excluded_pred": n_pred if exclude_border else 0,
            "n_border_excluded_ref": n_ref if exclude_border and not manual else 0, "note": note}


def _summary(per_image: pd.DataFrame, pooled: dict[str, float], sizes: dict) -> pd.DataFrame:
    rows = []
    numeric = [c for c in per_image.columns if c != "id" and pd.api.types.is_numeric_dtype(per_image[c])]
    for col in numeric:
        if col in ("pixel_size_nm", "dose_e_per_A2", "diameter_nm", "threshold", "pred_fraction",
                   "true_fraction"):
            continue
        values = per_image[col].astype(float)
        rows.append({"metric": col, "kind": "per-image mean", "mean": values.mean(),
                     "std": values.std(ddof=0), "n": int(values.notna().sum())})
    for name in ("dice", "iou", "precision", "recall", "f1", "pixel_error"):
        rows.append({"metric": name, "kind": "pooled", "mean": pooled[name], "std": np.nan,
                     "n": len(per_image)})
    kind = f"size distribution vs {sizes.get('reference')}"
    if sizes.get("note"):
        kind += f" ({sizes['note']})"
    for name, value in sizes.items():
        if isinstance(value, (int, float)):
            rows.append({"metric": name, "kind": kind, "mean": float(value), "std": np.nan, "n": 1})
    return pd.DataFrame(rows)


def write_evaluation(evaluation: Evaluation, out_dir: str | os.PathLike, *, figures: bool = True) -> list[Path]:
    """Write the tables (and figures) of an :class:`Evaluation` to ``out_dir``; return the written paths."""
    from nanoseg._util import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tables = {"metrics.csv": evaluation.per_image, "summary.csv": evaluation.summary,
              "thresholds.csv": evaluation.thresholds, "particles_pred.csv": evaluation.particles_pred,
              "particles_true.csv": evaluation.particles_true}
    for name, table in tables.items():
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False)
        written.append(out / name)
    if figures:
        from nanoseg.evaluate import figures as fig

        written.append(fig.threshold_curves(evaluation.thresholds, out / "threshold_curves.png"))
        pred = evaluation.particles_pred
        if "in_size_distribution" in pred:  # border particles out, as in the size comparison
            pred = pred[pred["in_size_distribution"].to_numpy(dtype=bool)]
        pred_d = pred.get("diameter_nm", pd.Series(dtype=float)).to_numpy()
        if len(pred_d) or len(evaluation.reference_sizes_nm):
            label = "manual" if evaluation.settings.get("size_reference") == "manual" else "ground truth"
            written.append(fig.size_distributions(pred_d, evaluation.reference_sizes_nm,
                                                  out / "size_distribution.png", reference_label=label))
        if evaluation.worst:
            written.append(fig.worst_cases(evaluation.worst, out / "worst_cases.png",
                                           threshold=evaluation.settings.get("threshold", 0.5)))
    return written
