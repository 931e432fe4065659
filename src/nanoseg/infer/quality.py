"""Per-image quality estimate: how good is this mask likely to be, from what is known at inference only.

Every :class:`nanoseg.infer.Prediction` carries ``estimated_dice`` (0–1, an estimate of the hard Dice of its
mask against the unknown truth) and ``low_confidence`` (``estimated_dice < LOW_CONFIDENCE_DICE``). The
estimate is built from features that need no truth (:func:`quality_features`):

``soft_dice``
    the expected Dice under the model's own probabilities, ``2 Σ p·m / (Σ p + Σ m)`` (0 for an empty mask:
    an empty mask scores 0 against any image that holds particles).
``view_dice``
    agreement of two or more views: the mean hard Dice between each view's mask and the final mask (ensembles,
    ``tta=True``), or, with one model and one view, the hard Dice between the mask and the mask
    of a horizontally flipped second pass over a centre crop of at most :data:`CHECK_VIEW_PX` px of the network
    grid (run only when the card's calibration uses this feature, or with ``predict(quality_view=True)``), compared away from the crop's inner edges (one receptive-field context). NaN when no view found a
    particle there (nothing to compare: a calibration then uses its fitting mean).
``uncertain_fraction``
    fraction of the image's pixels with ``p`` inside :data:`UNCERTAIN_BAND`.
``uncertain_over_mask``
    uncertain pixels / (mask pixels + uncertain pixels): the uncertain boundary relative to the particles.
``margin_inside``
    mean ``2 |p − 0.5|`` inside the mask (0 for an empty mask).
``area_fraction``
    the mask's fraction of the image.
``ood_fraction``
    the fraction of the card's out-of-distribution checks (:mod:`.ood`) this image fails (NaN without checks).

A *calibration* (:func:`fit_calibration`, stored in the model card's ``quality_calibration`` by
``scripts/calibrate_quality.py``) maps the features to the true hard Dice measured on held-out simulated images:
a ridge-regularized linear score of the standardized features followed by an isotonic (monotone) map of the score
to Dice. Without a calibration the estimate is the ``soft_dice`` feature clipped to [0, 1], marked "uncalibrated".
Either way two rules cap it: an empty mask gets 0, and a mask covering a fraction ``a`` above
:data:`MAX_PARTICLE_AREA_FRACTION` gets at most ``2·f/(f + a)`` with ``f`` = that fraction — the best Dice such a
mask can have if at most that fraction (40 %) of the image is particle (an assumption, chosen so that every mask
that :func:`nanoseg.infer.ood.check_mask` calls flooded is low confidence).

Example
-------
>>> import numpy as np
>>> p = np.zeros((8, 8), np.float32); p[2:6, 2:6] = 0.9
>>> q = estimate_quality(p, p >= 0.5, threshold=0.5)
>>> round(q.estimated_dice, 3), q.low_confidence, q.calibrated
(0.947, False, False)
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.infer.ood import FLOODED_FRACTION

LOW_CONFIDENCE_DICE = 0.8  # estimated Dice below this → Prediction.low_confidence (issue #14)
UNCERTAIN_BAND = (0.2, 0.8)  # probabilities counted as "uncertain" (inclusive)
CHECK_VIEW_PX = 768  # side of the centre crop (network grid) of the cheap second view when there is one view only
# assumed largest particle fraction of an image (caps the estimate of flooded masks): chosen so that a mask that
# ood.check_mask calls flooded (> FLOODED_FRACTION = 60 % of the field) has an estimate < LOW_CONFIDENCE_DICE
# (cap 2·f/(f + a) = 0.8 at a = 0.6 ⇒ f = 0.8·0.6/1.2 = 0.4)
MAX_PARTICLE_AREA_FRACTION = LOW_CONFIDENCE_DICE * FLOODED_FRACTION / (2 - LOW_CONFIDENCE_DICE)
FEATURES = ("soft_dice", "view_dice", "uncertain_fraction", "uncertain_over_mask", "margin_inside",
            "area_fraction", "ood_fraction")
CALIBRATION_VERSION = 1


@dataclass
class QualityEstimate:
    """What :func:`estimate_quality` returns (``features`` are those of :func:`quality_features`)."""

    estimated_dice: float
    low_confidence: bool
    calibrated: bool
    features: dict[str, float] = field(default_factory=dict)
    method: str = ""
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        """A JSON-ready dict for ``Prediction.metadata["quality"]``."""
        return {"estimated_dice": self.estimated_dice, "low_confidence": self.low_confidence,
                "calibrated": self.calibrated, "method": self.method, "low_confidence_below": LOW_CONFIDENCE_DICE,
                "features": {k: (None if not math.isfinite(v) else v) for k, v in self.features.items()},
                "notes": list(self.notes)}

    def warning(self) -> str | None:
        """The warning line of a low-confidence prediction (None otherwise)."""
        if not self.low_confidence:
            return None
        how = "calibrated" if self.calibrated else "uncalibrated: the model's own expected Dice"
        return (f"low confidence: estimated Dice {self.estimated_dice:.2f} < {LOW_CONFIDENCE_DICE} ({how}); "
                "the mask may be wrong — check it by eye before using its numbers")


# ------------------------------------------------------------------------------------------ features
def _hard_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Hard Dice without smoothing; NaN when both masks are empty (nothing to compare)."""
    from nanoseg._pixel import dice

    if not (np.any(a) or np.any(b)):
        return float("nan")
    return dice(a, b, smooth=0.0)


def view_agreement(views: Sequence[np.ndarray], mask: np.ndarray, threshold: float) -> float:
    """Mean hard Dice between each view's mask (``view >= threshold``) and ``mask`` (NaN when all are empty)."""
    scores = [_hard_dice(np.asarray(v) >= threshold, mask) for v in views]
    return float("nan") if all(math.isnan(x) for x in scores) else float(np.nanmean(scores))


def check_window(shape: tuple[int, int], *, side_px: int = CHECK_VIEW_PX,
                 context_px: int = 0) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """The centre crop of the cheap second view and, inside it, the part compared with the main view.

    Returns ``(crop, inner)``: ``crop`` slices the network-grid image, ``inner`` slices the crop. The crop side is
    ``side_px`` (at least ``2·context_px + 64``), at most the image; ``inner`` drops ``context_px`` at every crop
    edge that lies inside the image (where the crop lacks the context the whole-image pass had).
    """
    crop, inner = [], []
    for n in shape:
        side = min(int(n), max(int(side_px), 2 * int(context_px) + 64))
        start = (int(n) - side) // 2
        lo = context_px if start > 0 else 0
        hi = context_px if start + side < n else 0
        if side - lo - hi < 1:
            lo = hi = 0
        crop.append(slice(start, start + side))
        inner.append(slice(lo, side - hi))
    return (crop[0], crop[1]), (inner[0], inner[1])


def uses_view_feature(calibration: Mapping[str, Any] | None) -> bool:
    """True when ``calibration`` gives ``view_dice`` a nonzero weight (so predict must run the second view)."""
    if not calibration:
        return False
    weights = dict(zip(calibration.get("feature_names", []), calibration.get("coefficients", []), strict=False))
    return bool(weights.get("view_dice", 0.0))


def quality_features(probability: np.ndarray, mask: np.ndarray, *, threshold: float,
                     views: Sequence[np.ndarray] | None = None,
                     check_pair: tuple[np.ndarray, np.ndarray] | None = None,
                     ood_flags: Mapping[str, bool] | None = None) -> dict[str, float]:
    """The features of the module docstring for one prediction.

    ``views``: the per-member/per-view probabilities (input grid) when there are several; ``check_pair``: the
    main and the second view's probabilities over the compared part of the check crop (one view only).
    Without either, ``view_dice`` is NaN.
    """
    from nanoseg._pixel import soft_dice

    p = np.asarray(probability, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    n_mask = int(np.count_nonzero(m))
    n_pixels = max(int(m.size), 1)
    low, high = UNCERTAIN_BAND
    n_uncertain = int(np.count_nonzero((p >= low) & (p <= high)))
    features = {
        "soft_dice": soft_dice(p, m, smooth=0.0) if n_mask else 0.0,
        "view_dice": float("nan"),
        "uncertain_fraction": n_uncertain / n_pixels,
        "uncertain_over_mask": n_uncertain / max(n_mask + n_uncertain, 1),
        "margin_inside": float(np.mean(np.abs(p[m] - 0.5), dtype=np.float64) * 2) if n_mask else 0.0,
        "area_fraction": n_mask / n_pixels,
        "ood_fraction": float(np.mean([bool(v) for v in ood_flags.values()])) if ood_flags else float("nan"),
    }
    if views is not None and len(views) > 1:
        features["view_dice"] = view_agreement(views, m, threshold)
    elif check_pair is not None:
        main, other = check_pair
        features["view_dice"] = _hard_dice(np.asarray(main) >= threshold, np.asarray(other) >= threshold)
    return features


def area_cap(area_fraction: float) -> float:
    """Upper bound of the Dice of a mask covering ``area_fraction`` of the image (see the module docstring)."""
    if area_fraction <= 0:
        return 0.0
    f = MAX_PARTICLE_AREA_FRACTION
    return 1.0 if area_fraction <= f else 2 * f / (f + area_fraction)


# ------------------------------------------------------------------------------------------ calibration
def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (ties get their mean rank); NaN with fewer than 3 pairs or a constant side."""
    from scipy.stats import rankdata

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of ``y`` on ``x`` (pool adjacent violators).

    Returns knots ``(xs, ys)``: the mean ``x`` and the fitted value of each pooled block, for ``np.interp``.
    """
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    xs, ys = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    blocks: list[list[float]] = []  # [sum_x, sum_y, count]
    for xv, yv in zip(xs, ys, strict=True):
        blocks.append([xv, yv, 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sx, sy, c = blocks.pop()
            blocks[-1][0] += sx
            blocks[-1][1] += sy
            blocks[-1][2] += c
    knots_x = np.array([b[0] / b[2] for b in blocks])
    knots_y = np.array([b[1] / b[2] for b in blocks])
    return knots_x, knots_y


def _design(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    return np.array([[float(r.get(n, float("nan"))) for n in names] for r in rows], dtype=float).reshape(
        len(rows), len(names))


def fit_calibration(features: Sequence[Mapping[str, float]], true_dice: Sequence[float], *,
                    feature_names: Sequence[str] = FEATURES, ridge: float = 1.0,
                    fitted_on: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fit the map features → true hard Dice; returns the JSON-ready dict stored in the card.

    Linear step: standardize each feature (NaN → its mean), ridge regression (penalty ``ridge`` on the
    standardized weights) of the true Dice. Isotonic step: a monotone map of the linear score to the true Dice.
    Features that are constant or absent in the fitting data get weight 0.
    """
    y = np.asarray(true_dice, dtype=float)
    if len(features) != len(y) or len(y) < 3:
        raise NanosegError(f"a quality calibration needs ≥ 3 images with features and a true Dice, got {len(y)}",
                           hint="simulate more held-out images")
    if not np.isfinite(y).all():
        raise NanosegError("the true Dice values hold NaN", hint="check the simulated masks")
    names = list(feature_names)
    x = _design(features, names)
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in x.T])
    x = np.where(np.isfinite(x), x, mean)
    scale = x.std(axis=0)
    used = scale > 1e-12
    scale = np.where(used, scale, 1.0)
    z = (x - mean) / scale
    z[:, ~used] = 0.0
    a = z.T @ z + ridge * np.eye(len(names))
    coef = np.linalg.solve(a, z.T @ (y - y.mean()))
    coef[~used] = 0.0
    score = z @ coef + y.mean()
    knots_x, knots_y = isotonic_fit(score, y)
    calibration = {
        "version": CALIBRATION_VERSION, "method": "ridge linear score of standardized features → isotonic map",
        "feature_names": names, "feature_mean": mean.tolist(), "feature_scale": scale.tolist(),
        "coefficients": coef.tolist(), "intercept": float(y.mean()), "ridge": float(ridge),
        "isotonic_x": knots_x.tolist(), "isotonic_y": knots_y.tolist(),
        "low_confidence_below": LOW_CONFIDENCE_DICE, "n_images": int(len(y)),
        "fitted_on": dict(fitted_on or {}), "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    calibration["spearman_fit"] = spearman(apply_calibration(calibration, features), y)
    return calibration


_REQUIRED = ("feature_names", "feature_mean", "feature_scale", "coefficients", "intercept", "isotonic_x",
             "isotonic_y")


def check_calibration(calibration: Mapping[str, Any], *, path=None) -> None:
    """Raise a :class:`NanosegError` (naming ``path``, the model) unless ``calibration`` is usable."""
    hint = "refit it with scripts/calibrate_quality.py MODEL_DIR SET_DIR ... --write-card, or delete the field"
    missing = [k for k in _REQUIRED if k not in calibration]
    if missing:
        raise NanosegError(f"the card's quality_calibration lacks {', '.join(missing)}", path=path, hint=hint)
    n = len(calibration["feature_names"])
    if any(len(calibration[k]) != n for k in ("feature_mean", "feature_scale", "coefficients")) or (
            len(calibration["isotonic_x"]) != len(calibration["isotonic_y"]) or not calibration["isotonic_x"]):
        raise NanosegError("the card's quality_calibration has arrays of mismatched lengths", path=path, hint=hint)
    unknown = set(calibration["feature_names"]) - set(FEATURES)
    if unknown:
        raise NanosegError(f"the card's quality_calibration uses unknown features {sorted(unknown)}", path=path,
                           hint=hint)


def apply_calibration(calibration: Mapping[str, Any], features) -> np.ndarray | float:
    """The calibrated Dice of one feature dict (a float) or of a sequence of them (an array), clipped to [0, 1].
    A NaN feature takes its fitting mean (its standardized value 0)."""
    single = isinstance(features, Mapping)
    rows = [features] if single else list(features)
    x = _design(rows, calibration["feature_names"])
    mean, scale = np.asarray(calibration["feature_mean"]), np.asarray(calibration["feature_scale"])
    x = np.where(np.isfinite(x), x, mean)
    score = ((x - mean) / scale) @ np.asarray(calibration["coefficients"]) + float(calibration["intercept"])
    out = np.clip(np.interp(score, calibration["isotonic_x"], calibration["isotonic_y"]), 0.0, 1.0)
    return float(out[0]) if single else out


# ------------------------------------------------------------------------------------------ the estimate
def estimate_from_features(features: Mapping[str, float], calibration: Mapping[str, Any] | None = None, *,
                           model_path=None) -> QualityEstimate:
    """Features (:func:`quality_features`) → estimated Dice (calibrated when ``calibration`` is given, then capped by
    :func:`area_cap`) → ``low_confidence``."""
    features = dict(features)
    notes: list[str] = []
    if calibration:
        check_calibration(calibration, path=model_path)
        value = apply_calibration(calibration, features)
        fitted = calibration.get("fitted_on", {})
        method = (f"calibrated on {calibration.get('n_images', '?')} held-out simulated images "
                  f"({', '.join(map(str, fitted.get('sets', []))) or 'sets not recorded'})")
        missing = [k for k in calibration["feature_names"] if not math.isfinite(features.get(k, float("nan")))]
        if missing:
            notes.append(f"features not available here, set to their calibration mean: {', '.join(missing)}")
    else:
        value = float(np.clip(features["soft_dice"], 0.0, 1.0))
        method = "uncalibrated: the expected Dice 2·Σp·m/(Σp+Σm) under the model's own probabilities"
    cap = area_cap(features["area_fraction"])
    if cap == 0:
        notes.append("empty mask: estimate 0 (assumes the image holds particles)")
    elif value > cap:
        notes.append(f"mask covers {features['area_fraction']:.0%} of the image: estimate capped at {cap:.2f} "
                     f"(assumes particles cover ≤ {MAX_PARTICLE_AREA_FRACTION:.0%} of an image)")
    value = float(min(value, cap))
    return QualityEstimate(estimated_dice=value, low_confidence=value < LOW_CONFIDENCE_DICE,
                           calibrated=bool(calibration), features=features, method=method, notes=notes)


def estimate_quality(probability: np.ndarray, mask: np.ndarray, *, threshold: float,
                     views: Sequence[np.ndarray] | None = None,
                     check_pair: tuple[np.ndarray, np.ndarray] | None = None,
                     ood_flags: Mapping[str, bool] | None = None,
                     calibration: Mapping[str, Any] | None = None, model_path=None) -> QualityEstimate:
    """:func:`quality_features` of one prediction, then :func:`estimate_from_features`."""
    features = quality_features(probability, mask, threshold=threshold, views=views, check_pair=check_pair,
                                ood_flags=ood_flags)
    return estimate_from_features(features, calibration, model_path=model_path)
