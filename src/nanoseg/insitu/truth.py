"""Score a tracking run against a simulated movie's ground truth (for the demo, reports and benchmarks).

Example
-------
>>> import tempfile, numpy as np
>>> from nanoseg.simulate.movie import simulate_coarsening_movie
>>> from nanoseg.insitu import track_movie
>>> m = simulate_coarsening_movie(n_frames=8, shape_px=(96, 96), pixel_size_nm=0.2, n_particles=6, seed=0)
>>> r = track_movie(m, masks=lambda i: m.mask(i), out_dir=tempfile.mkdtemp(), n_boot=0, figures=False)
>>> table = compare_to_truth(r, m)
>>> table.loc[table.metric == "link_recall", "value"].item() > 0.9
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError

__all__ = ["compare_to_truth", "kinetics_agreement", "recall_by_size", "truth_particle_table"]


def truth_particle_table(movie) -> pd.DataFrame:
    """The movie's truth as a particle table for :mod:`~nanoseg.insitu.kinetics` (``diameter_nm = 2r``, border
    particles flagged ``touches_edge``, ``track_id`` = the true particle id)."""
    t = movie.truth
    return t.assign(diameter_nm=2 * t["radius_nm"], touches_edge=~t["inside"].astype(bool), track_id=t["particle_id"])


def compare_to_truth(result, movie, *, max_distance_nm: float = 0.5, vanish_frame_tolerance: int = 6,
                     min_diameter_nm: float | None = None) -> pd.DataFrame:
    """One table of accuracy numbers of a :class:`~nanoseg.insitu.stream.TrackResult` against the movie's truth.

    ``min_diameter_nm`` is the detection limit d_min of the kinetics: the truth's kinetics are fitted on the true
    particles fully inside the field with d ≥ d_min, like the measured ones (None: the run's own
    ``summary["kinetics_min_diameter_nm"]``, else 0). Rows ``group, metric, value, truth, note`` (``truth`` holds
    the true value where one applies; ``note`` the assumption or a caveat such as a fit ending on a bound):

    * drift: max and mean error (px) and the true total drift (px);
    * tracking: :func:`~nanoseg.insitu.linking.tracking_metrics` (link recall, ID switches, missed links, …);
    * events: :func:`~nanoseg.insitu.events.event_metrics` for coalescence (±1 frame) and vanish (±6 frames);
    * kinetics: fitted n (free) and k (n = 3, 4) of the run against the same fits on the truth tables (the finite
      sample's own value, restricted to d ≥ d_min), the generating rate, and d_min itself.
    """
    from nanoseg.insitu.events import event_metrics
    from nanoseg.insitu.linking import tracking_metrics

    if not hasattr(movie, "truth") or not hasattr(movie, "events"):
        raise NanosegError("compare_to_truth needs a simulated movie with ground truth (simulate_coarsening_movie)")
    px = movie.pixel_size_nm
    rows = []
    d = result.drift
    if len(d) and "dy_nm" in d.columns:
        merged = d.merge(movie.drift, on="frame", suffixes=("", "_true"))
        err = np.hypot(merged.dy_nm - merged.dy_nm_true, merged.dx_nm - merged.dx_nm_true) / px
        total = float(np.hypot(movie.drift.dy_nm.iloc[-1], movie.drift.dx_nm.iloc[-1]) / px)
        rows += [("drift", "max_error_px", float(err.max()), np.nan),
                 ("drift", "mean_error_px", float(err.mean()), np.nan),
                 ("drift", "total_drift_px", float(np.hypot(d.dy_nm.iloc[-1], d.dx_nm.iloc[-1]) / px), total)]
    for k, v in tracking_metrics(result.tracks, movie.truth, max_distance_nm=max_distance_nm).items():
        rows.append(("tracking", k, v, np.nan))
    for kind, tol in (("coalescence", 1), ("vanish", vanish_frame_tolerance)):
        em = event_metrics(result.tracks, result.events, movie.truth, movie.events, max_distance_nm=max_distance_nm,
                           kind=kind, frame_tolerance=tol)
        rows += [(f"{kind} events", k, v, np.nan) for k, v in em.items()]
    rows = [(*row, "") for row in rows]
    rows += _kinetics_rows(result, movie, min_diameter_nm)
    return pd.DataFrame(rows, columns=["group", "metric", "value", "truth", "note"])


def _kinetics_rows(result, movie, min_diameter_nm: float | None) -> list[tuple]:
    """The kinetics rows of :func:`compare_to_truth`: d_min, then run vs the same fits on the truth above d_min."""
    from nanoseg.insitu.kinetics import fit_kinetics, size_statistics

    summary = getattr(result, "summary", None) or {}
    d_min = float(min_diameter_nm if min_diameter_nm is not None else summary.get("kinetics_min_diameter_nm", 0.0))
    rows = [("kinetics", "kinetics detection limit d_min (nm)", d_min, d_min,
             "particles smaller than d_min are left out of both the measured and the true kinetics")]
    if not len(result.fits):
        return rows
    try:
        tfits = fit_kinetics(size_statistics(truth_particle_table(movie), min_diameter_nm=d_min)).set_index("model")
    except NanosegError:
        tfits = None
    fits = result.fits.set_index("model")
    sample = f"truth: same fit on the true particles fully inside the field with d ≥ {d_min:g} nm"
    for model, col in (("n free", "n"), ("n=3", "k"), ("n=4", "k")):
        if model not in fits.index:
            continue
        truth_value = float(tfits.loc[model, col]) if tfits is not None and model in tfits.index else np.nan
        notes = [sample]
        for who, table in (("run", fits), ("truth", tfits)):
            bound = table.loc[model].get("at_bound", "") if table is not None and model in table.index else ""
            if isinstance(bound, str) and bound:
                notes.append(f"{who} fit ends on a bound of {bound} (not constrained)")
        rows.append(("kinetics", f"{col} ({model})", float(fits.loc[model, col]), truth_value, "; ".join(notes)))
    rate = movie.params.get("rate_nm_n_per_s")
    if rate is not None:
        rows.append(("kinetics", "generating k (n=3)", float(rate), float(rate),
                     "the rate of the simulated law (all particles, no detection limit)"))
    return rows


def recall_by_size(tracks: pd.DataFrame, truth: pd.DataFrame, *, bins_nm=(0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0),
                   max_distance_nm: float = 0.5) -> pd.DataFrame:
    """Detection recall of the true particles fully inside the field, per bin of true diameter ``2 r``.

    Detections are matched one-to-one to all true particles per frame (within ``max_distance_nm``, image
    coordinates, as in :func:`~nanoseg.insitu.linking.tracking_metrics`); particles cut by the border are not
    counted (their centroid is off the true centre). Returns ``diameter_from_nm, diameter_to_nm, n_true, n_found,
    recall`` (NaN for an empty bin): the detection limit is where the recall rises.
    """
    from nanoseg.insitu.linking import match_to_truth

    edges = np.asarray(bins_nm, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise NanosegError(f"bins_nm must be increasing diameters (nm), got {list(bins_nm)}")
    det = match_to_truth(tracks, truth, max_distance_nm=max_distance_nm)
    hit = det[det["truth_id"] >= 0]
    found = set(zip(hit["frame"], hit["truth_id"], strict=True))
    inside = truth[truth["inside"].astype(bool)] if "inside" in truth.columns else truth
    d = 2 * inside["radius_nm"].to_numpy(float)
    was_found = np.array([(f, p) in found for f, p in zip(inside["frame"], inside["particle_id"], strict=True)],
                         dtype=bool)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (d > lo) & (d <= hi)
        n_true, n_found = int(sel.sum()), int(was_found[sel].sum())
        rows.append((lo, hi, n_true, n_found, n_found / n_true if n_true else float("nan")))
    return pd.DataFrame(rows, columns=["diameter_from_nm", "diameter_to_nm", "n_true", "n_found", "recall"])


def kinetics_agreement(accuracy: pd.DataFrame, summary: dict | None = None, *, k_tolerance: float = 0.2,
                       n_tolerance: float = 0.5) -> dict:
    """The kinetics comparison of a :func:`compare_to_truth` table in numbers, with pass/fail against tolerances.

    Returns ``d_min_nm``; ``k3, k3_truth, k3_std`` (bootstrap σ from ``summary["bootstrap"]`` when there,
    else NaN), ``k3_rel_diff`` ((k − k_truth)/k_truth), ``k3_ok`` (|rel diff| ≤ ``k_tolerance``); ``n, n_truth,
    n_std, n_diff, n_ok`` (|diff| ≤ ``n_tolerance``); ``k_generating``; ``bounds`` (the notes of fits that ended
    on a bound). Missing rows give NaN and ``False``.
    """
    acc = accuracy.set_index("metric") if "metric" in accuracy.columns else accuracy
    boot = (summary or {}).get("bootstrap", {})

    def cell(metric, col):
        return float(acc.loc[metric, col]) if metric in acc.index and pd.notna(acc.loc[metric, col]) else np.nan

    k3, k3_truth = cell("k (n=3)", "value"), cell("k (n=3)", "truth")
    n, n_truth = cell("n (n free)", "value"), cell("n (n free)", "truth")
    rel = (k3 - k3_truth) / k3_truth if np.isfinite(k3_truth) and k3_truth > 0 else np.nan
    notes = acc["note"] if "note" in acc.columns else pd.Series(dtype=str)
    bounds = [f"{metric}: {part}" for metric, note in notes.items() if isinstance(note, str)
              for part in note.split("; ") if "on a bound" in part]
    return {
        "d_min_nm": cell("kinetics detection limit d_min (nm)", "value"),
        "k3": k3, "k3_truth": k3_truth, "k3_std": float(boot.get("n=3", {}).get("k_std", np.nan)),
        "k3_rel_diff": rel, "k3_ok": bool(np.isfinite(rel) and abs(rel) <= k_tolerance),
        "n": n, "n_truth": n_truth, "n_std": float(boot.get("n free", {}).get("n_std", np.nan)),
        "n_diff": n - n_truth, "n_ok": bool(np.isfinite(n - n_truth) and abs(n - n_truth) <= n_tolerance),
        "k_generating": cell("generating k (n=3)", "value"), "k_tolerance": k_tolerance,
        "n_tolerance": n_tolerance, "bounds": bounds,
    }
