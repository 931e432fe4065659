"""Physical scores: particle sizes in nm and size-distribution comparisons (Horwath's point: the particle-size
distribution is the measurement that matters).

``particle_sizes`` measures every particle of a label image (equivalent diameter, major/minor axis in nm);
``compare_size_distributions`` compares two samples of diameters: mean/median error, the two-sample
Kolmogorov–Smirnov statistic (and p-value) and the Wasserstein-1 (earth mover's) distance in nm.
``read_size_measurements`` reads a CSV of manual measurements (one particle per row).

Example
-------
>>> import numpy as np
>>> r = compare_size_distributions([4.0, 5.0, 6.0], [5.0, 6.0, 7.0])
>>> r["mean_error_nm"], r["median_error_nm"], round(r["wasserstein_nm"], 3), round(r["ks_statistic"], 3)
(-1.0, -1.0, 1.0, 0.333)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError

SIZE_COLUMNS = ("diameter_nm", "equivalent_diameter_nm", "major_axis_nm", "size_nm", "d_nm", "diameter")


def particle_sizes(labels, *, pixel_size_nm: float, min_diameter_nm: float = 0.0, exclude_border: bool = True,
                   split_touching: bool = True) -> pd.DataFrame:
    """One row per particle: the columns of :func:`nanoseg.particles.particle_table` (``label, area_nm2,
    diameter_nm`` (equivalent-area diameter), ``major_axis_nm, minor_axis_nm``, centroids, ``touches_edge``, …)
    plus ``ml_weight``, the particle's Miles–Lantuéjoul weight.

    ``labels`` is an instance label image or a binary mask of any dtype (bool, 0/1, 0/255), labelled by
    :func:`nanoseg.particles.label_particles` (touching particles split unless ``split_touching=False``).
    Particles with an equivalent diameter below ``min_diameter_nm`` are dropped.

    **Border particles.** A particle touching the image border is cut: its size is a lower bound, and large
    particles are cut more often than small ones. By default (``exclude_border=True``) they are left out and
    ``table.attrs["n_border_excluded"]`` says how many; each interior particle of bounding box ``w × h`` px in a
    ``W × H`` px image carries the Miles–Lantuéjoul weight ``W·H / ((W − w)(H − h))`` (the inverse of the
    fraction of positions at which a particle of that extent lies inside the frame), which corrects the size
    distribution for the border exclusion when passed to :func:`compare_size_distributions`. With
    ``exclude_border=False`` every particle is kept (border ones with ``ml_weight`` NaN).

    Example
    -------
    >>> import numpy as np
    >>> m = np.zeros((100, 100), np.uint8); m[20:30, 20:30] = 255; m[0:30, 70:100] = 255
    >>> t = particle_sizes(m, pixel_size_nm=0.1)
    >>> len(t), t.attrs["n_border_excluded"], round(float(t.ml_weight.iloc[0]), 4)
    (1, 1, 1.2346)
    """
    from nanoseg.particles import label_particles, particle_table

    if pixel_size_nm is None or not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        raise NanosegError(f"particle sizes need a positive pixel size in nm, got {pixel_size_nm}",
                           hint="pass pixel_size_nm (the dataset's or the file's calibration)")
    lab = label_particles(labels, pixel_size_nm=pixel_size_nm, min_diameter_nm=min_diameter_nm,
                          split_touching=split_touching)
    table = particle_table(lab, pixel_size_nm=pixel_size_nm)
    table["ml_weight"] = miles_lantuejoul_weights(lab, table["label"].to_numpy())
    table.loc[table["touches_edge"].to_numpy(dtype=bool), "ml_weight"] = np.nan
    n_border = int(table["touches_edge"].sum())
    if exclude_border and n_border:
        table = table[~table["touches_edge"].to_numpy(dtype=bool)].reset_index(drop=True)
    table.attrs["n_border_excluded"] = n_border if exclude_border else 0
    return table


def miles_lantuejoul_weights(labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Miles–Lantuéjoul weight ``W·H / ((W − w)(H − h))`` of each label in ``ids`` (bounding box ``w × h`` px of
    a ``W × H`` px image); ``inf`` for a particle as wide or as tall as the image (it can never lie inside)."""
    from scipy import ndimage as ndi

    lab = np.asarray(labels)
    height, width = lab.shape
    boxes = ndi.find_objects(lab)
    out = np.empty(len(ids))
    for k, label in enumerate(ids):
        box = boxes[int(label) - 1]
        h = box[0].stop - box[0].start
        w = box[1].stop - box[1].start
        inside = (width - w) * (height - h)
        out[k] = width * height / inside if inside > 0 else np.inf
    return out


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Quantile of the weighted empirical distribution; where the cumulative weight hits ``q`` exactly, the
    midpoint of the two neighbouring values (so equal weights give ``np.median`` for ``q = 0.5``)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w) / w.sum()
    i = int(np.searchsorted(cum, q - 1e-12))
    if i + 1 < v.size and abs(cum[i] - q) < 1e-12:
        return float(0.5 * (v[i] + v[i + 1]))
    return float(v[min(i, v.size - 1)])


def _weighted_ecdf_gaps(pred, wp, ref, wr) -> tuple[float, float]:
    """(KS statistic, Wasserstein-1) between two weighted samples."""
    from scipy.stats import wasserstein_distance

    def ecdf(values, weights, at):
        order = np.argsort(values, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(weights[order])]) / weights.sum()
        return cum[np.searchsorted(values[order], at, side="right")]

    grid = np.concatenate([pred, ref])
    gap = np.abs(ecdf(pred, wp, grid) - ecdf(ref, wr, grid))
    return float(gap.max()), float(wasserstein_distance(pred, ref, wp, wr))


def _weights(values: np.ndarray, weights, name: str) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != values.shape:
        raise NanosegError(f"{name} weights: {w.size} values for {values.size} sizes")
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise NanosegError(f"{name} weights must be finite and > 0",
                           hint="border particles have no Miles–Lantuéjoul weight: leave them out")
    return w


def compare_size_distributions(predicted_nm: Sequence[float], reference_nm: Sequence[float], *,
                               predicted_weights: Sequence[float] | None = None,
                               reference_weights: Sequence[float] | None = None) -> dict[str, float]:
    """Compare two samples of particle sizes (nm): predicted vs reference (ground truth or manual).

    Errors are predicted − reference. With an empty side, counts are reported and every distance is NaN.
    ``*_weights`` (e.g. the ``ml_weight`` of :func:`particle_sizes`, border-corrected) weight every statistic:
    mean, std, median and the 10 %/90 % quantiles (``p10_*``, ``p90_*``), KS statistic and Wasserstein distance;
    the KS p-value then uses the effective sample sizes ``(Σw)² / Σw²`` in the asymptotic Kolmogorov
    distribution. Without weights every particle counts once and the p-value is scipy's ``ks_2samp``.
    """
    pred = np.asarray(predicted_nm, dtype=np.float64).ravel()
    ref = np.asarray(reference_nm, dtype=np.float64).ravel()
    if not (np.isfinite(pred).all() and np.isfinite(ref).all()):
        raise NanosegError("particle sizes contain NaN or infinite values")
    wp = _weights(pred, predicted_weights, "predicted")
    wr = _weights(ref, reference_weights, "reference")
    weighted = wp is not None or wr is not None
    wp = np.ones_like(pred) if wp is None else wp
    wr = np.ones_like(ref) if wr is None else wr
    out = {"n_pred": int(pred.size), "n_ref": int(ref.size)}
    nan = float("nan")

    def describe(values, w, tag):
        mean = float(np.average(values, weights=w))
        return {f"mean_{tag}_nm": mean, f"median_{tag}_nm": _weighted_quantile(values, w, 0.5),
                f"std_{tag}_nm": float(np.sqrt(np.average((values - mean) ** 2, weights=w))),
                f"p10_{tag}_nm": _weighted_quantile(values, w, 0.1),
                f"p90_{tag}_nm": _weighted_quantile(values, w, 0.9)}

    if pred.size == 0 or ref.size == 0:
        out.update({k: nan for k in ("mean_pred_nm", "mean_ref_nm", "mean_error_nm", "relative_mean_error",
                                     "median_pred_nm", "median_ref_nm", "median_error_nm", "std_pred_nm",
                                     "std_ref_nm", "p10_pred_nm", "p90_pred_nm", "p10_ref_nm", "p90_ref_nm",
                                     "ks_statistic", "ks_pvalue", "wasserstein_nm")})
        if pred.size:
            out.update(describe(pred, wp, "pred"))
        if ref.size:
            out.update(describe(ref, wr, "ref"))
        return out
    from scipy.stats import kstwobign

    out.update(describe(pred, wp, "pred"))
    out.update(describe(ref, wr, "ref"))
    ks, w1 = _weighted_ecdf_gaps(pred, wp, ref, wr)
    if weighted:
        n1, n2 = wp.sum() ** 2 / (wp**2).sum(), wr.sum() ** 2 / (wr**2).sum()
        p_value = float(kstwobign.sf(np.sqrt(n1 * n2 / (n1 + n2)) * ks))
    else:
        from scipy.stats import ks_2samp

        p_value = float(ks_2samp(pred, ref).pvalue)
    mean_ref = out["mean_ref_nm"]
    out.update(
        mean_error_nm=out["mean_pred_nm"] - mean_ref,
        relative_mean_error=(out["mean_pred_nm"] - mean_ref) / mean_ref if mean_ref else nan,
        median_error_nm=out["median_pred_nm"] - out["median_ref_nm"],
        ks_statistic=ks, ks_pvalue=p_value, wasserstein_nm=w1,
    )
    return out


def read_size_measurements(path: str | os.PathLike, *, column: str | None = None) -> np.ndarray:
    """Particle sizes in nm from a CSV of manual measurements (one particle per row).

    ``column`` names the column; by default the first of ``diameter_nm, equivalent_diameter_nm,
    major_axis_nm, size_nm, d_nm, diameter`` present is used (or the only column of a one-column file).
    """
    path = Path(path)
    if not path.exists():
        raise NanosegError("measurement file not found", path=path)
    try:
        table = pd.read_csv(path)
    except Exception as exc:  # pandas raises several parser errors
        raise NanosegError(f"cannot read the CSV ({exc})", path=path) from exc
    if column is None:
        found = [c for c in SIZE_COLUMNS if c in table.columns]
        if found:
            column = found[0]
        elif table.shape[1] == 1:
            column = table.columns[0]
        else:
            raise NanosegError("no size column found", path=path,
                               hint=f"name it one of {', '.join(SIZE_COLUMNS)} or pass the column name")
    if column not in table.columns:
        raise NanosegError(f"no column {column!r}", path=path, hint=f"columns are: {', '.join(table.columns)}")
    values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy(dtype=np.float64)
    if values.size == 0:
        raise NanosegError(f"column {column!r} holds no numbers", path=path)
    if (values <= 0).any():
        raise NanosegError(f"column {column!r} holds sizes ≤ 0 nm", path=path, hint="sizes must be in nm, > 0")
    return values
