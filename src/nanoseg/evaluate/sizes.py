"""Physical scores: particle sizes in nm and size-distribution comparisons (Horwath's point: the particle-size
distribution is the measurement that matters).

``particle_sizes`` measures every particle of a label image (equivalent diameter, major/minor axis in nm);
``compare_size_distributions`` compares two samples of diameters: mean/median error, the two-sample
Kolmogorov–Smirnov statistic (and p-value) and the Wasserstein-1 (earth mover's) distance in nm.
``size_statistics_table`` states one sample the way a paper cites it (D10/D50/D90, mean ± sd with bootstrap
intervals, border correction, detection limit). ``read_size_measurements`` reads a CSV of manual measurements
(one particle per row).

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

from nanoseg._pixel import above_min_diameter
from nanoseg.errors import NanosegError
from nanoseg.particles import miles_lantuejoul_weights  # noqa: F401  (re-exported; used below)

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


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Quantile of the weighted empirical distribution; where the cumulative weight hits ``q`` exactly, the
    midpoint of the two neighbouring values (so equal weights give ``np.median`` for ``q = 0.5``)."""
    return float(_weighted_quantiles(values, weights, np.array([q]))[0])


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """:func:`_weighted_quantile` at every ``q`` of ``qs`` with one sort."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w) / w.sum()
    i = np.minimum(np.searchsorted(cum, qs - 1e-12), v.size - 1)
    exact = (i + 1 < v.size) & (np.abs(cum[i] - qs) < 1e-12)
    upper = v[np.minimum(i + 1, v.size - 1)]
    return np.where(exact, 0.5 * (v[i] + upper), v[i])


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


#: quantiles of the size statistics: D10, D50 (median), D90 of the (border-corrected) number distribution
SIZE_QUANTILES = {"D10": 0.1, "D50": 0.5, "D90": 0.9}


def _sample_statistics(d: np.ndarray, w: np.ndarray) -> np.ndarray:
    """D10, D50, D90, mean and sd of a weighted sample (sd with the reliability-weight correction
    ``V1 − V2/V1``, which is the n − 1 of the sample sd for equal weights; NaN for fewer than 2 particles)."""
    quantiles = _weighted_quantiles(d, w, np.array(list(SIZE_QUANTILES.values())))
    mean = float(np.average(d, weights=w))
    v1, v2 = w.sum(), (w**2).sum()
    denominator = v1 - v2 / v1
    sd = float(np.sqrt(np.sum(w * (d - mean) ** 2) / denominator)) if d.size > 1 and denominator > 0 else np.nan
    return np.concatenate([quantiles, [mean, sd]])


def _sizes_and_weights(sizes, weights, n_border_excluded):
    """Diameters, weights (None: every particle counts once) and the border count from a table or an array."""
    if isinstance(sizes, pd.DataFrame):
        if "diameter_nm" not in sizes.columns:
            raise NanosegError("the particle table has no diameter_nm column",
                               hint="give a table of nanoseg.particles.particle_table / particle_sizes, or an array "
                                    "of diameters in nm")
        table = sizes
        border = table["touches_edge"].to_numpy(dtype=bool) if "touches_edge" in table.columns else None
        if n_border_excluded is None:
            n_border_excluded = int(table.attrs.get("n_border_excluded", 0)) + (
                int(border.sum()) if border is not None else 0)
        if border is not None:
            table = table[~border]
        d = pd.to_numeric(table["diameter_nm"], errors="coerce").to_numpy(dtype=np.float64)
        if weights is None and "ml_weight" in table.columns:
            weights = table["ml_weight"].to_numpy(dtype=np.float64)
    else:
        d = np.asarray(sizes, dtype=np.float64).ravel()
    if not np.isfinite(d).all():
        raise NanosegError("particle sizes contain NaN or infinite values")
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    return d, w, int(n_border_excluded or 0)


def size_statistics_table(sizes, *, weights: Sequence[float] | None = None, n_boot: int = 1000, seed: int = 0,
                          detection_limit_nm: float | None = None, n_border_excluded: int | None = None,
                          confidence: float = 0.95) -> pd.DataFrame:
    """The size statistics of one sample, as a paper states them: D10, D50, D90, mean and sd with bootstrap
    confidence intervals, the number of particles used, the number left out at the border and the detection limit.

    Parameters
    ----------
    sizes : a particle table (``diameter_nm``; optional ``touches_edge``, ``ml_weight``, and
        ``attrs["n_border_excluded"]`` as :func:`particle_sizes` leaves it) or an array of diameters in nm.
    weights : per-particle weights (default: the table's ``ml_weight``, the Miles–Lantuéjoul border correction;
        none → every particle counts once).
    n_boot : bootstrap replicates (0: no intervals). Each replicate resamples the particles with replacement
        (each keeps its weight) and recomputes every statistic; the interval is the percentile interval.
    seed : random seed of the bootstrap (the same seed gives the same intervals).
    detection_limit_nm : the smallest diameter the measurement keeps (e.g. predict's ``--min-diameter``);
        smaller particles are left out here too and the limit is stated in the table.
    n_border_excluded : how many particles were left out for touching the border (default: from the table).
    confidence : the interval's coverage (0.95 → columns ``ci95_low``/``ci95_high``).

    Returns
    -------
    DataFrame ``statistic, value, ci95_low, ci95_high, unit, note`` with rows D10, D50, D90, mean, sd (nm),
    ``N used`` and ``N border-excluded`` (particles) and ``detection limit`` (nm). Particles touching the frame
    are left out (their size is cut); D-values are quantiles of the weighted number distribution
    (:func:`_weighted_quantile`), sd uses the reliability-weight correction (n − 1 for equal weights).
    ``attrs`` holds ``n_used, n_border_excluded, detection_limit_nm, weighted, n_boot, seed, confidence``.

    Example
    -------
    >>> t = size_statistics_table([1.0, 2.0, 3.0, 4.0], n_boot=0)
    >>> t.set_index("statistic").loc[["D10", "D50", "D90", "mean"], "value"].tolist()
    [1.0, 2.5, 4.0, 2.5]
    """
    d, w, n_border = _sizes_and_weights(sizes, weights, n_border_excluded)
    if w is not None:
        w = _weights(d, w, "size")
    limit = float(detection_limit_nm) if detection_limit_nm is not None else None
    if limit is not None:
        keep = above_min_diameter(d, limit)  # the one minimum-size cut
        d, w = d[keep], (None if w is None else w[keep])
    weighted = w is not None
    w = np.ones_like(d) if w is None else w
    names = [*SIZE_QUANTILES, "mean", "sd"]
    value = _sample_statistics(d, w) if d.size else np.full(len(names), np.nan)
    low = high = np.full(len(names), np.nan)
    if n_boot > 0 and d.size > 1:
        rng = np.random.default_rng(seed)
        reps = np.empty((int(n_boot), len(names)))
        for b in range(int(n_boot)):
            idx = rng.integers(0, d.size, d.size)
            reps[b] = _sample_statistics(d[idx], w[idx])
        tail = 100 * (1 - confidence) / 2
        low, high = np.nanpercentile(reps, tail, axis=0), np.nanpercentile(reps, 100 - tail, axis=0)
    tag = f"ci{round(100 * confidence):d}"
    how = "Miles–Lantuéjoul weighted" if weighted else "each particle counts once"
    notes = {"D10": f"10 % of particles are smaller ({how})", "D50": f"median diameter ({how})",
             "D90": f"90 % of particles are smaller ({how})", "mean": f"equivalent-circle diameter ({how})",
             "sd": "spread of the diameters (not the error of the mean)"}
    rows = [{"statistic": name, "value": float(value[k]), f"{tag}_low": float(low[k]), f"{tag}_high": float(high[k]),
             "unit": "nm", "note": notes[name]} for k, name in enumerate(names)]
    nan = float("nan")
    rows += [
        {"statistic": "N used", "value": int(d.size), f"{tag}_low": nan, f"{tag}_high": nan, "unit": "particles",
         "note": "particles inside the frame, at or above the detection limit"},
        {"statistic": "N border-excluded", "value": n_border, f"{tag}_low": nan, f"{tag}_high": nan,
         "unit": "particles", "note": "cut by the frame border: left out"
                                      + ("; the weights correct for it" if weighted else "")},
        {"statistic": "detection limit", "value": nan if limit is None else limit, f"{tag}_low": nan,
         f"{tag}_high": nan, "unit": "nm", "note": "smaller particles are not counted"},
    ]
    out = pd.DataFrame(rows)
    out.attrs.update(n_used=int(d.size), n_border_excluded=n_border, detection_limit_nm=limit, weighted=weighted,
                     n_boot=int(n_boot), seed=int(seed), confidence=float(confidence))
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
