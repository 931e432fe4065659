"""``nanoseg evaluate`` as one call: score a prediction folder, or a model run first, against a dataset.

:func:`evaluate_folder` opens the dataset, resolves the source (a ``nanoseg predict`` folder, or a model that
is run on every image), scores every image (:func:`nanoseg.evaluate.evaluate_dataset`: pixel, particle and
size-distribution metrics) and writes the evaluation folder (:func:`nanoseg.evaluate.write_evaluation`).
:meth:`EvaluationRun.summary_lines` are the headline numbers, each saying what it averages over.

Example
-------
>>> # run = evaluate_folder("default", "data/au5", "eval", reference_sizes="manual_sizes.csv")
>>> # print("\\n".join(run.summary_lines()))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanoseg._pixel import parse_threshold
from nanoseg.datasets import open_dataset
from nanoseg.evaluate import evaluate_dataset, read_size_measurements, resolve_predictions, write_evaluation
from nanoseg.evaluate.run import Evaluation

HEADLINE_SCORES = ("dice", "f1@0.5", "pq@0.5")


@dataclass
class EvaluationRun:
    """What :func:`evaluate_folder` did: the scores, the files written, and what was scored."""

    evaluation: Evaluation
    written: list[Path] = field(default_factory=list)
    source_kind: str = "predictions"  # "model" when the source was run first
    n_images: int = 0

    def summary_lines(self) -> list[str]:
        """The headline numbers: per-image mean ± std of Dice, F1 and PQ at IoU 0.5, pooled Dice, sizes."""
        summary = self.evaluation.summary.set_index(["metric", "kind"])
        mean, std = summary["mean"], summary["std"]
        lines = [f"{name}: {mean[(name, 'per-image mean')]:.3f} ± {std[(name, 'per-image mean')]:.3f} "
                 "(per-image mean ± std)" for name in HEADLINE_SCORES if (name, "per-image mean") in mean.index]
        if ("dice", "pooled") in mean.index:
            lines.append(f"dice (pooled over all pixels): {mean[('dice', 'pooled')]:.3f}")
        sizes = self.evaluation.size_comparison
        if sizes.get("n_pred") and sizes.get("n_ref"):
            lines.append(f"sizes: mean {sizes['mean_pred_nm']:.2f} nm vs {sizes['mean_ref_nm']:.2f} nm "
                         f"({sizes['reference']}), KS {sizes['ks_statistic']:.3f}, Wasserstein "
                         f"{sizes['wasserstein_nm']:.3f} nm" + (f"; {sizes['note']}" if sizes.get("note") else ""))
        return lines


def evaluate_folder(source: str | os.PathLike, dataset: str | os.PathLike, out_dir: str | os.PathLike, *,
                    threshold: float | str = 0.5, smooth: float = 1.0, iou_thresholds: Sequence[float] = (0.5, 0.75),
                    reference_sizes: str | os.PathLike | None = None, size_column: str | None = None,
                    min_diameter_nm: float = 0.5, tta: bool = False, device: str = "auto", n_worst: int = 4,
                    progress: bool = True, on_start: Callable[[str], None] | None = None) -> EvaluationRun:
    """Score ``source`` against the ground truth of the dataset folder ``dataset`` and write ``out_dir``.

    ``source``: a folder written by ``nanoseg predict`` (its ``<id>.probability.tif`` files), or a model
    (checkpoint, folder of checkpoints, ``"default"``) run first with ``tta`` on ``device``. ``threshold``: a
    number in (0, 1), its text, or ``"otsu"``. ``reference_sizes``: a CSV of manually measured sizes (nm,
    ``size_column``) that the predicted size distribution is compared with. ``on_start`` receives one line
    saying what is about to be scored (before the possibly long model run).
    """
    threshold = parse_threshold(threshold)
    ds = open_dataset(dataset)
    loader, kind = resolve_predictions(source, ds, tta=tta, device=device)
    reference = None if reference_sizes is None else read_size_measurements(reference_sizes, column=size_column)
    if on_start is not None:
        on_start(f"evaluating {len(ds)} images ({'running model ' + str(source) if kind == 'model' else source})")
    evaluation = evaluate_dataset(ds, loader, threshold=threshold, smooth=smooth, iou_thresholds=list(iou_thresholds),
                                  min_diameter_nm=min_diameter_nm, reference_sizes_nm=reference, n_worst=n_worst,
                                  progress=progress)
    written = write_evaluation(evaluation, out_dir)
    return EvaluationRun(evaluation, list(written), kind, len(ds))
