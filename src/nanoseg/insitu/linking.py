"""Linking particles across frames (trackpy) and scoring the links against a known truth.

Example
-------
>>> import pandas as pd
>>> t = pd.DataFrame({"frame": [0, 0, 1, 1], "y_nm": [1.0, 5.0, 1.2, 5.1], "x_nm": [1.0, 5.0, 1.1, 4.9],
...                   "diameter_nm": [2.0, 3.0, 2.0, 3.0]})
>>> tracks = link_particles(t, search_range_nm=1.0)
>>> tracks.groupby("track_id").size().tolist()
[2, 2]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError

__all__ = ["link_particles", "position_columns", "tracking_metrics", "match_to_truth"]


def position_columns(table: pd.DataFrame) -> list[str]:
    """Drift-corrected positions when present (``y_corr_nm, x_corr_nm``), else ``y_nm, x_nm``."""
    if {"y_corr_nm", "x_corr_nm"} <= set(table.columns):
        return ["y_corr_nm", "x_corr_nm"]
    return ["y_nm", "x_nm"]


def link_particles(tables, *, search_range_nm: float, memory: int = 2, size_weight: float = 0.5,
                   pos_columns: list[str] | None = None) -> pd.DataFrame:
    """Link per-frame particle tables into tracks with trackpy.

    Parameters
    ----------
    tables : one DataFrame (or a list of per-frame DataFrames) with ``frame``, positions in nm
        (``y_corr_nm, x_corr_nm`` after drift correction, else ``y_nm, x_nm``) and ``diameter_nm``.
    search_range_nm : the largest distance (nm) a particle moves between frames, in the linking space.
    memory : frames a particle may go undetected and still keep its track.
    size_weight : sizes enter the linking distance as an extra coordinate ``size_weight · diameter_nm``
        (0 disables), so a small particle next to a large one is not swapped with it.
    pos_columns : override the position columns.

    Returns
    -------
    The input rows (sorted by frame) with an integer ``track_id`` column (0, 1, 2, … in order of first appearance).
    """
    import trackpy

    table = pd.concat(list(tables), ignore_index=True) if isinstance(tables, list | tuple) else tables.copy()
    if search_range_nm is None or not np.isfinite(search_range_nm) or search_range_nm <= 0:
        raise NanosegError(f"search_range_nm must be > 0, got {search_range_nm}",
                           hint="about the largest distance a particle moves between two frames, e.g. 1.0")
    if memory < 0:
        raise NanosegError(f"memory must be ≥ 0 frames, got {memory}")
    cols = pos_columns or position_columns(table)
    need = ["frame", *cols] + (["diameter_nm"] if size_weight > 0 else [])
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise NanosegError(f"particle table lacks columns {missing}",
                           hint="build it with nanoseg.particles.particle_table(..., frame=i)")
    if table.empty:
        out = table.copy()
        out["track_id"] = pd.Series(dtype=np.int64)
        return out
    work = table.reset_index(drop=True)
    link_cols = ["_ly", "_lx"]
    frame_data = pd.DataFrame({"_ly": work[cols[0]].to_numpy(float), "_lx": work[cols[1]].to_numpy(float),
                               "frame": work["frame"].to_numpy(int)})
    if size_weight > 0:
        frame_data["_ls"] = size_weight * work["diameter_nm"].to_numpy(float)
        link_cols.append("_ls")
    frame_data["_row"] = np.arange(len(work))
    trackpy.quiet()
    linked = trackpy.link(frame_data, search_range_nm, pos_columns=link_cols, t_column="frame", memory=int(memory),
                          adaptive_stop=0.2 * search_range_nm, adaptive_step=0.9)
    particle = np.empty(len(work), dtype=np.int64)
    particle[linked["_row"].to_numpy()] = linked["particle"].to_numpy()
    work["track_id"] = particle
    # renumber tracks in order of first appearance (frame, then position)
    work = work.sort_values(["frame", cols[0], cols[1]], kind="stable").reset_index(drop=True)
    order = pd.unique(work["track_id"])
    work["track_id"] = work["track_id"].map({old: new for new, old in enumerate(order)}).astype(np.int64)
    return work


def match_to_truth(detections: pd.DataFrame, truth: pd.DataFrame, *, max_distance_nm: float,
                   det_columns=("y_nm", "x_nm"), truth_columns=("y_nm", "x_nm")) -> pd.DataFrame:
    """One-to-one matching of detections to truth particles per frame (Hungarian on distance).

    Returns ``detections`` with a ``truth_id`` column (−1 when unmatched) and ``match_distance_nm``.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    det = detections.reset_index(drop=True).copy()
    det["truth_id"] = -1
    det["match_distance_nm"] = np.nan
    truth_by_frame = {f: g for f, g in truth.groupby("frame")}
    for frame, group in det.groupby("frame"):
        tg = truth_by_frame.get(frame)
        if tg is None or tg.empty:
            continue
        dist = cdist(group[list(det_columns)].to_numpy(float), tg[list(truth_columns)].to_numpy(float))
        big = max_distance_nm * 1e3 + 1.0
        cost = np.where(dist <= max_distance_nm, dist, big)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] <= max_distance_nm
        idx = group.index.to_numpy()[rows[ok]]
        det.loc[idx, "truth_id"] = tg["particle_id"].to_numpy()[cols[ok]]
        det.loc[idx, "match_distance_nm"] = dist[rows[ok], cols[ok]]
    return det


def tracking_metrics(tracks: pd.DataFrame, truth: pd.DataFrame, *, max_distance_nm: float,
                     only_inside: bool = True) -> dict[str, float]:
    """Score tracks against true trajectories (e.g. from :mod:`nanoseg.simulate.movie`).

    Detections are matched one-to-one to true particles in each frame (within ``max_distance_nm``, positions in
    image coordinates ``y_nm, x_nm``). Every true particle present in two consecutive frames is a *true link*:

    * ``correct_links``: both ends detected and given the same track id;
    * ``id_switches``: both ends detected but with different track ids;
    * ``missed_links``: one end not detected.

    Only particles fully inside the field count for links (``only_inside``); matching uses all of them.
    ``false_links`` counts consecutive detections of one track matched to two different true particles.
    ``link_recall = correct / true links``; detection recall/precision are per (frame, particle).

    Returns a dict of these numbers.
    """
    if "track_id" not in tracks.columns:
        raise NanosegError("tracks need a track_id column", hint="run link_particles first")
    det = match_to_truth(tracks, truth, max_distance_nm=max_distance_nm)
    matched = det[det["truth_id"] >= 0]
    track_of = dict(zip(zip(matched["frame"], matched["truth_id"], strict=True), matched["track_id"], strict=True))
    t = truth[truth["inside"]] if (only_inside and "inside" in truth.columns) else truth
    present = set(zip(t["frame"], t["particle_id"], strict=True))
    correct = switches = missed = 0
    for frame, pid in present:
        if (frame + 1, pid) not in present:
            continue
        a, b = track_of.get((frame, pid)), track_of.get((frame + 1, pid))
        if a is None or b is None:
            missed += 1
        elif a == b:
            correct += 1
        else:
            switches += 1
    n_true_links = correct + switches + missed
    false_links = 0
    det_sorted = det.sort_values(["track_id", "frame"])
    same = det_sorted["track_id"].to_numpy()[1:] == det_sorted["track_id"].to_numpy()[:-1]
    consecutive = np.diff(det_sorted["frame"].to_numpy()) == 1
    tid = det_sorted["truth_id"].to_numpy()
    pairs = same & consecutive
    false_links = int(np.sum(pairs & (tid[1:] != tid[:-1]) & (tid[1:] >= 0) & (tid[:-1] >= 0)))
    n_truth = len(truth)
    n_det = len(tracks)
    n_match = int((det["truth_id"] >= 0).sum())
    return {
        "true_links": float(n_true_links),
        "correct_links": float(correct),
        "id_switches": float(switches),
        "missed_links": float(missed),
        "false_links": float(false_links),
        "link_recall": correct / n_true_links if n_true_links else float("nan"),
        "detection_recall": n_match / n_truth if n_truth else float("nan"),
        "detection_precision": n_match / n_det if n_det else float("nan"),
        "position_error_nm": float(det["match_distance_nm"].mean()) if n_match else float("nan"),
    }
