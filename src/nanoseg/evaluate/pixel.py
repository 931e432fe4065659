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
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))


def _as_masks(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise NanosegError(f"prediction {pred.shape} and ground truth {truth.shape} have different shapes",
                           hint="resample the prediction to the ground-truth grid (nanoseg.infer does)")
    if pred.size == 0:
        raise NanosegError("cannot score an empty (0-pixel) image")
    return pred > 0 if pred.dtype != bool else pred, truth > 0 if truth.dtype != bool else truth


def _ratio(num: float, den: float, both_empty: bool) -> float:
    if den > 0:
        return float(num / den)
    return 1.0 if both_empty else 0.0


@dataclass(frozen=True)
class Counts:
    """Pixel confusion counts of one image (or pooled over many)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def confusion(pred, truth) -> Counts:
    """Pixel counts (tp, fp, fn, tn) of a binary prediction against the ground truth.

    >>> confusion(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
    Counts(tp=1, fp=1, fn=1, tn=1)
    """
    p, t = _as_masks(pred, truth)
    tp = int(np.count_nonzero(p & t))
    n_p, n_t = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    return Counts(tp=tp, fp=n_p - tp, fn=n_t - tp, tn=p.size - n_p - n_t + tp)


def scores_from_counts(c: Counts, *, smooth: float = 1.0) -> dict[str, float]:
    """All hard pixel scores from confusion counts (see the module conventions).

    >>> scores_from_counts(Counts(0, 0, 0, 4))["dice"], scores_from_counts(Counts(0, 0, 3, 1))["recall"]
    (1.0, 0.0)
    """
    if smooth < 0:
        raise NanosegError(f"Dice smoothing must be ≥ 0, got {smooth}")
    both_empty = c.tp + c.fp + c.fn == 0
    n_pred, n_true = c.tp + c.fp, c.tp + c.fn
    dice_den = n_pred + n_true + smooth
    return {
        "dice": _ratio(2 * c.tp + smooth, dice_den, both_empty),
        "iou": _ratio(c.tp, c.tp + c.fp + c.fn, both_empty),
        "precision": _ratio(c.tp, n_pred, both_empty),
        "recall": _ratio(c.tp, n_true, both_empty),
        "f1": _ratio(2 * c.tp, n_pred + n_true, both_empty),
        "pixel_error": (c.fp + c.fn) / c.n if c.n else 0.0,
        "pred_fraction": n_pred / c.n if c.n else 0.0,
        "true_fraction": n_true / c.n if c.n else 0.0,
    }


def dice(pred, truth, *, smooth: float = 1.0) -> float:
    """Hard Dice ``(2|A∩B| + smooth) / (|A| + |B| + smooth)`` of two binary masks (Sytwu: ``smooth=1``).

    >>> dice(np.zeros((2, 2)), np.zeros((2, 2))), dice(np.zeros((2, 2)), np.zeros((2, 2)), smooth=0)
    (1.0, 1.0)
    """
    return scores_from_counts(confusion(pred, truth), smooth=smooth)["dice"]


def iou(pred, truth) -> float:
    """Intersection over union (Jaccard index) of two binary masks; 1.0 when both are empty."""
    return scores_from_counts(confusion(pred, truth))["iou"]


def soft_dice(probability, truth, *, smooth: float = 1.0) -> float:
    """Soft Dice ``(2 Σ p·t + smooth) / (Σ p + Σ t + smooth)`` of a probability map against a binary truth.

    >>> soft_dice(np.array([0.5, 0.5]), np.array([1, 0]), smooth=0)
    0.5
    """
    p = np.asarray(probability, dtype=np.float64)
    _, t = _as_masks(p, truth)
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise NanosegError("soft Dice needs probabilities in [0, 1] (got NaN or values outside)")
    num = 2 * float(p[t].sum()) + smooth
    den = float(p.sum()) + float(np.count_nonzero(t)) + smooth
    return _ratio(num, den, both_empty=not t.any() and p.sum() == 0)


def otsu_threshold(probability) -> float:
    """Otsu's threshold of a probability map (Horwath's alternative to a fixed 0.5).

    A constant map has no Otsu threshold; 0.5 is returned then.
    """
    from skimage.filters import threshold_otsu

    p = np.asarray(probability, dtype=np.float64)
    if p.size == 0 or float(p.max()) == float(p.min()):
        return 0.5
    return float(threshold_otsu(p, nbins=256))


def binarize(probability, threshold: float | str = 0.5) -> np.ndarray:
    """``probability >= threshold`` (``threshold`` a number in (0, 1) or ``"otsu"``) as a bool mask."""
    p = np.asarray(probability)
    if isinstance(threshold, str):
        if threshold.lower() != "otsu":
            raise NanosegError(f"threshold must be a number in (0, 1) or 'otsu', got {threshold!r}")
        threshold = otsu_threshold(p)
    threshold = float(threshold)
    if not 0.0 < threshold < 1.0:
        raise NanosegError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    return p >= threshold


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
        _, t = _as_masks(p, t)
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
