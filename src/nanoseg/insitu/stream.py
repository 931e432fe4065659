"""Streaming analysis of a movie: segment frame by frame, write tables incrementally, resume, then analyse.

:func:`track_movie` never holds more than one frame (plus the drift tracker's few binned reference frames) in
memory. Every ``chunk_frames`` frames it writes, atomically, ``chunks/particles_<first>_<last>.parquet``,
``chunks/drift_<first>_<last>.parquet`` and then ``state.json`` + ``drift_state.npz`` (the commit point). A rerun
with the same settings resumes after the last committed frame; a rerun with other settings refuses (use another
``out_dir`` or ``restart=True``). At the end it links, finds events, fits kinetics and writes:

``particles.parquet`` (all detections), ``tracks.parquet`` + ``tracks.csv``, ``events.csv``, ``lineage.csv``
(per track), ``links.csv`` (the lineage table: parent → child, frame, merge/split, positions and sizes),
``drift.csv``, ``kinetics.csv`` (per-frame statistics), ``fits.csv``, ``bootstrap.csv``, ``psd.csv``,
``growth.csv``, ``verdict.csv``, ``summary.json`` and figures under ``figures/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nanoseg._util import atomic_path, progress_iter, require_same_settings
from nanoseg.errors import NanosegError
from nanoseg.io import Micrograph, Series
from nanoseg.particles import TABLE_COLUMNS, label_particles, particle_table

__all__ = ["track_movie", "analyse_tracks", "TrackResult", "as_series", "assumed_time_axis", "read_track_result",
           "Segmentation", "Linking", "Analysis", "RunControl"]


@dataclass
class TrackResult:
    """Everything :func:`track_movie` / :func:`analyse_tracks` produced (also written to ``out_dir``)."""

    out_dir: Path | None
    particles: pd.DataFrame
    drift: pd.DataFrame
    tracks: pd.DataFrame
    events: pd.DataFrame
    lineage: pd.DataFrame
    stats: pd.DataFrame
    fits: pd.DataFrame
    bootstrap: pd.DataFrame
    psd: pd.DataFrame
    growth: pd.DataFrame
    verdict: pd.DataFrame
    summary: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    links: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The lineage table: one row per parent → child link of a merge or split (``links.csv``)."""


def as_series(movie, *, pixel_size_nm: float | None = None, frame_interval_s: float | None = None) -> Series:
    """Accept a Series, a simulated CoarseningMovie, a 3-D array, a list of Micrographs/arrays, or path(s)."""
    if isinstance(movie, Series):
        return movie
    if hasattr(movie, "series") and callable(movie.series):
        return movie.series()
    if isinstance(movie, str | os.PathLike) or (isinstance(movie, list | tuple) and movie
                                               and isinstance(movie[0], str | os.PathLike)):
        from nanoseg.io import read_series

        return read_series(movie, frame_interval_s=frame_interval_s)
    if isinstance(movie, np.ndarray):
        if movie.ndim != 3:
            raise NanosegError(f"a movie array must be 3-D (frames, rows, cols), got shape {movie.shape}")
        return Series.from_array(movie, frame_interval_s=frame_interval_s, pixel_size_nm=pixel_size_nm)
    if isinstance(movie, list | tuple):
        if not movie:
            raise NanosegError("the movie has no frames")
        frames = [f if isinstance(f, Micrograph) else Micrograph(np.asarray(f), pixel_size_nm=pixel_size_nm)
                  for f in movie]
        times = None if frame_interval_s is None else np.arange(len(frames)) * frame_interval_s
        return Series.from_micrographs(frames, times)
    raise NanosegError(f"cannot read a movie from a {type(movie).__name__}",
                       hint="give a file, a list of frame files, a 3-D array or a nanoseg.io.Series")


ASSUMED_INTERVAL_S = 1.0
"""The frame interval :func:`as_series` (and :class:`nanoseg.io.Series`) falls back on when frames carry no times."""


def assumed_time_axis(movie, series: Series, frame_interval_s: float | None) -> str | None:
    """The sentence to state when ``series``'s times were not measured but assumed (1 s per frame), else None.

    Assumed: an array or a list of frames without ``frame_interval_s`` (and, for Micrographs, without a
    ``time_s`` in their metadata), or a series whose reader found no timestamps (``series.timing == "index"``).
    """
    if frame_interval_s is not None or len(series) < 2:
        return None
    untimed = getattr(series, "timing", None) == "index"
    if isinstance(movie, np.ndarray):
        untimed = True
    elif isinstance(movie, list | tuple) and movie and not isinstance(movie[0], str | os.PathLike):
        untimed = not all(isinstance(f, Micrograph) and "time_s" in f.metadata for f in movie)
    if not untimed:
        return None
    return (f"time axis assumed: the frames carry no timestamps and no frame interval was given; assumed "
            f"{ASSUMED_INTERVAL_S:g} s per frame, so every time and rate (k in nm^n/s) is per frame "
            "(give frame_interval_s=SECONDS)")


def _mask_source(masks, n: int) -> Callable[[int], np.ndarray]:
    if callable(masks):
        return masks
    if isinstance(masks, str | os.PathLike) or (isinstance(masks, list | tuple) and masks
                                               and isinstance(masks[0], str | os.PathLike)):
        paths = [masks] if isinstance(masks, str | os.PathLike) else list(masks)
        if len(paths) == 1 and Path(paths[0]).suffix.lower() in (".tif", ".tiff", ".npy"):
            return _stacked_masks(Path(paths[0]), n)
        from nanoseg.io.masks import read_mask

        if len(paths) != n:
            raise NanosegError(f"{len(paths)} mask files for {n} frames", hint="give one mask per frame, in order")
        return lambda i: read_mask(paths[i])
    arr = masks if isinstance(masks, np.ndarray) else None
    if arr is not None and arr.ndim == 3:
        if arr.shape[0] != n:
            raise NanosegError(f"{arr.shape[0]} masks for {n} frames")
        return lambda i: arr[i]
    if isinstance(masks, list | tuple):
        if len(masks) != n:
            raise NanosegError(f"{len(masks)} masks for {n} frames")
        return lambda i: np.asarray(masks[i])
    raise NanosegError(f"cannot use a {type(masks).__name__} as masks")


def _stacked_masks(path: Path, n: int) -> Callable[[int], np.ndarray]:
    if not path.exists():
        raise NanosegError("mask file not found", path=path)
    if path.suffix.lower() == ".npy":
        arr = np.load(path, mmap_mode="r")
        get = (lambda i: np.asarray(arr[i])) if arr.ndim == 3 else (lambda i: np.asarray(arr))
        count = arr.shape[0] if arr.ndim == 3 else 1
    else:
        import tifffile

        tif = tifffile.TiffFile(path)
        count = len(tif.pages)

        def get(i):
            return tif.pages[i].asarray()
    if count != n:
        raise NanosegError(f"the mask stack has {count} frames, the movie {n}", path=path)
    return get


def make_segmenter(predict_fn, model, masks, n):
    """Return f(i, micrograph) -> dict(prob=..., std=... or None)."""
    if masks is not None:
        get = _mask_source(masks, n)
        return (lambda i, frame: {"prob": np.asarray(get(i)) != 0, "std": None}), "masks"
    if predict_fn is None:
        from nanoseg.infer import predict, resolve_models

        models = resolve_models(model)

        def predict_fn(frame):
            return predict(frame, models, ood=False)
        source = "model"
    else:
        source = "predict_fn"

    def run(i, frame):
        out = predict_fn(frame)
        if hasattr(out, "probability"):
            var = getattr(out, "variance", None)
            return {"prob": np.asarray(out.probability, dtype=np.float32),
                    "std": None if var is None else np.sqrt(np.clip(np.asarray(var, dtype=np.float32), 0, None)),
                    "quality": (getattr(out, "estimated_dice", None), getattr(out, "low_confidence", None))}
        return {"prob": np.asarray(out), "std": None}
    return run, source


def _empty_table(frame: int, time_s: float) -> pd.DataFrame:
    t = pd.DataFrame({c: pd.Series(dtype=float) for c in TABLE_COLUMNS})
    t["label"] = t["label"].astype(np.int32)
    t["touches_edge"] = t["touches_edge"].astype(bool)
    t["frame"] = pd.Series(dtype=np.int64)
    t["time_s"] = pd.Series(dtype=float)
    return t


@dataclass(frozen=True)
class Segmentation:
    """How each frame's probability (or mask) becomes particles (:func:`nanoseg.particles.label_particles`)."""

    min_diameter_nm: float = 0.5
    threshold: float = 0.5
    split_touching: bool = True


@dataclass(frozen=True)
class Linking:
    """How detections become tracks (:func:`nanoseg.insitu.link_particles`), drift-corrected or not."""

    search_range_nm: float = 1.0
    memory: int = 2
    correct_drift: bool = True


@dataclass(frozen=True)
class Analysis:
    """What is computed and written after linking: bootstrap replicates, kinetics detection limit, figures."""

    n_boot: int = 200
    kinetics_min_diameter_nm: float = 0.0
    figures: bool = True
    gif: bool = False


@dataclass(frozen=True)
class RunControl:
    """How the run goes: chunked writes (the resume granularity), restart, an early stop, Dask, progress."""

    chunk_frames: int = 25
    restart: bool = False
    stop_after_frames: int | None = None
    client: Any = None
    progress: bool = False


_TRACK_CONFIGS = {"segmentation": Segmentation, "linking": Linking, "analysis": Analysis, "run": RunControl}


def _track_configs(given: dict, keywords: dict) -> tuple[Segmentation, Linking, Analysis, RunControl]:
    """The four configs of :func:`track_movie`, each keyword (a flat parameter name) overriding its field."""
    out = {}
    for name, cls in _TRACK_CONFIGS.items():
        value = given.get(name) or cls()
        if not isinstance(value, cls):
            raise NanosegError(f"{name}= must be a {cls.__name__}, got {type(value).__name__}")
        out[name] = value
    owner = {f.name: name for name, cls in _TRACK_CONFIGS.items() for f in fields(cls)}
    unknown = sorted(set(keywords) - set(owner))
    if unknown:
        raise NanosegError(f"track_movie got unknown parameters {unknown}",
                           hint="see help(nanoseg.insitu.track_movie) for the parameters")
    for name in _TRACK_CONFIGS:
        mine = {k: v for k, v in keywords.items() if owner[k] == name}
        if mine:
            out[name] = replace(out[name], **mine)
    return out["segmentation"], out["linking"], out["analysis"], out["run"]


def track_movie(movie, predict_fn: Callable | None = None, *, model=None, masks=None,
                out_dir: str | os.PathLike, pixel_size_nm: float | None = None, frame_interval_s: float | None = None,
                time_assumption: str | None = None, segmentation: Segmentation | None = None,
                linking: Linking | None = None, analysis: Analysis | None = None, run: RunControl | None = None,
                **keywords) -> TrackResult:
    """Segment, track and analyse a movie frame by frame, writing results incrementally (resumable).

    Steps: open the movie with its time axis (:func:`_open_series`); the run's settings and resume point
    (:func:`_run_settings`, :func:`_resume_point`); segment, label, measure and register each frame, written in
    chunks (:func:`_segment_frames`, :class:`_ChunkWriter`); then read the chunks back and analyse them
    (:func:`_analyse_run` → :func:`analyse_tracks`).

    Parameters
    ----------
    movie : a :class:`nanoseg.io.Series`, a simulated ``CoarseningMovie``, a 3-D array, a list of frames,
        or file path(s) (read lazily with :func:`nanoseg.io.read_series`).
    predict_fn : ``f(Micrograph) -> Prediction`` (or a probability/mask array). Default: ``nanoseg.infer.predict``
        with ``model``. A ``Prediction.variance`` gives per-particle ``diameter_std_nm``.
    model : model for :func:`nanoseg.infer.predict` (path, ensemble folder, ``"default"``/None).
    masks : segment from given masks instead (a 3-D array, a stacked .tif/.npy, one file per frame, or ``f(i)``).
    out_dir : output folder (created; resumed when it holds a run with the same settings).
    pixel_size_nm : override/supply the pixel size (required when the frames carry none).
    frame_interval_s : time between frames when the movie has no timestamps. Without it such a movie runs at
        1 s per frame with a ``UserWarning``, and the assumption goes into ``summary.json`` (``time_assumption``,
        first of ``warnings``, so every report shows it) and a ``time_assumption`` column of every CSV table.
    time_assumption : a sentence stating a guessed time axis that the caller chose (``--assume-dt``), written
        the same way (None: only the 1-s fallback above is stated).
    segmentation : :class:`Segmentation` — ``min_diameter_nm, threshold, split_touching`` of
        :func:`nanoseg.particles.label_particles`.
    linking : :class:`Linking` — ``search_range_nm, memory`` of :func:`nanoseg.insitu.link_particles`;
        ``correct_drift``: estimate the drift (streaming) and link in drift-corrected coordinates.
    analysis : :class:`Analysis` — ``n_boot`` bootstrap replicates of the kinetics (0 to skip);
        ``kinetics_min_diameter_nm`` the detection limit d_min of the kinetics (⟨r⟩ fits, bootstrap: smaller
        particles are tracked but left out of ⟨r⟩; 0: all; recorded in ``summary.json``); ``figures`` PNG
        figures; ``gif`` also ``figures/tracks.gif`` (the movie with particles circled in their track's colour).
    run : :class:`RunControl` — ``chunk_frames`` frames per incremental write (the resume granularity);
        ``restart`` discard a previous run in ``out_dir``; ``stop_after_frames`` process at most this many new
        frames, then return None (tests of resume, a long movie over several jobs); ``client`` a
        ``dask.distributed.Client``: the frames of each chunk are segmented and measured in parallel on its
        workers (drift and the incremental writes stay sequential here); ``progress`` show progress.
    **keywords : any field of the four configs by name (``min_diameter_nm=``, ``threshold=``,
        ``split_touching=``, ``search_range_nm=``, ``memory=``, ``correct_drift=``, ``n_boot=``,
        ``kinetics_min_diameter_nm=``, ``figures=``, ``gif=``, ``chunk_frames=``, ``restart=``,
        ``stop_after_frames=``, ``client=``, ``progress=``); a keyword overrides the same field of a config.

    Returns
    -------
    TrackResult (None when stopped early by ``stop_after_frames``).

    Example
    -------
    >>> import tempfile
    >>> from nanoseg.simulate.movie import simulate_coarsening_movie
    >>> m = simulate_coarsening_movie(n_frames=8, shape_px=(96, 96), pixel_size_nm=0.2, n_particles=6, seed=0)
    >>> masks = np.stack([m.mask(i) for i in range(len(m))])
    >>> r = track_movie(m, masks=masks, out_dir=tempfile.mkdtemp(), n_boot=0, figures=False)
    >>> sorted(p.name for p in r.out_dir.glob("*.csv"))[:3]
    ['bootstrap.csv', 'drift.csv', 'events.csv']
    """
    seg, link, ana, ctl = _track_configs(
        {"segmentation": segmentation, "linking": linking, "analysis": analysis, "run": run}, keywords)
    series, time_assumption = _open_series(movie, pixel_size_nm, frame_interval_s, time_assumption)
    n = len(series)
    if ctl.chunk_frames < 1:
        raise NanosegError(f"chunk_frames must be ≥ 1, got {ctl.chunk_frames}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "chunks").mkdir(exist_ok=True)
    settings = _run_settings(series, pixel_size_nm, seg, link)
    segment, settings["segmentation"] = make_segmenter(predict_fn, model, masks, n)
    notes = []
    if settings["segmentation"] == "model":  # which weights: a resume with another model would mix two segmentations
        from nanoseg.infer.fingerprint import model_fingerprint

        settings["model"] = model_fingerprint(model)
        notes = _model_coverage(model, series[0], pixel_size_nm)
    start, tracker = _resume_point(out, settings, ctl.restart, link.correct_drift)
    writer = _ChunkWriter(out, settings, tracker if link.correct_drift else None, start, pixel_size_nm)
    end = n if ctl.stop_after_frames is None else min(n, start + max(int(ctl.stop_after_frames), 0))
    _segment_frames(series, segment, start, end, seg, pixel_size_nm, writer, tracker, link.correct_drift, ctl)
    if end < n:
        return None
    writer.commit(n - 1)
    return _analyse_run(out, series, writer.px_used, seg, link, ana, ctl.progress, time_assumption, notes)


def _model_coverage(model, frame: Micrograph, pixel_size_nm) -> list[str]:
    """The model cards' warnings (warned about) for this movie's pixel size and dose outside their training ranges:
    ``predict`` runs with its per-frame OOD checks off inside :func:`track_movie`, so they are said once here."""
    import warnings

    from nanoseg.infer import resolve_models
    from nanoseg.infer.ood import check_distribution

    px = pixel_size_nm if pixel_size_nm is not None else frame.pixel_size_nm
    notes: list[str] = []
    for loaded in resolve_models(model):
        card = getattr(loaded, "card", None)
        if card is None:
            continue
        _, found = check_distribution(card, pixel_size_nm=px, dose_e_per_A2=frame.dose_e_per_A2)
        notes += [n for n in found if "outside the training range" in n and n not in notes]
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=3)
    return notes


def _open_series(movie, pixel_size_nm, frame_interval_s, time_assumption):
    """The movie as a Series and the sentence stating an assumed time axis (warned about), or None."""
    series = as_series(movie, pixel_size_nm=pixel_size_nm, frame_interval_s=frame_interval_s)
    time_assumption = time_assumption or assumed_time_axis(movie, series, frame_interval_s)
    if time_assumption:
        import warnings

        warnings.warn(time_assumption, UserWarning, stacklevel=3)
    if len(series) == 0:
        raise NanosegError("the movie has no frames", path=getattr(series, "source", None))
    return series, time_assumption


def _run_settings(series: Series, pixel_size_nm, seg: Segmentation, link: Linking) -> dict:
    """What a resumed run must share with the folder's run (frames, times, calibration, segmentation)."""
    import hashlib

    first = np.ascontiguousarray(series[0].data[::3, ::3])
    return {"n_frames": len(series), "first_frame_sha1": hashlib.sha1(first.tobytes()).hexdigest(),
            "pixel_size_nm": pixel_size_nm, "min_diameter_nm": seg.min_diameter_nm,
            "threshold": seg.threshold, "split_touching": seg.split_touching, "correct_drift": link.correct_drift,
            "source": str(getattr(series, "source", None)), "segmentation": None,
            "times_s_sha1": hashlib.sha1(np.asarray(series.times_s, dtype=float).tobytes()).hexdigest()}


def _resume_point(out: Path, settings: dict, restart: bool, correct_drift: bool):
    """(first frame to do, drift tracker): after the folder's last committed chunk (same settings only), or 0
    and a fresh tracker (the folder's chunks removed when ``restart``)."""
    from nanoseg.insitu.drift import DriftTracker

    state_path, drift_state_path = out / "state.json", out / "drift_state.npz"
    start, tracker = 0, DriftTracker()
    if state_path.exists() and not restart:
        state = json.loads(state_path.read_text())
        require_same_settings(state.get("settings"), settings, path=out,
                              hint="use another out_dir=FOLDER, or restart=True to overwrite it")
        start = int(state["next_frame"])
        if correct_drift and start > 0 and drift_state_path.exists():
            with np.load(drift_state_path) as z:
                tracker = DriftTracker.from_state({k: z[k] for k in z.files})
    elif restart:
        for p in (out / "chunks").glob("*.parquet"):
            p.unlink()
        state_path.unlink(missing_ok=True)
        drift_state_path.unlink(missing_ok=True)
    return start, tracker


class _ChunkWriter:
    """Collects per-frame tables and drift rows; ``commit(last)`` writes them as one chunk, then the resume point
    (drift tracker state, ``state.json``) — atomically, in that order."""

    DRIFT_COLUMNS = ["frame", "time_s", "dy_px", "dx_px", "peak_ratio", "estimated_dice", "low_confidence"]

    def __init__(self, out: Path, settings: dict, tracker, start: int, pixel_size_nm):
        self.out, self.settings, self.tracker = out, settings, tracker
        self.chunk_start, self.px_used = start, pixel_size_nm
        self.tables: list[pd.DataFrame] = []
        self.drift_rows: list[tuple] = []

    def add(self, table: pd.DataFrame, drift_row: tuple, px) -> None:
        self.tables.append(table)
        self.drift_rows.append(drift_row)
        self.px_used = px

    def commit(self, last: int) -> None:
        if last < self.chunk_start:
            return
        chunks = self.out / "chunks"
        name = f"{self.chunk_start:07d}_{last:07d}.parquet"
        part = pd.concat(self.tables, ignore_index=True) if self.tables else _empty_table(0, 0.0)
        with atomic_path(chunks / f"particles_{name}") as tmp:
            part.to_parquet(tmp, index=False)
        with atomic_path(chunks / f"drift_{name}") as tmp:
            pd.DataFrame(self.drift_rows, columns=self.DRIFT_COLUMNS).to_parquet(tmp, index=False)
        if self.tracker is not None:
            with atomic_path(self.out / "drift_state.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **self.tracker.state())
        with atomic_path(self.out / "state.json") as tmp:
            tmp.write_text(json.dumps({"settings": self.settings, "next_frame": last + 1,
                                       "pixel_size_nm": self.px_used}))
        self.tables, self.drift_rows, self.chunk_start = [], [], last + 1


def _segment_frames(series, segment, start: int, end: int, seg: Segmentation, pixel_size_nm, writer: _ChunkWriter,
                    tracker, correct_drift: bool, ctl: RunControl) -> None:
    """Frames ``start … end − 1``: segment + label + measure (on the Dask cluster when ``ctl.client``), register
    the drift here in order, and commit a chunk every ``ctl.chunk_frames`` frames."""
    kw = dict(series=series, segment=segment, pixel_size_nm=pixel_size_nm, min_diameter_nm=seg.min_diameter_nm,
              split_touching=seg.split_touching, threshold=seg.threshold, return_quality=True)
    bar = progress_iter(range(start, end), "segmenting frames", total=end - start, enabled=ctl.progress)
    for a in range(start, end, ctl.chunk_frames):
        b = min(a + ctl.chunk_frames, end)
        if ctl.client is not None:  # segment this chunk's frames in parallel on the Dask cluster
            futures = ctl.client.map(measure_frame, list(range(a, b)), pure=False, return_data=False, **kw)
            results = ctl.client.gather(futures)
        else:
            results = None
        for j, i in enumerate(range(a, b)):
            table, px, data, quality = results[j] if results is not None else measure_frame(i, **kw)
            if data is None:
                data = series[i].data  # only the drift needs the pixels locally
            dy, dx = tracker.update(data) if correct_drift else (0.0, 0.0)
            writer.add(table, (i, float(series.times_s[i]), dy, dx,
                               tracker.last_peak_ratio if correct_drift else np.nan, *quality), px)
            next(bar, None)
        writer.commit(b - 1)
    for _ in bar:  # finish the progress bar
        pass


def _analyse_run(out: Path, series, px_used, seg: Segmentation, link: Linking, ana: Analysis, progress: bool,
                 time_assumption, notes: list[str] | None = None) -> TrackResult:
    """Read the committed chunks back (drift in nm), write ``particles.parquet`` and run :func:`analyse_tracks`."""
    state = json.loads((out / "state.json").read_text())
    px_final = state.get("pixel_size_nm") or px_used
    particles, drift = _read_chunks(out / "chunks", len(series))
    drift["dy_nm"] = drift["dy_px"] * px_final
    drift["dx_nm"] = drift["dx_px"] * px_final
    with atomic_path(out / "particles.parquet") as tmp:
        particles.to_parquet(tmp, index=False)
    frame0 = series[0]
    field_area = float(frame0.shape[0] * frame0.shape[1] * px_final**2)
    return analyse_tracks(particles, drift, out_dir=out, pixel_size_nm=px_final, field_area_nm2=field_area,
                          search_range_nm=link.search_range_nm, memory=link.memory,
                          min_diameter_nm=seg.min_diameter_nm, n_boot=ana.n_boot, figures=ana.figures, gif=ana.gif,
                          series=series, correct_drift=link.correct_drift,
                          kinetics_min_diameter_nm=ana.kinetics_min_diameter_nm, progress=progress,
                          time_assumption=time_assumption, notes=notes)


class _Steps:
    """``with step("linking"):`` — a spinner while a step runs, then one line with its time (stderr); or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.console = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    @contextlib.contextmanager
    def __call__(self, name: str):
        if not self.enabled:
            yield
            return
        t0 = time.perf_counter()
        with self.console.status(f"{name} …"):
            yield
        self.console.print(f"{name}: {time.perf_counter() - t0:.1f} s")


def measure_frame(i: int, *, series, segment, pixel_size_nm, min_diameter_nm, split_touching, threshold,
                 return_data: bool = True, return_quality: bool = False):
    """Segment, label and measure one frame; returns (table, pixel size, frame pixels or None), plus
    ``(estimated_dice, low_confidence)`` of the frame's Prediction (NaN, None without one) with ``return_quality``."""
    frame = series[i]
    px = pixel_size_nm if pixel_size_nm is not None else frame.pixel_size_nm
    if px is None:
        raise NanosegError("the frames carry no pixel size", path=getattr(series, "source", None),
                           hint="give pixel_size_nm=NM")
    seg = segment(i, frame)
    prob = seg["prob"]
    if prob.shape != frame.shape:
        raise NanosegError(f"segmentation of frame {i} has shape {prob.shape}, the frame {frame.shape}")
    labels = label_particles(prob, pixel_size_nm=px, min_diameter_nm=min_diameter_nm,
                             split_touching=split_touching, threshold=threshold)
    extra = {}
    if seg["std"] is not None and prob.dtype != bool:
        extra = {"probability": prob, "probability_std": seg["std"]}
    table = particle_table(labels, pixel_size_nm=px, image=frame.data, frame=i, time_s=float(series.times_s[i]),
                           threshold=threshold, **extra)
    if return_quality:
        est, low = seg.get("quality", (None, None))
        return table, px, (frame.data if return_data else None), (np.nan if est is None else float(est), low)
    return table, px, (frame.data if return_data else None)


def _read_chunks(chunks: Path, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts, drifts = [], []
    for p in sorted(chunks.glob("particles_*.parquet")):
        parts.append(pd.read_parquet(p))
    for p in sorted(chunks.glob("drift_*.parquet")):
        drifts.append(pd.read_parquet(p))
    particles = pd.concat(parts, ignore_index=True) if parts else _empty_table(0, 0.0)
    drift = pd.concat(drifts, ignore_index=True).drop_duplicates("frame", keep="last").sort_values("frame")
    if len(drift) != n or not np.array_equal(drift["frame"].to_numpy(), np.arange(n)):
        raise NanosegError(f"the run's chunks cover {len(drift)} of {n} frames", path=chunks,
                           hint="rerun with restart=True")
    particles = particles.drop_duplicates(["frame", "label"], keep="last").sort_values(["frame", "label"])
    return particles.reset_index(drop=True), drift.reset_index(drop=True)


def _csv_ready(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in ("parents", "children"):
        if col in out.columns:
            out[col] = out[col].map(lambda v: ";".join(str(x) for x in v) if isinstance(v, tuple | list) else v)
    return out


def analyse_tracks(particles: pd.DataFrame, drift: pd.DataFrame | None = None, *, out_dir=None,
                   pixel_size_nm: float | None = None, field_area_nm2: float | None = None,
                   search_range_nm: float = 1.0, memory: int = 2, min_diameter_nm: float = 0.5,
                   n_boot: int = 200, figures: bool = True, gif: bool = False, series: Series | None = None,
                   correct_drift: bool = True, seed: int = 0, kinetics_min_diameter_nm: float = 0.0,
                   progress: bool = False, time_assumption: str | None = None,
                   notes: list[str] | None = None) -> TrackResult:
    """Link, find events, fit kinetics and judge the mechanism from per-frame particle tables (in memory).

    ``kinetics_min_diameter_nm``: particles smaller than this are left out of ⟨r⟩, its fits and the bootstrap.
    ``progress``: report each step (linking, events, kinetics, bootstrap, figures) with its time on stderr.
    ``time_assumption``: a sentence saying the time axis was assumed (see :func:`track_movie`): it becomes
    ``summary["time_assumption"]``, the first warning, and a column of every CSV table. ``notes``: more
    warnings for ``summary["warnings"]`` (e.g. the model does not cover the movie's pixel size).

    Writes the outputs listed in the module docstring when ``out_dir`` is given.
    """
    from nanoseg.insitu.drift import correct_positions
    from nanoseg.insitu.events import detect_events
    from nanoseg.insitu.kinetics import (
        bootstrap_kinetics,
        coarsening_verdict,
        fit_kinetics,
        growth_rates,
        size_distributions,
        size_statistics,
        volume_conservation,
    )
    from nanoseg.insitu.linking import link_particles

    if particles.empty:
        raise NanosegError("no particles were found in any frame",
                           hint="check the model/masks, the threshold and min_diameter_nm")
    step = _Steps(progress)
    table = particles
    if correct_drift and drift is not None:
        table = correct_positions(particles, drift, pixel_size_nm=pixel_size_nm)
    with step(f"linking {len(table)} detections (laptrack: links, gaps, merges, splits)"):
        tracks = link_particles(table, search_range_nm=search_range_nm, memory=memory)
    with step("events (volume checks of merges/splits, vanishing)"):
        result = detect_events(tracks, vanish_diameter_nm=max(2.5 * min_diameter_nm, 1.0))
    tracks = result.tracks
    stats = size_statistics(tracks, field_area_nm2=field_area_nm2, min_diameter_nm=kinetics_min_diameter_nm)
    summary: dict = {"n_frames": int(particles["frame"].nunique()), "n_detections": len(particles),
                     "n_tracks": int(tracks["track_id"].nunique()), "pixel_size_nm": pixel_size_nm,
                     "kinetics_min_diameter_nm": float(kinetics_min_diameter_nm),
                     "events": result.events["kind"].value_counts().to_dict() if len(result.events) else {},
                     "warnings": list(notes or [])}
    try:
        with step("kinetics fits"):
            fits = fit_kinetics(stats)
    except NanosegError as exc:
        fits = pd.DataFrame(columns=["model", "n", "n_std", "k", "k_std", "rate_units", "r0_nm", "r0_std", "rss",
                                     "aic", "rms_residual_nm", "n_points", "delta_aic"])
        summary["warnings"].append(f"kinetics not fitted: {exc}")
    with step(f"bootstrap of the kinetics ({n_boot} replicates)"):
        boot = (bootstrap_kinetics(tracks, n_boot=n_boot, seed=seed, min_diameter_nm=kinetics_min_diameter_nm)
                if n_boot > 0 and len(fits)
                else pd.DataFrame(columns=["replicate", "model", "n", "k", "r0_nm"]))
    with step("growth rates"):
        growth = growth_rates(tracks)
    try:
        with step(f"size distributions ({min(n_boot, 100)} bootstrap replicates)"):
            psd = size_distributions(tracks, n_boot=min(n_boot, 100), seed=seed)
    except NanosegError as exc:
        psd = pd.DataFrame()
        summary["warnings"].append(str(exc))
    verdict = coarsening_verdict(stats, result.events, result.lineage, growth, fits, bootstrap=boot, tracks=tracks)
    try:
        summary["volume"] = volume_conservation(stats)
    except NanosegError as exc:
        summary["warnings"].append(str(exc))
    if len(fits):
        summary["fits"] = fits.drop(columns=[]).to_dict(orient="records")
    if len(boot):
        summary["bootstrap"] = {m: {"n_mean": float(g["n"].mean()), "n_std": float(g["n"].std()),
                                    "k_mean": float(g["k"].mean()), "k_std": float(g["k"].std()),
                                    "k_ci95": [float(g["k"].quantile(0.025)), float(g["k"].quantile(0.975))]}
                                for m, g in boot.groupby("model")}
    if drift is not None and "peak_ratio" in drift.columns:
        from nanoseg.insitu.drift import DriftTracker

        weak = int((drift["peak_ratio"] < DriftTracker().min_peak_ratio).sum())
        summary["drift_frames_unreliable"] = weak
        if weak:
            summary["warnings"].append(f"drift could not be measured on {weak} frame(s) (no clear correlation peak); "
                                       "their drift was carried over from the previous frame")
    overall = verdict[verdict["signal"] == "overall"].iloc[0]
    summary["verdict"] = {"mechanism": overall["favours"], "support": float(overall["value"]),
                          "note": overall["rule"]}
    if time_assumption:
        summary["time_assumption"] = time_assumption
        summary["warnings"].insert(0, time_assumption)
    res = TrackResult(out_dir=Path(out_dir) if out_dir is not None else None, particles=particles,
                      drift=drift if drift is not None else pd.DataFrame(), tracks=tracks, events=result.events,
                      lineage=result.lineage, stats=stats, fits=fits, bootstrap=boot, psd=psd, growth=growth,
                      verdict=verdict, summary=summary, links=result.links)
    if out_dir is not None:
        with step("writing tables"):
            _write_outputs(res)
        if figures:
            from nanoseg.insitu.figures import write_figures

            with step("figures" + (" and the tracks GIF" if gif else "")):
                res.figures = write_figures(res, series=series, gif=gif)
            summary["figures"] = {k: str(v) for k, v in res.figures.items()}
        with atomic_path(Path(out_dir) / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
    return res


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _write_outputs(res: TrackResult) -> None:
    out = res.out_dir
    with atomic_path(out / "tracks.parquet") as tmp:
        res.tracks.to_parquet(tmp, index=False)
    for name, df in [("tracks", res.tracks), ("events", res.events), ("lineage", res.lineage),
                     ("drift", res.drift), ("kinetics", res.stats), ("fits", res.fits),
                     ("bootstrap", res.bootstrap), ("psd", res.psd), ("growth", res.growth),
                     ("verdict", res.verdict), ("links", res.links)]:
        table = _csv_ready(df)
        if res.summary.get("time_assumption") and len(table.columns):
            table["time_assumption"] = res.summary["time_assumption"]
        with atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)


def _parse_ids(value) -> tuple:
    if isinstance(value, tuple):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return ()
    return tuple(int(float(v)) for v in str(value).split(";") if v != "")


def read_track_result(out_dir: str | os.PathLike) -> TrackResult:
    """Load the outputs of :func:`track_movie` / ``nanoseg track`` from a folder (e.g. for ``nanoseg report``).

    ``events.parents/children`` and ``lineage.parents/children`` come back as tuples of track ids.
    """
    out = Path(out_dir)
    if not (out / "summary.json").exists():
        raise NanosegError("not a finished tracking folder (no summary.json)", path=out,
                           hint="run nanoseg track first, or let an interrupted run finish (rerun the command)")

    def csv(name):
        p = out / f"{name}.csv"
        if not p.exists() or p.stat().st_size == 0:
            return pd.DataFrame()
        try:
            return pd.read_csv(p)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    events, lineage = csv("events"), csv("lineage")
    for df in (events, lineage):
        for col in ("parents", "children"):
            if col in df.columns:
                df[col] = df[col].map(_parse_ids)
    tracks = pd.read_parquet(out / "tracks.parquet") if (out / "tracks.parquet").exists() else csv("tracks")
    particles = pd.read_parquet(out / "particles.parquet") if (out / "particles.parquet").exists() else tracks
    summary = json.loads((out / "summary.json").read_text())
    figures = {k: Path(v) for k, v in summary.get("figures", {}).items()}
    return TrackResult(out_dir=out, particles=particles, drift=csv("drift"), tracks=tracks, events=events,
                       lineage=lineage, stats=csv("kinetics"), fits=csv("fits"), bootstrap=csv("bootstrap"),
                       psd=csv("psd"), growth=csv("growth"), verdict=csv("verdict"), summary=summary, figures=figures,
                       links=csv("links"))
