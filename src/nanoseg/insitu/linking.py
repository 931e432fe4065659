"""Linking particles across frames (laptrack: LAP with gap closing, merges and splits) and scoring the links against a known truth.

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

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError

__all__ = ["link_particles", "link_lineage", "LinkResult", "LINEAGE_COLUMNS", "position_columns", "tracking_metrics",
           "match_to_truth"]


def position_columns(table: pd.DataFrame) -> list[str]:
    """Drift-corrected positions when present (``y_corr_nm, x_corr_nm``), else ``y_nm, x_nm``."""
    if {"y_corr_nm", "x_corr_nm"} <= set(table.columns):
        return ["y_corr_nm", "x_corr_nm"]
    return ["y_nm", "x_nm"]


def link_particles(tables, *, search_range_nm: float, memory: int = 2, size_weight: float = 0.5,
                   pos_columns: list[str] | None = None, merges: bool = True, splits: bool = True,
                   contact_margin_nm: float = 0.3) -> pd.DataFrame:
    """Link per-frame particle tables into tracks (:func:`link_lineage`); the lineage rides along.

    Same parameters as :func:`link_lineage`. Returns its ``tracks``, with its ``lineage`` table in
    ``tracks.attrs["lineage"]`` (what :func:`nanoseg.insitu.detect_events` reads when no ``links`` are given;
    pandas keeps ``attrs`` through copies and sorts, a file does not).
    """
    result = link_lineage(tables, search_range_nm=search_range_nm, memory=memory, size_weight=size_weight,
                          pos_columns=pos_columns, merges=merges, splits=splits, contact_margin_nm=contact_margin_nm)
    tracks = result.tracks
    tracks.attrs["lineage"] = result.lineage
    return tracks


class LinkResult(NamedTuple):
    """Tracks (one ``track_id`` per segment between events) and the lineage table (parent → child links)."""

    tracks: pd.DataFrame
    lineage: pd.DataFrame


LINEAGE_COLUMNS = ["parent_track", "child_track", "frame", "event", "parent_y_nm", "parent_x_nm",
                   "parent_diameter_nm", "child_y_nm", "child_x_nm", "child_diameter_nm", "distance_nm"]
"""Columns of the lineage table: one row per parent → child link of a merge or a split. ``frame`` is the child's
first frame; positions are the parent's last and the child's first (linking coordinates, nm)."""

_ROW_SCALE = 1e-10  # the row number rides as a 4th coordinate this small: invisible to squared distances


def link_lineage(tables, *, search_range_nm: float, memory: int = 2, size_weight: float = 0.5,
                 pos_columns: list[str] | None = None, merges: bool = True, splits: bool = True,
                 contact_margin_nm: float = 0.3) -> LinkResult:
    """Link particles over frames with laptrack (Jaqaman LAP: frame links, gap closing, merging, splitting).

    Costs (nm², compared with ``search_range_nm²``; the same cost in every step, so one cutoff means one thing):

    * **frame to frame and gap closing** — squared distance in ``(y, x, size_weight · diameter_nm)``, linked when
      below ``search_range_nm²`` (as with trackpy before), over at most ``memory`` missed frames;
    * **merge / split (contact)** — a piece (a parent's last detection before a merge, a child's first after a
      split) links to a blob in the next (previous) frame when their equivalent discs overlap: cost
      ``(D / (r_piece + r_blob + contact_margin_nm))² · search_range_nm²`` with centre distance ``D``, i.e.
      below the cutoff when the discs come within ``contact_margin_nm`` of touching; the blob must not be
      smaller than the piece (diameter ≥ 0.9 × the piece's, a merged particle holds both parents). The
      continuing parent of a merge (or child of a split) may take the same contact cost across one frame, since
      its centre and size jump when the other one joins.

    Disc overlap stands in for mask overlap (the streaming pipeline keeps tables, not label images).
    Merges/splits are proposals: :func:`nanoseg.insitu.detect_events` checks volume conservation and undoes
    the links that fail it.

    Parameters
    ----------
    tables : one DataFrame (or a list of per-frame DataFrames) with ``frame``, positions in nm
        (``y_corr_nm, x_corr_nm`` after drift correction, else ``y_nm, x_nm``) and ``diameter_nm``.
    search_range_nm : the largest distance (nm) a particle moves between frames, in the linking space.
    memory : frames a particle may go undetected and still keep its track.
    size_weight : weight of ``diameter_nm`` as a linking coordinate (0: positions only).
    pos_columns : override the position columns.
    merges, splits : allow merge / split links.
    contact_margin_nm : how far apart (edge to edge, nm) two discs may be and still count as in contact.

    Returns
    -------
    LinkResult(tracks, lineage): ``tracks`` the input rows (sorted by frame) with an integer ``track_id``
    (0, 1, 2, … in order of first appearance; a track is cut at every merge and split, so each id is a segment
    between events); ``lineage`` with :data:`LINEAGE_COLUMNS`, ``event`` ``"merge"`` or ``"split"``.
    """
    table = pd.concat(list(tables), ignore_index=True) if isinstance(tables, list | tuple) else tables.copy()
    if search_range_nm is None or not np.isfinite(search_range_nm) or search_range_nm <= 0:
        raise NanosegError(f"search_range_nm must be > 0, got {search_range_nm}",
                           hint="about the largest distance a particle moves between two frames, e.g. 1.0")
    if memory < 0:
        raise NanosegError(f"memory must be ≥ 0 frames, got {memory}")
    if size_weight < 0 or contact_margin_nm < 0:
        raise NanosegError("size_weight and contact_margin_nm must be ≥ 0")
    cols = pos_columns or position_columns(table)
    need = ["frame", *cols, "diameter_nm"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise NanosegError(f"particle table lacks columns {missing}",
                           hint="build it with nanoseg.particles.particle_table(..., frame=i)")
    empty_lineage = pd.DataFrame({c: pd.Series(dtype=object if c == "event" else float) for c in LINEAGE_COLUMNS})
    if table.empty:
        out = table.copy()
        out["track_id"] = pd.Series(dtype=np.int64)
        return LinkResult(out, empty_lineage)
    work = table.sort_values("frame", kind="stable").reset_index(drop=True)
    frame = work["frame"].to_numpy(np.int64)
    y, x = work[cols[0]].to_numpy(float), work[cols[1]].to_numpy(float)
    d = work["diameter_nm"].to_numpy(float)
    r2 = float(search_range_nm) ** 2
    w = max(float(size_weight), 1e-9)  # keeps the size coordinate (its diameter) even when it has no weight
    f0 = int(frame.min())
    starts = np.searchsorted(frame, np.arange(f0, int(frame.max()) + 2))
    coords = [np.column_stack([y[a:b], x[a:b], w * d[a:b], _ROW_SCALE * np.arange(a, b)])
              for a, b in zip(starts[:-1], starts[1:], strict=True)]
    graph = _lap_links(coords, starts, frame, y, x, d, r2=r2, max_gap_frames=int(memory) + 1, merges=merges,
                       splits=splits, margin_nm=contact_margin_nm)
    row_of = {node: int(starts[node[0]]) + int(node[1]) for node in graph.nodes}
    track = _segments(graph, row_of, len(work))
    # renumber tracks in order of first appearance (frame, then position)
    order = np.lexsort((x, y, frame))
    first_seen = pd.unique(track[order])
    renumber = np.empty(track.max() + 1, dtype=np.int64)
    renumber[first_seen] = np.arange(len(first_seen))
    track = renumber[track]
    work["track_id"] = track
    links = []
    for u, v in graph.edges:
        kind = "merge" if graph.in_degree(v) >= 2 else ("split" if graph.out_degree(u) >= 2 else None)
        if kind is None:
            continue
        a, b = row_of[u], row_of[v]
        links.append((int(track[a]), int(track[b]), int(frame[b]), kind, y[a], x[a], d[a], y[b], x[b], d[b],
                      float(np.hypot(y[a] - y[b], x[a] - x[b]))))
    lineage = (pd.DataFrame(links, columns=LINEAGE_COLUMNS).sort_values(["frame", "child_track", "parent_track"])
               .reset_index(drop=True) if links else empty_lineage)
    work = work.iloc[order].reset_index(drop=True)
    return LinkResult(work, lineage)


def _lap_links(coords, starts, frame, y, x, d, *, r2: float, max_gap_frames: int, merges: bool, splits: bool,
               margin_nm: float):
    """The three laptrack passes of :func:`link_lineage`; returns the directed graph of (frame index, index) nodes.

    1. frame-to-frame links; 2. gap closing (those links fixed); 3. merges and splits (all links fixed) into
    detections *inside* a segment only. Done in one pass, the LAP can pay for one jump twice (as a merge into the
    new segment's first detection and as a split from the old one's last), ending the other parent instead.
    """
    from laptrack import LapTrack

    def row(node) -> int:
        return int(starts[node[0]]) + int(node[1])

    alternatives = dict(track_start_cost=r2, track_end_cost=r2, segment_start_cost=r2, segment_end_cost=r2,
                        no_merging_cost=r2, no_splitting_cost=r2)
    link = dict(metric="sqeuclidean", cutoff=r2, **alternatives)
    graph = LapTrack(**link, gap_closing_cutoff=False).predict(coords)
    contact = _contact_cost(y, x, d, r2, margin_nm)
    if max_gap_frames >= 1:
        graph = LapTrack(**link, gap_closing_metric=_gap_cost(frame, contact), gap_closing_cutoff=r2,
                         gap_closing_max_frame_count=max_gap_frames).predict(coords, connected_edges=list(graph.edges))
    if not (merges or splits):
        return graph
    n = len(frame)
    has_in, has_out = np.zeros(n, bool), np.zeros(n, bool)
    for u, v in graph.edges:
        has_out[row(u)] = True
        has_in[row(v)] = True
    graph = LapTrack(**link, gap_closing_cutoff=False,
                     merging_metric=_contact_cost(y, x, d, r2, margin_nm, blob_ok=has_in),
                     merging_cutoff=r2 if merges else False,
                     splitting_metric=_contact_cost(y, x, d, r2, margin_nm, blob_ok=has_out),
                     splitting_cutoff=r2 if splits else False).predict(coords, connected_edges=list(graph.edges),
                                                                       split_merge_validation=False)
    return graph


def _contact_cost(y, x, d, r2: float, margin_nm: float, blob_ok=None):
    """cost(piece, blob) of :func:`link_lineage` on laptrack coordinates (the row rides in the 4th one).

    ``blob_ok``: rows that may be the blob (merges and splits attach inside a segment); None: any row.
    """
    ys, xs, rs = y.tolist(), x.tolist(), (0.5 * d).tolist()
    ok = None if blob_ok is None else blob_ok.tolist()
    hypot = math.hypot

    def cost(piece, blob) -> float:
        i, j = int(round(piece[3] / _ROW_SCALE)), int(round(blob[3] / _ROW_SCALE))
        if rs[j] < 0.9 * rs[i] or (ok is not None and not ok[j]):
            return math.inf
        rho = hypot(ys[i] - ys[j], xs[i] - xs[j]) / (rs[i] + rs[j] + margin_nm)
        return rho * rho * r2

    return cost


def _gap_cost(frame, contact):
    """Gap closing: squared linking distance; across one frame also the contact cost, either way round."""
    frames = frame.tolist()

    def cost(end, start) -> float:
        diff = end[:3] - start[:3]
        sq = float(diff @ diff)
        i, j = int(round(end[3] / _ROW_SCALE)), int(round(start[3] / _ROW_SCALE))
        if frames[j] - frames[i] == 1:
            return min(sq, contact(end, start), contact(start, end))
        return sq

    return cost


def _segments(graph, row_of: dict, n_rows: int) -> np.ndarray:
    """Track id per row: connected runs of one-in/one-out links (a merge or split starts new segments)."""
    parent = np.arange(n_rows)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for u, v in graph.edges:
        if graph.out_degree(u) == 1 and graph.in_degree(v) == 1:
            a, b = root(row_of[u]), root(row_of[v])
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(n_rows)], dtype=np.int64)


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
