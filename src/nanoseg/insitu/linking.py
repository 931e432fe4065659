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
    coords = [np.column_stack([y[a:b], x[a:b], w * d[a:b]])
              for a, b in zip(starts[:-1], starts[1:], strict=True)]
    edges = _lap_links(coords, starts, frame, y, x, d, w=w, r2=r2, max_gap_frames=int(memory) + 1, merges=merges,
                       splits=splits, margin_nm=contact_margin_nm)
    track = _segments(edges, len(work))
    # renumber tracks in order of first appearance (frame, then position)
    order = np.lexsort((x, y, frame))
    first_seen = pd.unique(track[order])
    renumber = np.empty(track.max() + 1, dtype=np.int64)
    renumber[first_seen] = np.arange(len(first_seen))
    track = renumber[track]
    work["track_id"] = track
    n_in = np.bincount(edges[:, 1], minlength=len(work))
    n_out = np.bincount(edges[:, 0], minlength=len(work))
    links = []
    for a, b in edges:
        kind = "merge" if n_in[b] >= 2 else ("split" if n_out[a] >= 2 else None)
        if kind is None:
            continue
        links.append((int(track[a]), int(track[b]), int(frame[b]), kind, y[a], x[a], d[a], y[b], x[b], d[b],
                      float(np.hypot(y[a] - y[b], x[a] - x[b]))))
    lineage = (pd.DataFrame(links, columns=LINEAGE_COLUMNS).sort_values(["frame", "child_track", "parent_track"])
               .reset_index(drop=True) if links else empty_lineage)
    work = work.iloc[order].reset_index(drop=True)
    return LinkResult(work, lineage)


def _lap_links(coords, starts, frame, y, x, d, *, w: float, r2: float, max_gap_frames: int, merges: bool,
               splits: bool, margin_nm: float) -> np.ndarray:
    """The three passes of :func:`link_lineage`; returns the links as (row before, row after) pairs.

    1. frame-to-frame links (laptrack); 2. gap closing (those links fixed); 3. merges and splits (all links
    fixed) into detections *inside* a segment only. Done in one LAP, a jump can be paid twice (as a merge into the
    new segment's first detection and as a split from the old one's last), ending the other parent instead.
    Passes 2 and 3 are sparse LAPs of the same (Jaqaman) form on k-d-tree candidates: laptrack's own segment
    step tests every pair of segments in Python (490 s for 4 frames of ~2400 detections).
    """
    from laptrack import LapTrack

    graph = LapTrack(metric="sqeuclidean", cutoff=r2, track_start_cost=r2, track_end_cost=r2,
                     gap_closing_cutoff=False).predict(coords)
    edges = np.array([(int(starts[u[0]]) + int(u[1]), int(starts[v[0]]) + int(v[1])) for u, v in graph.edges],
                     dtype=np.int64).reshape(-1, 2)
    n = len(frame)
    geo = _Geometry(frame, y, x, d, w=w, r2=r2, margin_nm=margin_nm)
    if max_gap_frames >= 1:
        has_in, has_out = _degrees(edges, n)
        ends, begins = np.flatnonzero(~has_out), np.flatnonzero(~has_in)
        i, j, cost = geo.gap_candidates(ends, begins, max_gap_frames)
        edges = np.vstack([edges, _assign(i, j, cost, r2)])
    for on, backwards in ((merges, False), (splits, True)):
        for _ in range(MERGE_ROUNDS if on else 0):  # each round gives a blob one more piece
            has_in, has_out = _degrees(edges, n)
            pieces = np.flatnonzero(~has_in if backwards else ~has_out)
            blobs = np.flatnonzero(has_out if backwards else has_in)
            i, j, cost = geo.contact_candidates(pieces, blobs, -1 if backwards else 1)
            pairs = _assign(i, j, cost, r2)
            if not len(pairs):
                break
            edges = np.vstack([edges, pairs[:, ::-1] if backwards else pairs])
    return edges


MERGE_ROUNDS = 3
"""Merge (split) LAP rounds: each Jaqaman LAP gives a blob one piece, so three particles joining in one frame
need two rounds after the continuing parent's link, and three without one."""


def _degrees(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(has an incoming link, has an outgoing link) per row."""
    return np.bincount(edges[:, 1], minlength=n) > 0, np.bincount(edges[:, 0], minlength=n) > 0


class _Geometry:
    """Candidate links and their costs (nm², see :func:`link_lineage`) between rows of the particle table."""

    def __init__(self, frame, y, x, d, *, w: float, r2: float, margin_nm: float):
        self.frame, self.y, self.x, self.r, self.s = frame, y, x, 0.5 * d, w * d
        self.r2, self.margin = r2, margin_nm
        self.rows_in = {int(f): np.flatnonzero(frame == f) for f in np.unique(frame)}

    def _pairs(self, a: np.ndarray, b: np.ndarray, radius_nm: np.ndarray):
        """All (i in a, j in b) with planar distance ≤ radius_nm[i] (k-d tree)."""
        from scipy.spatial import cKDTree

        if len(a) == 0 or len(b) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        tree = cKDTree(np.column_stack([self.y[b], self.x[b]]))
        hits = tree.query_ball_point(np.column_stack([self.y[a], self.x[a]]), radius_nm)
        i = np.repeat(a, [len(h) for h in hits])
        j = b[np.concatenate([np.asarray(h, dtype=np.int64) for h in hits])] if len(i) else np.zeros(0, np.int64)
        return i, j

    def contact(self, piece: np.ndarray, blob: np.ndarray) -> np.ndarray:
        """``(D / (r_piece + r_blob + margin))² · r2``; inf when the blob is < 0.9 × the piece's size."""
        dist = np.hypot(self.y[piece] - self.y[blob], self.x[piece] - self.x[blob])
        rho = dist / (self.r[piece] + self.r[blob] + self.margin)
        return np.where(self.r[blob] < 0.9 * self.r[piece], np.inf, rho**2 * self.r2)

    def sq(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Squared distance in (y, x, w · d)."""
        return (self.y[a] - self.y[b]) ** 2 + (self.x[a] - self.x[b]) ** 2 + (self.s[a] - self.s[b]) ** 2

    def gap_candidates(self, ends: np.ndarray, begins: np.ndarray, max_gap: int):
        """Segment ends → segment starts 1…max_gap frames later, below the cutoff (contact also across one)."""
        found = [], [], []
        r_max = float(self.r.max()) if len(self.r) else 0.0
        search = float(np.sqrt(self.r2))
        by_frame = {f: begins[self.frame[begins] == f] for f in np.unique(self.frame[begins])}
        for f in np.unique(self.frame[ends]):
            a = ends[self.frame[ends] == f]
            for g in range(1, max_gap + 1):
                b = by_frame.get(int(f) + g)
                if b is None:
                    continue
                radius = np.full(len(a), search)
                if g == 1:
                    radius = np.maximum(radius, self.r[a] + r_max + self.margin)
                i, j = self._pairs(a, b, radius)
                cost = self.sq(i, j)
                if g == 1:
                    cost = np.minimum(cost, np.minimum(self.contact(i, j), self.contact(j, i)))
                keep = cost < self.r2
                for out, v in zip(found, (i[keep], j[keep], cost[keep]), strict=True):
                    out.append(v)
        return tuple(np.concatenate(v) if v else np.zeros(0) for v in found)

    def contact_candidates(self, pieces: np.ndarray, blobs: np.ndarray, step: int):
        """Pieces → blobs ``step`` frames away (+1 merges, −1 splits) with a contact cost below the cutoff."""
        found = [], [], []
        r_max = float(self.r.max()) if len(self.r) else 0.0
        blob_set = np.zeros(len(self.frame), bool)
        blob_set[blobs] = True
        for f in np.unique(self.frame[pieces]):
            others = self.rows_in.get(int(f) + step)
            if others is None:
                continue
            b = others[blob_set[others]]
            a = pieces[self.frame[pieces] == f]
            i, j = self._pairs(a, b, self.r[a] + r_max + self.margin)
            cost = self.contact(i, j)
            keep = cost < self.r2
            for out, v in zip(found, (i[keep], j[keep], cost[keep]), strict=True):
                out.append(v)
        return tuple(np.concatenate(v) if v else np.zeros(0) for v in found)


def _assign(i: np.ndarray, j: np.ndarray, cost: np.ndarray, alternative: float) -> np.ndarray:
    """Min-cost links (i → j), each i and each j used at most once, leaving one unlinked costing ``alternative``.

    The square sparse matrix of Jaqaman et al. (2008): [[C, alt·I], [alt·I, Cᵀ-pattern·alt]], solved with
    scipy's sparse LAP; returns the chosen (i, j) pairs.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    if len(i) == 0:
        return np.zeros((0, 2), np.int64)
    ui, ri = np.unique(i, return_inverse=True)
    uj, rj = np.unique(j, return_inverse=True)
    m, k = len(ui), len(uj)
    eps = 1e-9  # stored zeros would be dropped as non-edges
    rows = np.concatenate([ri, np.arange(m), m + np.arange(k), m + rj])
    cols = np.concatenate([rj, k + np.arange(m), np.arange(k), k + ri])
    vals = np.concatenate([cost, np.full(m, alternative), np.full(k, alternative), np.full(len(i), alternative)])
    matrix = coo_matrix((vals + eps, (rows, cols)), shape=(m + k, m + k)).tocsr()
    r, c = min_weight_full_bipartite_matching(matrix)
    chosen = (r < m) & (c < k)
    return np.column_stack([ui[r[chosen]], uj[c[chosen]]]).astype(np.int64)


def _segments(edges: np.ndarray, n_rows: int) -> np.ndarray:
    """Track id per row: connected runs of one-in/one-out links (a merge or split starts new segments)."""
    n_in = np.bincount(edges[:, 1], minlength=n_rows)
    n_out = np.bincount(edges[:, 0], minlength=n_rows)
    parent = np.arange(n_rows)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for u, v in edges:
        if n_out[u] == 1 and n_in[v] == 1:
            a, b = root(u), root(v)
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
