"""Pixel, particle and size-distribution scores, threshold sweeps, and whole-dataset evaluation.

Pixel scores (:mod:`.pixel`), instance matching (:mod:`.matching`), physical sizes (:mod:`.sizes`),
dataset runs (:mod:`.run`) and figures (:mod:`.figures`). Conventions for empty masks are in
:mod:`nanoseg.evaluate.pixel` and :mod:`nanoseg.evaluate.matching`.

Example
-------
>>> import numpy as np
>>> truth = np.zeros((8, 8), bool); truth[2:6, 2:6] = True
>>> round(dice(truth, truth), 3), match_instances(truth, truth).f1
(1.0, 1.0)
"""

from nanoseg.evaluate.matching import (
    MatchResult,
    instance_labels,
    iou_matrix,
    match_instances,
    matching_scores,
)
from nanoseg.evaluate.pixel import (
    DEFAULT_THRESHOLDS,
    Counts,
    binarize,
    confusion,
    dice,
    iou,
    otsu_threshold,
    pixel_metrics,
    pooled_metrics,
    scores_from_counts,
    soft_dice,
    summarize_sweep,
    threshold_sweep,
)
from nanoseg.evaluate.run import (
    Evaluation,
    evaluate_dataset,
    model_predictor,
    prediction_dir_loader,
    resolve_predictions,
    write_evaluation,
)
from nanoseg.evaluate.sizes import (
    compare_size_distributions,
    miles_lantuejoul_weights,
    particle_sizes,
    read_size_measurements,
    size_statistics_table,
)

__all__ = [
    "DEFAULT_THRESHOLDS", "Counts", "Evaluation", "MatchResult", "binarize", "compare_size_distributions",
    "confusion", "dice", "evaluate_dataset", "instance_labels", "iou", "iou_matrix", "match_instances",
    "matching_scores", "miles_lantuejoul_weights", "model_predictor", "otsu_threshold", "particle_sizes", "pixel_metrics", "pooled_metrics",
    "prediction_dir_loader", "read_size_measurements", "resolve_predictions", "scores_from_counts", "size_statistics_table", "soft_dice", "summarize_sweep",
    "threshold_sweep", "write_evaluation",
]
