"""Coalescence, splitting and disappearance events from linked tracks, and the lineage table.

Rules (projected volume of a particle ``V = π d³ / 6`` from its equivalent diameter, averaged over
``n_average`` frames next to the event to beat segmentation noise):

* **coalescence** — (a) two or more tracks end (within ``max_gap_frames``) where a new track starts, their
  centres within contact distance (``(d₁+d₂)/2 + contact_margin_nm``) of the new one, and
  ``|V_child − ΣV_parents| ≤ volume_tolerance · ΣV_parents``; or (b) one track ends next to a track that goes
  on and whose volume jumps by ≈ the lost particle's volume (same tolerance; the jump must be at least half
  the lost volume, the lost particle at least ``min_parent_fraction`` of the other, and it must not have been
  shrinking — a dissolving particle next to a neighbour is ripening). In case (b) the
  continuing track is cut at the event and its later part gets a new id, so every track is a segment between
  events and the lineage is a tree.
* **split** — the same tests run backwards in time (one track ends where two start, or a track's volume
  drops by the volume of a new neighbour).
* **vanish** (ripening) — a track that ends inside the field, not in any event above, whose last diameter is
  at most ``vanish_diameter_nm`` or that was shrinking (last diameter ≤ 0.9 × the median of its earlier ones;
  under ripening d³ falls at a finite rate, so a dissolving particle drops out within a few frames).
* Other ends are ``left_field`` (touching the frame border) or ``lost``; other starts ``entered_field``,
  ``appeared`` (inside the field, e.g. grown above the detection size) or ``initial`` (first frame).

Example
-------
>>> import pandas as pd
>>> rows = [(f, 0, 10.0, 10.0, 2.0) for f in range(3)] + [(f, 1, 10.0, 12.2, 2.0) for f in range(3)]
>>> rows += [(f, 2, 10.0, 11.1, 2.52) for f in range(3, 6)]
>>> tracks = pd.DataFrame(rows, columns=["frame", "track_id", "y_nm", "x_nm", "diameter_nm"])
>>> result = detect_events(tracks)
>>> result.events[["kind", "frame", "parents", "children"]].values.tolist()
[['coalescence', 3, (0, 1), (2,)]]
"""

from __future__ import annotations

from itertools import combinations
from typing import NamedTuple

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError
from nanoseg.insitu.linking import position_columns

__all__ = ["detect_events", "EventResult", "sphere_volume", "event_metrics"]


def sphere_volume(diameter_nm):
    """Volume (nm³) of a sphere of the given diameter: the 'projected volume' of a particle."""
    return np.pi / 6.0 * np.asarray(diameter_nm, dtype=float) ** 3


class EventResult(NamedTuple):
    tracks: pd.DataFrame
    events: pd.DataFrame
    lineage: pd.DataFrame


class _State:
    """Arrays of the tracks plus per-track row lists (kept sorted by frame) that can be relabelled."""

    def __init__(self, frame, tid, y, x, d, edge):
        self.frame, self.tid, self.y, self.x, self.d, self.edge = frame, tid, y, x, d, edge
        order = np.lexsort((frame, tid))
        self.rows: dict[int, np.ndarray] = {}
        if len(order):
            splits = np.flatnonzero(np.diff(tid[order])) + 1
            for chunk in np.split(order, splits):
                self.rows[int(tid[chunk[0]])] = chunk
        self.by_frame: dict[int, np.ndarray] = {}
        forder = np.argsort(frame, kind="stable")
        if len(forder):
            fs = np.flatnonzero(np.diff(frame[forder])) + 1
            for chunk in np.split(forder, fs):
                self.by_frame[int(frame[chunk[0]])] = chunk
        self.next_id = (int(tid.max()) + 1) if len(tid) else 0

    def first(self, t):
        return int(self.frame[self.rows[t][0]])

    def last(self, t):
        return int(self.frame[self.rows[t][-1]])

    def d_end(self, t, n):
        return float(np.median(self.d[self.rows[t][-n:]]))

    def d_start(self, t, n):
        return float(np.median(self.d[self.rows[t][:n]]))

    def cut(self, t, after_frame) -> int:
        """Give the rows of track t after ``after_frame`` a new id; return it."""
        rows = self.rows[t]
        later = rows[self.frame[rows] > after_frame]
        new = self.next_id
        self.next_id += 1
        self.tid[later] = new
        self.rows[t] = rows[self.frame[rows] <= after_frame]
        self.rows[new] = later
        return new


def _find_merges(st: _State, fmin: int, fmax: int, *, ends_done: set, starts_done: set, tol: float,
                 margin: float, gap: int, n_avg: int, min_parent_fraction: float) -> list[tuple]:
    """Merges forward in time; returns (frame_after, parents, child, V_before, V_after, distance)."""
    found = []
    # (a) continuation: a track ends next to one that goes on and jumps in volume
    for b in sorted(st.rows, key=lambda t: st.last(t)):
        if b in ends_done or b not in st.rows or len(st.rows[b]) == 0:
            continue
        e = st.last(b)
        rb = st.rows[b][-1]
        if e >= fmax or st.edge[rb]:
            continue
        db = st.d[st.rows[b]]
        if len(db) >= 2 and db[-1] <= 0.9 * np.median(db[:-1]):
            continue  # it was shrinking: dissolving by ripening, not merging
        vb = float(sphere_volume(st.d_end(b, n_avg)))
        best = None
        for ra in st.by_frame.get(e, []):
            a = int(st.tid[ra])
            if a == b or a in ends_done or st.last(a) <= e or st.edge[ra]:
                continue
            dist = float(np.hypot(st.y[ra] - st.y[rb], st.x[ra] - st.x[rb]))
            if dist > 0.5 * (st.d[ra] + st.d[rb]) + margin:
                continue
            rows_a = st.rows[a]
            fa = st.frame[rows_a]
            before = rows_a[(fa <= e)][-n_avg:]
            after = rows_a[(fa > e)][:n_avg]
            if len(after) == 0 or st.frame[after[0]] - e > gap:
                continue
            v_before = float(sphere_volume(np.median(st.d[before])))
            v_after = float(sphere_volume(np.median(st.d[after])))
            expected = v_before + vb
            err = abs(v_after - expected) / expected
            if err <= tol and v_after - v_before >= 0.5 * vb and vb >= min_parent_fraction * v_before:
                if best is None or err < best[0]:
                    best = (err, a, v_before, v_after, dist)
        if best is not None:
            _, a, v_before, v_after, dist = best
            child = st.cut(a, e)
            found.append((e + 1, (min(a, b), max(a, b)), child, v_before + vb, v_after, dist))
            ends_done.update({a, b})
            starts_done.add(child)
    # (b) two or more tracks end where a new one starts
    for c in sorted(st.rows, key=lambda t: st.first(t) if len(st.rows[t]) else fmax + 1):
        if c in starts_done or len(st.rows[c]) == 0:
            continue
        s = st.first(c)
        rc = st.rows[c][0]
        if s <= fmin or st.edge[rc]:
            continue
        vc = float(sphere_volume(st.d_start(c, n_avg)))
        cands = []
        for f in range(max(s - gap, fmin), s):
            for rp in st.by_frame.get(f, []):
                p = int(st.tid[rp])
                if p == c or p in ends_done or len(st.rows.get(p, [])) == 0 or st.last(p) != f or st.edge[rp]:
                    continue
                dist = float(np.hypot(st.y[rp] - st.y[rc], st.x[rp] - st.x[rc]))
                if dist <= 0.5 * (st.d[rp] + st.d[rc]) + margin:
                    cands.append((p, float(sphere_volume(st.d_end(p, n_avg))), dist))
        best = None
        for k in (2, 3):
            if len(cands) < k or len(cands) > 8:
                continue
            for combo in combinations(cands, k):
                v = sum(item[1] for item in combo)
                err = abs(vc - v) / v
                if err <= tol and (best is None or err < best[0]):
                    best = (err, combo, v)
        if best is not None:
            _, combo, v = best
            parents = tuple(sorted(item[0] for item in combo))
            found.append((s, parents, c, v, vc, max(item[2] for item in combo)))
            ends_done.update(parents)
            starts_done.add(c)
    return found


def detect_events(tracks: pd.DataFrame, *, volume_tolerance: float = 0.35, contact_margin_nm: float = 1.0,
                  max_gap_frames: int = 3, n_average: int = 3, min_parent_fraction: float = 0.1,
                  vanish_diameter_nm: float = 1.2, detect_splits: bool = True) -> EventResult:
    """Find coalescence / split / vanish events in linked tracks and build the lineage (rules in the module doc).

    Parameters
    ----------
    tracks : output of :func:`nanoseg.insitu.link_particles` (``frame, track_id, diameter_nm`` and positions in nm;
        ``touches_edge`` and ``time_s`` are used when present).
    volume_tolerance : allowed relative mismatch of the projected volume Σπd³/6 across an event.
    contact_margin_nm : extra distance beyond touching allowed between parent and child centres.
    max_gap_frames : largest frame gap between parents' end and the child's start.
    n_average : frames averaged (median) for the diameters on each side of an event.
    min_parent_fraction : the smaller parent of a continuation merge must hold at least this fraction of the
        volume of the larger one (otherwise the change is below the size noise).
    vanish_diameter_nm : a track ending at or below this diameter vanished (dissolved below detection).
    detect_splits : also look for splits (merges backwards in time).

    Returns
    -------
    EventResult(tracks, events, lineage): ``tracks`` with (possibly) new ``track_id`` after cutting at events;
    ``events`` with ``event_id, kind, frame`` (first frame after the event), ``time_s, parents, children``
    (tuples of track ids), ``volume_before_nm3, volume_after_nm3, volume_ratio, distance_nm``;
    ``lineage`` one row per track: ``track_id, first_frame, last_frame, n_frames, start, end, parents,
    children, d_first_nm, d_last_nm``.
    """
    need = ["frame", "track_id", "diameter_nm"]
    missing = [c for c in need if c not in tracks.columns]
    if missing:
        raise NanosegError(f"tracks lack columns {missing}", hint="run link_particles on a particle table first")
    if volume_tolerance <= 0 or max_gap_frames < 1 or n_average < 1:
        raise NanosegError("volume_tolerance must be > 0, max_gap_frames ≥ 1, n_average ≥ 1")
    cols = position_columns(tracks)
    tr = tracks.sort_values(["frame", "track_id"]).reset_index(drop=True)
    frame = tr["frame"].to_numpy(np.int64)
    edge = tr["touches_edge"].to_numpy(bool) if "touches_edge" in tr.columns else np.zeros(len(tr), bool)
    st = _State(frame.copy(), tr["track_id"].to_numpy(np.int64).copy(), tr[cols[0]].to_numpy(float),
                tr[cols[1]].to_numpy(float), tr["diameter_nm"].to_numpy(float), edge)
    empty_events = pd.DataFrame(columns=["event_id", "kind", "frame", "time_s", "parents", "children",
                                         "volume_before_nm3", "volume_after_nm3", "volume_ratio", "distance_nm"])
    if len(tr) == 0:
        return EventResult(tr.assign(track_id=pd.Series(dtype=np.int64)), empty_events, _lineage(st, {}, 0, 0, tr))
    fmin, fmax = int(frame.min()), int(frame.max())
    kw = dict(tol=volume_tolerance, margin=contact_margin_nm, gap=max_gap_frames, n_avg=n_average,
              min_parent_fraction=min_parent_fraction)
    ends_done: set = set()
    starts_done: set = set()
    records = []
    for f, parents, child, vb, va, dist in _find_merges(st, fmin, fmax, ends_done=ends_done,
                                                        starts_done=starts_done, **kw):
        records.append(("coalescence", f, parents, (child,), vb, va, dist))
    if detect_splits:
        # splits are merges with time reversed: frame' = fmax + fmin - frame
        st.frame = fmax + fmin - st.frame
        st.rows = {t: r[::-1] for t, r in st.rows.items()}
        st.by_frame = {fmax + fmin - f: r for f, r in st.by_frame.items()}
        for f, parents, child, vb, va, dist in _find_merges(st, fmin, fmax, ends_done=starts_done,
                                                            starts_done=ends_done, **kw):
            # in reversed time the split's child is the real parent; the cut gave the *earlier* part a new id
            records.append(("split", fmax + fmin - f + 1, (child,), parents, va, vb, dist))
        st.frame = fmax + fmin - st.frame
        st.rows = {t: r[::-1] for t, r in st.rows.items()}
        st.by_frame = {fmax + fmin - f: r for f, r in st.by_frame.items()}
    times = (tr.groupby("frame")["time_s"].first() if "time_s" in tr.columns else None)
    for t in list(st.rows):
        rows = st.rows[t]
        if len(rows) == 0 or t in ends_done:
            continue
        last = st.last(t)
        if last >= fmax:
            continue
        r = rows[-1]
        if st.edge[r]:
            continue
        d = st.d[rows]
        # shrinking: the last diameter is clearly (10 %) below the track's earlier typical size
        shrinking = len(rows) >= 2 and d[-1] <= 0.9 * np.median(d[:-1])
        if d[-1] <= vanish_diameter_nm or shrinking:
            records.append(("vanish", last + 1, (t,), (), float(sphere_volume(d[-1])), 0.0, np.nan))
            ends_done.add(t)
    records.sort(key=lambda rec: (rec[1], rec[0]))
    events = pd.DataFrame(
        [(i, kind, f, (float(times.get(f, np.nan)) if times is not None else np.nan), parents, children,
          vb, va, (va / vb if vb > 0 else np.nan), dist)
         for i, (kind, f, parents, children, vb, va, dist) in enumerate(records)],
        columns=empty_events.columns,
    ) if records else empty_events
    out = tr.copy()
    out["track_id"] = st.tid
    lineage = _lineage(st, records, fmin, fmax, out)
    return EventResult(out, events, lineage)


def _lineage(st: _State, records, fmin: int, fmax: int, tracks: pd.DataFrame) -> pd.DataFrame:
    start_kind: dict[int, str] = {}
    end_kind: dict[int, str] = {}
    parents_of: dict[int, tuple] = {}
    children_of: dict[int, tuple] = {}
    for kind, _f, parents, children, *_ in records:
        for c in children:
            start_kind[c] = kind
            parents_of[c] = parents
        for p in parents:
            end_kind[p] = "vanished" if kind == "vanish" else kind
            children_of[p] = children
    rows = []
    for t, r in sorted(st.rows.items()):
        if len(r) == 0:
            continue
        first, last = int(st.frame[r[0]]), int(st.frame[r[-1]])
        if t not in start_kind:
            start_kind_t = "initial" if first == fmin else ("entered_field" if st.edge[r[0]] else "appeared")
        else:
            start_kind_t = start_kind[t]
        if t not in end_kind:
            end_kind_t = "survived" if last == fmax else ("left_field" if st.edge[r[-1]] else "lost")
        else:
            end_kind_t = end_kind[t]
        rows.append((t, first, last, len(r), start_kind_t, end_kind_t, parents_of.get(t, ()),
                     children_of.get(t, ()), float(st.d[r[0]]), float(st.d[r[-1]])))
    return pd.DataFrame(rows, columns=["track_id", "first_frame", "last_frame", "n_frames", "start", "end",
                                       "parents", "children", "d_first_nm", "d_last_nm"])


def event_metrics(tracks: pd.DataFrame, events: pd.DataFrame, truth: pd.DataFrame, truth_events: pd.DataFrame,
                  *, max_distance_nm: float, kind: str = "coalescence", frame_tolerance: int = 1) -> dict[str, float]:
    """Score detected events of one ``kind`` against true events (e.g. from :mod:`nanoseg.simulate.movie`).

    Each track is identified with the true particle it matches most often (detections matched per frame within
    ``max_distance_nm``, image coordinates ``y_nm, x_nm``). A detected event is *correct* when a true event of the
    same kind has the same set of (identified) parents and lies within ``frame_tolerance`` frames.
    Returns ``true_events`` (those whose parents were all seen inside the field), ``detected``, ``correct``,
    ``recall``, ``precision``.
    """
    from nanoseg.insitu.linking import match_to_truth

    matched = match_to_truth(tracks, truth, max_distance_nm=max_distance_nm)
    matched = matched[matched["truth_id"] >= 0]
    identity = matched.groupby("track_id")["truth_id"].agg(lambda s: int(s.value_counts().index[0])).to_dict()
    det = events[events["kind"] == kind]
    true = truth_events[truth_events["kind"] == kind]
    seen = set(truth.loc[truth["inside"], "particle_id"]) if "inside" in truth.columns else set(truth["particle_id"])
    true = true[np.array([all(p in seen for p in parents) for parents in true["parents"]], dtype=bool)]
    true_keys = [(frozenset(p), int(f)) for p, f in zip(true["parents"], true["frame"], strict=True)]
    correct = 0
    used: set[int] = set()
    for parents, f in zip(det["parents"], det["frame"], strict=True):
        ids = frozenset(identity.get(p, -1) for p in parents)
        for j, (tp, tf) in enumerate(true_keys):
            if j not in used and tp == ids and abs(tf - int(f)) <= frame_tolerance:
                used.add(j)
                correct += 1
                break
    n_true, n_det = len(true_keys), len(det)
    return {"true_events": float(n_true), "detected": float(n_det), "correct": float(correct),
            "recall": correct / n_true if n_true else float("nan"),
            "precision": correct / n_det if n_det else float("nan")}
