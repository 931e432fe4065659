"""In situ movies: drift correction, linking over time, coalescence/ripening events, coarsening kinetics.

The pipeline is a pandas DataFrame flowing through plain functions (trackpy style)::

    tables = [particle_table(label_particles(p, pixel_size_nm=px), pixel_size_nm=px, frame=i, time_s=t) ...]
    drift = estimate_drift(series)                               # frame, dy_px, dx_px, dy_nm, dx_nm
    tracks = link_particles(correct_positions(pd.concat(tables), drift), search_range_nm=1.0)
    tracks, events, lineage, links = detect_events(tracks)         # links: parent → child merges/splits
    stats = size_statistics(tracks); fits = fit_kinetics(stats)
    verdict = coarsening_verdict(stats, events, lineage, growth_rates(tracks), fits, tracks=tracks)

or in one streaming, resumable call: :func:`track_movie` (what ``nanoseg track`` runs).
"""

from nanoseg.insitu.drift import DriftTracker, correct_positions, estimate_drift, shift_frame
from nanoseg.insitu.events import EventResult, detect_events, event_metrics, sphere_volume
from nanoseg.insitu.kinetics import (
    bootstrap_kinetics,
    coarsening_verdict,
    fit_coarsening,
    fit_kinetics,
    growth_rates,
    size_distributions,
    size_statistics,
    volume_conservation,
)
from nanoseg.insitu.linking import (
    LinkResult,
    link_lineage,
    link_particles,
    match_to_truth,
    position_columns,
    tracking_metrics,
)
from nanoseg.insitu.stream import TrackResult, analyse_tracks, as_series, read_track_result, track_movie
from nanoseg.insitu.theory import lsw_distribution, sample_lsw_radii
from nanoseg.insitu.truth import compare_to_truth

__all__ = [
    "DriftTracker", "EventResult", "LinkResult", "TrackResult", "analyse_tracks", "as_series", "bootstrap_kinetics",
    "coarsening_verdict", "compare_to_truth", "correct_positions", "detect_events", "estimate_drift", "event_metrics",
    "fit_coarsening", "fit_kinetics", "growth_rates", "link_lineage", "link_particles", "lsw_distribution", "match_to_truth",
    "position_columns", "read_track_result", "sample_lsw_radii", "shift_frame", "size_distributions", "size_statistics",
    "sphere_volume", "track_movie", "tracking_metrics", "volume_conservation",
]
