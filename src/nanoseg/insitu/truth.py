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

__all__ = ["compare_to_truth"]


def compare_to_truth(result, movie, *, max_distance_nm: float = 0.5, vanish_frame_tolerance: int = 6
                     ) -> pd.DataFrame:
    """One table of accuracy numbers of a :class:`~nanoseg.insitu.stream.TrackResult` against the movie's truth.

    Rows ``group, metric, value, truth`` (``truth`` holds the true value where one applies):

    * drift: max and mean error (px) and the true total drift (px);
    * tracking: :func:`~nanoseg.insitu.linking.tracking_metrics` (link recall, ID switches, missed links, …);
    * events: :func:`~nanoseg.insitu.events.event_metrics` for coalescence (±1 frame) and vanish (±6 frames);
    * kinetics: fitted n (free) and k (n = 3) of the run against the same fits on the truth tables (the finite
      sample's own value) and the generating rate.
    """
    from nanoseg.insitu.events import event_metrics
    from nanoseg.insitu.kinetics import fit_kinetics, size_statistics
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
    if len(result.fits):
        truth_tab = movie.truth.assign(diameter_nm=2 * movie.truth.radius_nm, touches_edge=~movie.truth.inside)
        try:
            tfits = fit_kinetics(size_statistics(truth_tab)).set_index("model")
        except NanosegError:
            tfits = None
        fits = result.fits.set_index("model")
        for model, col in (("n free", "n"), ("n=3", "k"), ("n=4", "k")):
            if model in fits.index:
                truth_value = float(tfits.loc[model, col]) if tfits is not None and model in tfits.index else np.nan
                rows.append(("kinetics", f"{col} ({model})", float(fits.loc[model, col]), truth_value))
        rate = movie.params.get("rate_nm_n_per_s")
        if rate is not None:
            rows.append(("kinetics", "generating k (n=3)", float(rate), float(rate)))
    return pd.DataFrame(rows, columns=["group", "metric", "value", "truth"])
