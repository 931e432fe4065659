"""Coalescence, splitting and disappearance events from linked tracks, and the lineage table.

Merges and splits are first-class links of the tracking (:func:`nanoseg.insitu.link_lineage`: laptrack's LAP
with a disc-contact cost); this module checks each proposal against volume conservation (projected volume
``V = π d³ / 6`` from the equivalent diameter, median over ``n_average`` frames next to the event) and undoes
the links that fail, joining the nearest parent (or child) back into one track:

A merge or split with a detection cut by the frame border (``touches_edge``) is not judged (its sizes are cut)
and is undone too.

* **coalescence** — two or more parent tracks end into one child track, judged first with every parent the
  linker proposed and, if that fails, with only those not shrinking before their end (a dissolving particle next
  to a neighbour is ripening; one that touched the blob and whose volume is in it is a parent),
  ``|V_child − ΣV_parents| ≤ volume_tolerance ·
  ΣV_parents``, the child exceeds its largest parent by ≥ ``min_jump_fraction`` of the other parents'
  volume, and the child sits at the parents' centre of mass: its centre moved from the largest parent's by ≥
  ``min_centre_shift_fraction`` (0.5) of the way to the parents' volume-weighted centre (less
  ``position_tolerance_nm``). A particle that only grew by ripening while a small neighbour dissolved passes the
  volume tests but does not move (benchmark movie: 0.12 of the way, against 0.95–1.02 for every true merge).
  Every track is a segment between events, so the lineage is a tree.
* **split** — one parent track ends into two or more children, the same volume tests backwards in time.
* **vanish** (ripening) — a track that ends inside the field, not in any event above, whose last diameter is
  at most ``vanish_diameter_nm`` or that was shrinking (last diameter ≤ 0.9 × the median of its earlier ones;
  under ripening d³ falls at a finite rate, so a dissolving particle drops out within a few frames).
* Other ends are ``left_field`` (touching the frame border) or ``lost``; other starts ``entered_field``,
  ``appeared`` (inside the field, e.g. grown above the detection size) or ``initial`` (first frame).

Example
-------
>>> import pandas as pd
>>> from nanoseg.insitu.linking import link_particles
>>> rows = [(f, 10.0, 10.0, 2.0) for f in range(3)] + [(f, 10.0, 12.2, 2.0) for f in range(3)]
>>> rows += [(f, 10.0, 11.1, 2.52) for f in range(3, 6)]
>>> tracks = link_particles(pd.DataFrame(rows, columns=["frame", "y_nm", "x_nm", "diameter_nm"]),
...                         search_range_nm=1.0)
>>> result = detect_events(tracks)
>>> result.events[["kind", "frame", "parents", "children"]].values.tolist()
[['coalescence', 3, (0, 1), (2,)]]
>>> result.links[["parent_track", "child_track", "frame", "event"]].values.tolist()
[[0, 2, 3, 'merge'], [1, 2, 3, 'merge']]
"""

from __future__ import annotations

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
    """What :func:`detect_events` returns (see there)."""

    tracks: pd.DataFrame
    events: pd.DataFrame
    lineage: pd.DataFrame
    links: pd.DataFrame


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

    def yx(self, row) -> tuple[float, float]:
        return float(self.y[row]), float(self.x[row])

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


def detect_events(tracks: pd.DataFrame, *, links: pd.DataFrame | None = None, volume_tolerance: float = 0.35,
                  n_average: int = 3, min_jump_fraction: float = 0.5, vanish_diameter_nm: float = 1.2,
                  detect_splits: bool = True, min_centre_shift_fraction: float = 0.5,
                  position_tolerance_nm: float = 0.05) -> EventResult:
    """Coalescence / split events from the linking's merge and split links, vanish events, and the lineage.

    Parameters
    ----------
    tracks : output of :func:`nanoseg.insitu.link_particles` (``frame, track_id, diameter_nm`` and positions in nm;
        ``touches_edge`` and ``time_s`` are used when present).
    links : the lineage table of :func:`nanoseg.insitu.link_lineage` (parent → child merge/split links); None:
        ``tracks.attrs["lineage"]``, which :func:`~nanoseg.insitu.link_particles` sets.
    volume_tolerance : allowed relative mismatch of the projected volume Σπd³/6 across an event.
    n_average : frames averaged (median) for the diameters on each side of an event.
    min_jump_fraction : the merged particle must exceed its largest parent by at least this fraction of the
        other parents' volume (so a neighbour that dissolved next to a particle is not a merge); splits alike.
    vanish_diameter_nm : a track ending at or below this diameter vanished (dissolved below detection).
    detect_splits : also report splits (else their links are undone).
    min_centre_shift_fraction, position_tolerance_nm : a merged particle (a split's parent) must lie at least this
        fraction of the way from its largest parent (child) to the parents' (children's) volume-weighted centre,
        less the tolerance (nm) of the positions; 0 turns the test off.

    Returns
    -------
    EventResult(tracks, events, lineage, links): ``tracks`` with the ``track_id`` after undoing rejected links;
    ``events`` with ``event_id, kind, frame`` (first frame after the event), ``time_s, parents, children``
    (tuples of track ids), ``volume_before_nm3, volume_after_nm3, volume_ratio, distance_nm``;
    ``lineage`` one row per track: ``track_id, first_frame, last_frame, n_frames, start, end, parents,
    children, d_first_nm, d_last_nm``; ``links`` the accepted parent → child links (:data:`LINEAGE_COLUMNS`,
    ``event`` ``merge`` or ``split``).
    """
    need = ["frame", "track_id", "diameter_nm"]
    missing = [c for c in need if c not in tracks.columns]
    if missing:
        raise NanosegError(f"tracks lack columns {missing}", hint="run link_particles on a particle table first")
    if volume_tolerance <= 0 or n_average < 1 or min_jump_fraction < 0:
        raise NanosegError("volume_tolerance must be > 0, n_average ≥ 1, min_jump_fraction ≥ 0")
    if min_centre_shift_fraction < 0 or position_tolerance_nm < 0:
        raise NanosegError("min_centre_shift_fraction and position_tolerance_nm must be ≥ 0")
    if links is None:
        links = tracks.attrs.get("lineage")
    if links is None:
        raise NanosegError("these tracks carry no merge/split links (a lineage table)",
                           hint="link with nanoseg.insitu.link_particles / link_lineage, or pass links=")
    missing = [c for c in ("parent_track", "child_track", "frame", "event") if c not in links.columns]
    if missing:
        raise NanosegError(f"the links table lacks columns {missing}", hint="use link_lineage(...).lineage")
    cols = position_columns(tracks)
    tr = tracks.sort_values(["frame", "track_id"]).reset_index(drop=True)
    frame = tr["frame"].to_numpy(np.int64)
    edge = tr["touches_edge"].to_numpy(bool) if "touches_edge" in tr.columns else np.zeros(len(tr), bool)
    st = _State(frame.copy(), tr["track_id"].to_numpy(np.int64).copy(), tr[cols[0]].to_numpy(float),
                tr[cols[1]].to_numpy(float), tr["diameter_nm"].to_numpy(float), edge)
    empty_events = pd.DataFrame(columns=["event_id", "kind", "frame", "time_s", "parents", "children",
                                         "volume_before_nm3", "volume_after_nm3", "volume_ratio", "distance_nm"])
    if len(tr) == 0:
        return EventResult(tr.assign(track_id=pd.Series(dtype=np.int64)), empty_events, _lineage(st, {}, 0, 0, tr),
                           links.iloc[:0].copy())
    fmin, fmax = int(frame.min()), int(frame.max())
    alias: dict[int, int] = {}

    def real(t: int) -> int:
        while t in alias:
            t = alias[t]
        return t

    records, kept = [], []
    merge_links = links[links["event"] == "merge"]
    for (child, f), group in merge_links.groupby(["child_track", "frame"], sort=True):
        child = real(int(child))
        parents = [real(int(p)) for p in group["parent_track"]]
        dist = dict(zip(parents, group["distance_nm"] if "distance_nm" in group else np.zeros(len(group)),
                        strict=True))
        present = [p for p in parents if p in st.rows]
        v_blob = float(sphere_volume(st.d_start(child, n_average)))
        at_edge = st.edge[st.rows[child][0]] or any(st.edge[st.rows[p][-1]] for p in present)
        tests = (n_average, volume_tolerance, min_jump_fraction, min_centre_shift_fraction, position_tolerance_nm)
        # every proposed parent first (a shrinking particle that touched the blob is a parent when the volumes
        # add up with it); else only the parents that were not dissolving (a dissolving neighbour is ripening)
        growing = [p for p in present if not _was_shrinking(st.d[st.rows[p]])]
        ok = next((c for c in (present, growing) if not at_edge and _merge_holds(st, child, c, *tests)), None)
        if ok is not None:
            v_parts = [float(sphere_volume(st.d_end(p, n_average))) for p in ok]
            parents_t = tuple(sorted(ok))
            records.append(("coalescence", int(f), parents_t, (child,), sum(v_parts), v_blob,
                            max(dist[p] for p in ok)))
            kept += [row for row, p in zip(group.index, parents, strict=True) if p in ok]
        else:  # not a merge: the nearest parent goes on as the child
            _join(st, alias, min(parents, key=lambda p: dist[p]), child)
    split_links = links[links["event"] == "split"]
    for parent, group in split_links.groupby("parent_track", sort=True):
        parent = real(int(parent))
        children = [real(int(c)) for c in group["child_track"]]
        dist = dict(zip(children, group["distance_nm"] if "distance_nm" in group else np.zeros(len(group)),
                        strict=True))
        present = [c for c in children if c in st.rows]
        v_parts = [float(sphere_volume(st.d_start(c, n_average))) for c in present]
        v_blob = float(sphere_volume(st.d_end(parent, n_average)))
        at_edge = st.edge[st.rows[parent][-1]] or any(st.edge[st.rows[c][0]] for c in children if c in st.rows)
        if (detect_splits and len(v_parts) >= 2 and not at_edge
                and _volume_conserved(v_blob, v_parts, volume_tolerance, min_jump_fraction)
                and _at_centre_of_mass(st.yx(st.rows[parent][-1]), [st.yx(st.rows[c][0]) for c in present], v_parts,
                                       min_centre_shift_fraction, position_tolerance_nm)):
            records.append(("split", int(group["frame"].min()), (parent,), tuple(sorted(children)), v_blob,
                            sum(v_parts), max(dist.values())))
            kept += list(group.index)
        else:
            nearest = min(children, key=lambda c: dist[c])
            if st.first(nearest) > st.last(parent):
                _join(st, alias, parent, nearest)
    done = {p for rec in records for p in rec[2]}
    times = (tr.groupby("frame")["time_s"].first() if "time_s" in tr.columns else None)
    for t in list(st.rows):
        rows = st.rows[t]
        if len(rows) == 0 or t in done:
            continue
        last = st.last(t)
        if last >= fmax or st.edge[rows[-1]]:
            continue
        d = st.d[rows]
        if d[-1] <= vanish_diameter_nm or _was_shrinking(d):
            records.append(("vanish", last + 1, (t,), (), float(sphere_volume(d[-1])), 0.0, np.nan))
    records.sort(key=lambda rec: (rec[1], rec[0]))
    events = pd.DataFrame(
        [(i, kind, f, (float(times.get(f, np.nan)) if times is not None else np.nan), parents, children,
          vb, va, (va / vb if vb > 0 else np.nan), dist)
         for i, (kind, f, parents, children, vb, va, dist) in enumerate(records)],
        columns=empty_events.columns,
    ) if records else empty_events
    out = tr.copy()
    out["track_id"] = st.tid
    out.attrs.pop("lineage", None)
    accepted = links.loc[kept].copy()
    accepted["parent_track"] = accepted["parent_track"].map(lambda t: real(int(t))).astype(np.int64)
    accepted["child_track"] = accepted["child_track"].map(lambda t: real(int(t))).astype(np.int64)
    return EventResult(out, events, _lineage(st, records, fmin, fmax, out), accepted.reset_index(drop=True))


def _merge_holds(st: _State, child: int, parents: list[int], n_average: int, volume_tolerance: float,
                 min_jump_fraction: float, min_centre_shift_fraction: float, position_tolerance_nm: float) -> bool:
    """``parents`` (≥ 2) merging into ``child`` conserve volume and the child sits at their centre of mass."""
    vols = [float(sphere_volume(st.d_end(p, n_average))) for p in parents]
    v_blob = float(sphere_volume(st.d_start(child, n_average)))
    return (len(parents) >= 2
            and _volume_conserved(v_blob, vols, volume_tolerance, min_jump_fraction)
            and _at_centre_of_mass(st.yx(st.rows[child][0]), [st.yx(st.rows[p][-1]) for p in parents], vols,
                                   min_centre_shift_fraction, position_tolerance_nm))


def _was_shrinking(d: np.ndarray) -> bool:
    """The last diameter is clearly (10 %) below the track's earlier typical size (dissolving by ripening)."""
    return len(d) >= 2 and d[-1] <= 0.9 * np.median(d[:-1])


def _volume_conserved(v_blob: float, v_parts: list[float], tol: float, jump: float) -> bool:
    """|V_blob − ΣV_parts| ≤ tol·ΣV_parts, and the blob exceeds the largest part by ``jump`` × the rest."""
    total, largest = sum(v_parts), max(v_parts)
    return abs(v_blob - total) <= tol * total and v_blob - largest >= jump * (total - largest)


def _at_centre_of_mass(blob_yx, parts_yx, v_parts: list[float], fraction: float, tol_nm: float) -> bool:
    """The blob (merged particle) lies ≥ ``fraction`` of the way from its largest part towards the parts'
    volume-weighted centre, less ``tol_nm``, measured along that direction (nm)."""
    v = np.asarray(v_parts, dtype=float)
    parts = np.asarray(parts_yx, dtype=float)
    big = parts[int(np.argmax(v))]
    towards = (v[:, None] * parts).sum(axis=0) / v.sum() - big
    length = float(np.hypot(*towards))
    if fraction == 0 or length <= tol_nm:
        return True
    moved = float((np.asarray(blob_yx, dtype=float) - big) @ towards) / length
    return moved >= fraction * length - tol_nm


def _join(st: _State, alias: dict, keep: int, drop: int) -> None:
    """Give track ``drop`` (which starts after ``keep`` ends) the id ``keep``: an undone merge/split link."""
    if keep == drop or keep not in st.rows or drop not in st.rows:
        return
    rows = np.concatenate([st.rows[keep], st.rows.pop(drop)])
    st.tid[rows] = keep
    st.rows[keep] = rows[np.argsort(st.frame[rows], kind="stable")]
    alias[drop] = keep


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
    Returns ``true_events`` (those the images can show: every parent fully inside the field in its last frame
    before the event and the child fully inside in its first, as :func:`detect_events` judges), ``detected``, ``correct``,
    ``recall``, ``precision``. True merges chained within one frame through a particle never recorded in any
    frame (a + b → c, c + d → e) count as the one event the images show (a + b + d → e).
    """
    from nanoseg.insitu.linking import match_to_truth

    matched = match_to_truth(tracks, truth, max_distance_nm=max_distance_nm)
    matched = matched[matched["truth_id"] >= 0]
    identity = matched.groupby("track_id")["truth_id"].agg(lambda s: int(s.value_counts().index[0])).to_dict()
    det = events[events["kind"] == kind]
    true = truth_events[truth_events["kind"] == kind]
    recorded = set(truth["particle_id"])
    joined = _join_unseen_chains(true, recorded) if kind == "coalescence" else [
        (frozenset(p), int(f), None) for p, f in zip(true["parents"], true["frame"], strict=True)]
    true_keys = [(parents, f) for parents, f, child in joined if _judgeable(truth, parents, child, f, recorded)]
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


def _join_unseen_chains(true_events: pd.DataFrame, recorded: set) -> list[tuple[frozenset, int]]:
    """(parents, frame) of true merges, with a + b → c, c + d → e of one frame joined into a + b + d → e when c was
    never recorded in a frame (it existed only between two integration steps of the simulation)."""
    items = [[set(p), int(f), int(c)] for p, f, c in
             zip(true_events["parents"], true_events["frame"], true_events["child"], strict=True)]
    changed = True
    while changed:
        changed = False
        for a in items:
            if a[2] in recorded:
                continue
            b = next((b for b in items if b is not a and b[1] == a[1] and a[2] in b[0]), None)
            if b is not None:
                b[0] = (b[0] - {a[2]}) | a[0]
                items.remove(a)
                changed = True
                break
    return [(frozenset(p), f, c) for p, f, c in items]


def _judgeable(truth: pd.DataFrame, parents: frozenset, child, frame: int, recorded: set) -> bool:
    """Whether the images can show a true event: every parent recorded (without an ``inside`` column that is
    all), and with ``inside``, every parent fully inside the field in its last frame before ``frame`` and the child
    (when given and recorded) fully inside in its first frame from ``frame`` on: the rule by which
    :func:`detect_events` refuses to judge a merge whose detections are cut by the border."""
    if not all(p in recorded for p in parents):
        return False
    if "inside" not in truth.columns:
        return True
    rows = truth[truth["particle_id"].isin(set(parents) | ({child} if child is not None else set()))]
    before = rows[rows["particle_id"].isin(parents) & (rows["frame"] < frame)].sort_values("frame")
    last = before.groupby("particle_id").tail(1)
    if len(last) < len(parents) or not last["inside"].astype(bool).all():
        return False
    if child is None or child not in recorded:
        return True
    after = rows[(rows["particle_id"] == child) & (rows["frame"] >= frame)].sort_values("frame")
    return after.empty or bool(after["inside"].iloc[0])
