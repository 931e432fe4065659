"""Pixel, particle and size-distribution scores, threshold sweeps, and whole-dataset evaluation.

Pixel scores (:mod:`.pixel`), instance matching (:mod:`.matching`), physical sizes (:mod:`.sizes`),
dataset runs (:mod:`.run`) and figures (:mod:`.figures`). Conventions for empty masks are in
:mod:`nanoseg.evaluate.pixel` and :mod:`nanoseg.evaluate.matching`. Calling the package,
``nanoseg.evaluate(dataset, predictions, ...)``, is :func:`evaluate_dataset`.

Example
-------
>>> import numpy as np
>>> truth = np.zeros((8, 8), bool); truth[2:6, 2:6] = True
>>> round(dice(truth, truth), 3), match_instances(truth, truth).f1
(1.0, 1.0)
"""

from nanoseg._lazy import lazy_attributes, make_callable
from nanoseg.evaluate.matching import MatchResult, match_instances, matching_scores
from nanoseg.evaluate.pixel import (
    DEFAULT_THRESHOLDS,
    dice,
    iou,
    otsu_threshold,
    pixel_metrics,
    soft_dice,
    threshold_sweep,
)
from nanoseg.evaluate.run import Evaluation, evaluate_dataset, resolve_predictions, write_evaluation
from nanoseg.evaluate.sizes import (
    compare_size_distributions,
    particle_sizes,
    read_size_measurements,
    size_statistics_table,
)

__all__ = [
    "DEFAULT_THRESHOLDS", "Evaluation", "MatchResult", "compare_size_distributions", "dice", "evaluate_dataset",
    "iou", "match_instances", "matching_scores", "otsu_threshold", "particle_sizes", "pixel_metrics",
    "read_size_measurements", "resolve_predictions", "size_statistics_table", "soft_dice", "threshold_sweep",
    "write_evaluation",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "Counts": "nanoseg.evaluate.pixel", "binarize": "nanoseg.evaluate.pixel", "confusion": "nanoseg.evaluate.pixel",
    "pooled_metrics": "nanoseg.evaluate.pixel", "scores_from_counts": "nanoseg.evaluate.pixel",
    "summarize_sweep": "nanoseg.evaluate.pixel", "instance_labels": "nanoseg.evaluate.matching",
    "iou_matrix": "nanoseg.evaluate.matching", "miles_lantuejoul_weights": "nanoseg.evaluate.sizes",
    "model_predictor": "nanoseg.evaluate.run", "prediction_dir_loader": "nanoseg.evaluate.run",
}, submodules=["figures", "matching", "pixel", "run", "sizes"])

make_callable(__name__, evaluate_dataset)  # ns.evaluate(dataset, predictions, ...) is evaluate_dataset
