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

from nanoseg._lazy import lazy_attributes
from nanoseg.insitu.drift import DriftTracker, correct_positions, estimate_drift
from nanoseg.insitu.events import EventResult, detect_events
from nanoseg.insitu.kinetics import (
    bootstrap_kinetics,
    coarsening_verdict,
    fit_kinetics,
    growth_rates,
    size_distributions,
    size_statistics,
    volume_conservation,
)
from nanoseg.insitu.linking import LinkResult, link_lineage, link_particles
from nanoseg.insitu.stream import TrackResult, analyse_tracks, as_series, read_track_result, track_movie
from nanoseg.insitu.truth import compare_to_truth

__all__ = [
    "DriftTracker", "EventResult", "LinkResult", "TrackResult", "analyse_tracks", "as_series",
    "bootstrap_kinetics", "coarsening_verdict", "compare_to_truth", "correct_positions", "detect_events",
    "estimate_drift", "fit_kinetics", "growth_rates", "link_lineage", "link_particles", "read_track_result",
    "size_distributions", "size_statistics", "track_movie", "volume_conservation",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "shift_frame": "nanoseg.insitu.drift", "event_metrics": "nanoseg.insitu.events",
    "sphere_volume": "nanoseg.insitu.events", "fit_coarsening": "nanoseg.insitu.kinetics",
    "match_to_truth": "nanoseg.insitu.linking", "position_columns": "nanoseg.insitu.linking",
    "tracking_metrics": "nanoseg.insitu.linking", "lsw_distribution": "nanoseg.insitu.theory",
    "sample_lsw_radii": "nanoseg.insitu.theory",
}, submodules=["drift", "events", "figures", "kinetics", "linking", "stream", "theory", "truth", "watch"])
