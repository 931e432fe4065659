"""Particle (instance) scores: one-to-one matching of predicted and true particles by IoU.

Modelled on StarDist's ``matching``: the IoU of every (true, predicted) pair comes from one overlap
histogram; pairs with IoU ≥ the threshold are matched one-to-one, maximizing first the number of matches
and then their total IoU (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``), or greedily by
decreasing IoU (``method="greedy"``). For thresholds ≥ 0.5 both give the same result, because a particle can
overlap at most one other particle with IoU > 0.5.

Conventions: ``precision = tp / n_pred``, ``recall = tp / n_true``, ``f1 = 2tp / (n_pred + n_true)``,
``mean_matched_iou`` = mean IoU of the matched pairs, panoptic quality
``PQ = Σ IoU(matched) / (tp + fp/2 + fn/2)``. When both images hold no particle every score is 1.0;
when exactly one side is empty the scores are 0.0 and ``mean_matched_iou`` is NaN (no pair).
``count_error = n_pred − n_true``.

Example
-------
>>> import numpy as np
>>> t = np.zeros((4, 6), int); t[:2, :2] = 1; t[2:, 4:] = 2
>>> p = np.zeros((4, 6), int); p[:2, :3] = 5
>>> m = match_instances(t, p, iou_threshold=0.5)
>>> m.tp, m.fp, m.fn, round(m.f1, 3), round(m.panoptic_quality, 3)
(1, 0, 1, 0.667, 0.444)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from nanoseg.errors import NanosegError


def instance_labels(mask, *, pixel_size_nm: float | None = None, min_diameter_nm: float = 0.0) -> np.ndarray:
    """Instance labels by :func:`nanoseg.particles.label_particles`, the project's one definition of a particle.

    A binary mask of any dtype (bool, 0/1, 0/255) becomes 8-connected components; with ``pixel_size_nm``
    touching particles are also split (as ``nanoseg predict`` does) and objects below ``min_diameter_nm``
    dropped; without a pixel size nothing is split (the split rule is physical). An integer image with three or
    more values is a label image: validated (each label one connected piece) and kept with its ids.
    """
    from nanoseg.particles import label_particles

    if pixel_size_nm is None:
        if min_diameter_nm:
            raise NanosegError("a minimum particle diameter needs the pixel size", hint="pass pixel_size_nm")
        return label_particles(mask, pixel_size_nm=1.0, min_diameter_nm=0.0, split_touching=False)
    return label_particles(mask, pixel_size_nm=pixel_size_nm, min_diameter_nm=min_diameter_nm)


def iou_matrix(true_labels, pred_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every (true, predicted) instance pair.

    Returns ``(iou, true_ids, pred_ids)`` with ``iou`` of shape ``(len(true_ids), len(pred_ids))``.
    """
    t = np.asarray(true_labels)
    p = np.asarray(pred_labels)
    if t.shape != p.shape:
        raise NanosegError(f"true labels {t.shape} and predicted labels {p.shape} have different shapes")
    if (t < 0).any() or (p < 0).any():
        raise NanosegError("instance labels must be ≥ 0 (0 = background)")
    true_ids, t_idx = np.unique(t, return_inverse=True)
    pred_ids, p_idx = np.unique(p, return_inverse=True)
    # Make sure the background (0) sits at index 0 on both sides even when it does not occur.
    if true_ids[0] != 0:
        true_ids, t_idx = np.concatenate([[0], true_ids]), t_idx + 1
    if pred_ids[0] != 0:
        pred_ids, p_idx = np.concatenate([[0], pred_ids]), p_idx + 1
    n_t, n_p = len(true_ids), len(pred_ids)
    overlap = np.bincount(t_idx.ravel() * n_p + p_idx.ravel(), minlength=n_t * n_p).reshape(n_t, n_p)
    area_t, area_p = overlap.sum(axis=1), overlap.sum(axis=0)
    overlap = overlap[1:, 1:].astype(np.float64)
    union = area_t[1:, None] + area_p[None, 1:] - overlap
    with np.errstate(invalid="ignore", divide="ignore"):
        ious = np.where(union > 0, overlap / union, 0.0)
    return ious, true_ids[1:], pred_ids[1:]


@dataclass
class MatchResult:
    """Instance matching of one image at one IoU threshold."""

    iou_threshold: float
    n_true: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_matched_iou: float
    panoptic_quality: float
    count_error: int
    pairs: list[tuple[int, int, float]] = field(default_factory=list, repr=False)

    def as_dict(self, *, prefix: str = "") -> dict[str, float]:
        """Scores as a flat dict (without the pair list), keys optionally prefixed."""
        d = asdict(self)
        d.pop("pairs")
        return {f"{prefix}{k}": v for k, v in d.items()}


def _assign(ious: np.ndarray, threshold: float, method: str) -> list[tuple[int, int]]:
    if ious.size == 0:
        return []
    ok = ious >= threshold
    if method == "greedy":
        order = np.argsort(-ious, axis=None, kind="stable")
        used_t, used_p, pairs = set(), set(), []
        for flat in order:
            i, j = divmod(int(flat), ious.shape[1])
            if not ok[i, j]:
                break
            if i not in used_t and j not in used_p:
                used_t.add(i)
                used_p.add(j)
                pairs.append((i, j))
        return pairs
    if method == "hungarian":
        from scipy.optimize import linear_sum_assignment

        n_ok = max(int(ok.sum()), 1)
        # Count first (−1 per admissible pair), then total IoU (< 1 in sum) breaks ties, as in StarDist.
        cost = -ok.astype(np.float64) - ok * ious / (2 * n_ok)
        rows, cols = linear_sum_assignment(cost)
        return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if ok[i, j]]
    raise NanosegError(f"unknown matching method {method!r}", hint="use 'hungarian' or 'greedy'")


def match_instances(true_labels, pred_labels, *, iou_threshold: float = 0.5, method: str = "hungarian",
                    pixel_size_nm: float | None = None) -> MatchResult:
    """Match predicted particles to true particles one-to-one at ``iou_threshold`` (see module docs).

    ``true_labels``/``pred_labels`` are instance label images (0 = background) or binary masks of any dtype
    (labelled here by :func:`instance_labels`: components, and touching particles split when ``pixel_size_nm``
    is given).
    """
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise NanosegError(f"IoU threshold must lie in (0, 1], got {iou_threshold}")
    ious, true_ids, pred_ids = iou_matrix(instance_labels(true_labels, pixel_size_nm=pixel_size_nm),
                                          instance_labels(pred_labels, pixel_size_nm=pixel_size_nm))
    pairs = _assign(ious, float(iou_threshold), method)
    n_true, n_pred, tp = len(true_ids), len(pred_ids), len(pairs)
    fp, fn = n_pred - tp, n_true - tp
    matched = [float(ious[i, j]) for i, j in pairs]
    if n_true == 0 and n_pred == 0:
        precision = recall = f1 = pq = 1.0
        mean_iou = 1.0
    else:
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * tp / (n_pred + n_true)
        mean_iou = float(np.mean(matched)) if matched else float("nan")
        pq = sum(matched) / (tp + fp / 2 + fn / 2)
    return MatchResult(
        iou_threshold=float(iou_threshold), n_true=n_true, n_pred=n_pred, tp=tp, fp=fp, fn=fn,
        precision=precision, recall=recall, f1=f1, mean_matched_iou=mean_iou, panoptic_quality=float(pq),
        count_error=n_pred - n_true,
        pairs=[(int(true_ids[i]), int(pred_ids[j]), float(ious[i, j])) for i, j in pairs],
    )


def matching_scores(true_labels, pred_labels, *, iou_thresholds: Sequence[float] = (0.5, 0.75),
                    method: str = "hungarian", pixel_size_nm: float | None = None) -> dict[str, float]:
    """Flat dict of instance scores at several IoU thresholds, keys like ``f1@0.5``, ``pq@0.5``."""
    t = instance_labels(true_labels, pixel_size_nm=pixel_size_nm)
    p = instance_labels(pred_labels, pixel_size_nm=pixel_size_nm)
    out: dict[str, float] = {}
    for th in iou_thresholds:
        m = match_instances(t, p, iou_threshold=th, method=method)
        out.update({f"precision@{th:g}": m.precision, f"recall@{th:g}": m.recall, f"f1@{th:g}": m.f1,
                    f"mean_matched_iou@{th:g}": m.mean_matched_iou, f"pq@{th:g}": m.panoptic_quality})
        out["n_true"], out["n_pred"], out["count_error"] = m.n_true, m.n_pred, m.count_error
    return out
