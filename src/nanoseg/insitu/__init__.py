"""In situ movies: drift correction, linking over time, coalescence/ripening events, coarsening kinetics.

The pipeline is a pandas DataFrame flowing through plain functions (trackpy style)::

    tables  = [particle_table(label_particles(p, pixel_size_nm=px), pixel_size_nm=px, frame=i, time_s=t) ...]
    drift   = estimate_drift(series)                    # frame, dy_nm, dx_nm
    tracks  = link_particles(correct_positions(pd.concat(tables), drift), search_range_nm=1.0)
    tracks, events, lineage = detect_events(tracks)
    stats   = size_statistics(tracks); fits = fit_kinetics(stats); verdict = coarsening_verdict(...)

or in one streaming call: :func:`track_movie`.
"""

from nanoseg.insitu.drift import DriftTracker, correct_positions, estimate_drift, shift_frame
from nanoseg.insitu.theory import lsw_distribution, sample_lsw_radii

__all__ = ["DriftTracker", "correct_positions", "estimate_drift", "shift_frame", "lsw_distribution",
           "sample_lsw_radii"]
