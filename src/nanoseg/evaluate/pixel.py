"""Pixel scores: Dice (hard and soft), IoU, precision, recall, F1, pixel error, threshold sweeps.

Conventions (the same everywhere in nanoseg, and tested against hand-computed cases):

* ``pred`` and ``truth`` are boolean masks of one image (anything > 0 in ``truth`` is particle).
* **Hard Dice** is Sytwu's: threshold the probability map, then ``(2|A∩B| + s) / (|A| + |B| + s)`` with
  smoothing ``s`` (``smooth=1`` by default, as in the authors' code). With ``s > 0`` two empty masks score 1
  and an empty prediction of a non-empty truth scores ``s / (|B| + s)`` (close to 0).
* **Soft Dice** replaces ``A`` by the probability map: ``(2 Σ p·t + s) / (Σ p + Σ t + s)``.
* Ratios whose denominator is 0 (IoU, precision, recall, F1 without smoothing) are **1.0 when both masks are
  empty** (nothing to find, nothing found) **and 0.0 otherwise** (e.g. precision of an empty prediction of a
  non-empty truth is 0).
* **Per-image** scores are averaged over images (mean ± std, as the papers report); **pooled** scores sum the
  pixel counts of all images first (large images weigh more). Functions say which they compute.

Example
-------
>>> import numpy as np
>>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[0, 1, 1, 0]], bool)
>>> round(dice(a, b, smooth=0), 3), round(dice(a, b), 3), iou(a, b)
(0.5, 0.6, 0.3333333333333333)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from nanoseg._pixel import (  # the one-image arithmetic lives below every layer; re-exported here
    Counts,
    as_masks,
    binarize,
    confusion,
    dice,  # noqa: F401  (re-exported)
    iou,  # noqa: F401  (re-exported)
    otsu_threshold,
    scores_from_counts,
    soft_dice,
)
from nanoseg.errors import NanosegError

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))


def pixel_metrics(probability, truth, *, threshold: float | str = 0.5, smooth: float = 1.0) -> dict[str, float]:
    """Every pixel score of one image: hard scores at ``threshold`` (or ``"otsu"``) plus soft Dice.

    ``probability`` may be a probability map in [0, 1] or a binary mask (then soft Dice = hard Dice).

    >>> m = pixel_metrics(np.array([[0.9, 0.2], [0.6, 0.1]]), np.array([[1, 0], [0, 0]]), smooth=0)
    >>> m["precision"], m["recall"], round(m["soft_dice"], 3)
    (0.5, 1.0, 0.643)
    """
    p = np.asarray(probability)
    if p.dtype == bool or np.issubdtype(p.dtype, np.integer):
        p = (p > 0).astype(np.float32)
    used = otsu_threshold(p) if isinstance(threshold, str) and threshold.lower() == "otsu" else threshold
    out = scores_from_counts(confusion(binarize(p, used), truth), smooth=smooth)
    out["soft_dice"] = soft_dice(p, truth, smooth=smooth)
    out["threshold"] = float(used)
    return out


def pooled_metrics(predictions: Iterable, truths: Iterable, *, threshold: float | str = 0.5,
                   smooth: float = 1.0) -> dict[str, float]:
    """Hard scores from pixel counts summed over all images (**pooled**, not a per-image mean)."""
    total = Counts(0, 0, 0, 0)
    for p, t in zip(predictions, truths, strict=True):
        total = total + confusion(binarize(p, threshold) if not np.asarray(p).dtype == bool else p, t)
    if total.n == 0:
        raise NanosegError("no images to score")
    return scores_from_counts(total, smooth=smooth)


def threshold_sweep(probabilities: Sequence, truths: Sequence, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                    include_otsu: bool = True, smooth: float = 1.0, ids: Sequence[str] | None = None
                    ) -> pd.DataFrame:
    """Per-image hard scores at each threshold (Horwath's curves), one row per (image, threshold).

    The Otsu rows carry ``threshold_name == "otsu"`` and the image's own Otsu threshold in ``threshold``.
    Summarize with :func:`summarize_sweep`.
    """
    ids = [str(i) for i in range(len(probabilities))] if ids is None else list(ids)
    if len(ids) != len(probabilities) or len(probabilities) != len(truths):
        raise NanosegError("threshold_sweep needs as many probability maps as ground-truth masks and ids")
    rows = []
    for image_id, p, t in zip(ids, probabilities, truths, strict=True):
        p = np.asarray(p, dtype=np.float32)
        _, t = as_masks(p, t)
        # Sorting once makes every threshold a binary search: cheap even for many 4k frames.
        order = np.sort(p, axis=None)
        p_true = np.sort(p[t], axis=None)
        n, n_t = p.size, p_true.size
        named = [(f"{th:g}", float(th)) for th in thresholds]
        if include_otsu:
            named.append(("otsu", otsu_threshold(p)))
        for name, th in named:
            n_pred = n - int(np.searchsorted(order, th, side="left"))
            tp = n_t - int(np.searchsorted(p_true, th, side="left"))
            c = Counts(tp=tp, fp=n_pred - tp, fn=n_t - tp, tn=n - n_pred - n_t + tp)
            rows.append({"id": image_id, "threshold_name": name, "threshold": th,
                         **scores_from_counts(c, smooth=smooth), **asdict(c)})
    return pd.DataFrame(rows)


def summarize_sweep(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over images of every score, per threshold (Otsu last)."""
    scores = ["dice", "iou", "precision", "recall", "f1", "pixel_error", "threshold"]
    grouped = sweep.groupby("threshold_name", sort=False)[scores]
    mean, std = grouped.mean(), grouped.std(ddof=0)
    out = mean.join(std, lsuffix="_mean", rsuffix="_std")
    out["n_images"] = grouped.size()
    return out.reset_index()
