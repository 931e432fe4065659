"""Mask arithmetic shared by every layer: a probability map → a mask, and the overlap of two masks.

Inference thresholds its probability maps here (:func:`binarize`, :func:`otsu_threshold`), its quality estimate
compares masks here (:func:`dice`), and :mod:`nanoseg.evaluate.pixel` builds every pixel score on these
functions; the conventions (Sytwu's smoothed hard Dice, soft Dice, 1.0 when both masks are empty) are written
down there. This module sits at the bottom of the layers (numpy and :mod:`nanoseg.errors` only), so a low layer
never has to import :mod:`nanoseg.evaluate`.

Example
-------
>>> import numpy as np
>>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[0, 1, 1, 0]], bool)
>>> round(dice(a, b, smooth=0), 3), int(binarize(np.array([0.2, 0.7])).sum())
(0.5, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanoseg.errors import NanosegError


def as_masks(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of one shape as bool masks (anything > 0 is particle); one clear error otherwise."""
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
    p, t = as_masks(pred, truth)
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
    _, t = as_masks(p, truth)
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


def parse_threshold(value: float | str) -> float | str:
    """A probability threshold as given by a user: a number in (0, 1) (or its text) or ``"otsu"``.

    >>> parse_threshold("0.4"), parse_threshold(" Otsu ")
    (0.4, 'otsu')
    """
    if isinstance(value, str):
        if value.strip().lower() == "otsu":
            return "otsu"
        try:
            value = float(value)
        except ValueError:
            raise NanosegError(f"threshold must be a number in (0, 1) or 'otsu', got {value!r}") from None
    if not 0 < float(value) < 1:
        raise NanosegError(f"threshold must lie strictly between 0 and 1, got {value}")
    return float(value)


def min_area_px(min_diameter_nm: float, pixel_size_nm: float) -> float:
    """The minimum-size cut in pixels: the area of a disk of diameter ``min_diameter_nm`` (nm) at ``pixel_size_nm``.

    A particle passes when its area ≥ this, i.e. when its equivalent diameter 2·√(area/π)·pixel_size_nm ≥
    ``min_diameter_nm`` (:func:`above_min_diameter`, the same cut on measured diameters).

    >>> round(min_area_px(1.0, 0.1), 2)   # a 1 nm disk at 0.1 nm/px: π·5² px
    78.54
    """
    return float(np.pi * (0.5 * float(min_diameter_nm) / float(pixel_size_nm)) ** 2)


def above_min_diameter(diameters_nm, min_diameter_nm: float | None) -> np.ndarray:
    """True where an equivalent diameter (nm) passes the minimum-size cut: ≥ ``min_diameter_nm`` (None or ≤ 0:
    everything passes). The one cut used by particle labelling, size statistics, kinetics and reports.

    >>> above_min_diameter([0.4, 0.5, 2.0], 0.5).tolist()
    [False, True, True]
    """
    d = np.asarray(diameters_nm, dtype=np.float64)
    if min_diameter_nm is None or float(min_diameter_nm) <= 0:
        return np.ones(d.shape, dtype=bool)
    return d >= float(min_diameter_nm)
