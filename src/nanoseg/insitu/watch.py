"""Live acquisition: segment frames as the camera software writes them into a folder (``nanoseg watch``).

:func:`watch_folder` polls a folder every ``poll_s`` seconds. A file (any format :func:`nanoseg.io.read`
knows, except the ``.emi`` half of a TIA pair; names starting with ``.`` or ``~`` are ignored) is taken
once it is **complete**: its size and modification time did not change between two polls and
:func:`nanoseg.io.read` opens it. A file that stays unreadable (a truncated export) is tried again at the next
``retries`` polls, then skipped and reported; it is tried again only if it changes. Files are taken in
arrival order (modification time, then name) and each is segmented, measured and committed before the next:

``watch/particles.csv``
    every particle of every frame (:func:`nanoseg.particles.particle_table` + ``frame, time_s, file``),
    appended per frame; ``watch/state.json`` records its length after each frame (the commit point), and a
    restart cuts off anything written after it, so a crash mid-append leaves no half frame.
``watch/frames.csv``
    one row per frame: ``frame, file, time_s, n_particles, mean_diameter_nm, seconds`` (read + segment + write)
    and the drift ``dy_px, dx_px, peak_ratio``; rewritten atomically per frame.
``watch/state.json``, ``watch/drift_state.npz``
    the settings, the frames done and the files skipped (with the reason): a rerun with the same settings
    resumes (files already done are not redone), a rerun with other settings is refused
    (:func:`nanoseg._util.require_same_settings`).
``report.html``
    rewritten every ``report_every_s`` seconds and at the end: frames, processing rate, skipped files, the
    size statistics of the latest frame and the particle count and mean size over time.

When it stops (``stop`` event set, SIGINT/SIGTERM — the current frame is finished first —, ``max_frames`` new
frames done, or ``idle_timeout_s`` without a new frame) it runs :func:`nanoseg.insitu.analyse_tracks` on all
frames so far and writes the ``nanoseg track`` outputs (tracks, events, ``kinetics.csv``, ``fits.csv``,
``verdict.csv``, ``summary.json``, figures) into ``out_dir``; a restart goes on and rewrites them at its end.

**Time axis** (the same policy as ``nanoseg track``): the files' acquisition timestamps (``timestamp_s``,
e.g. DigitalMicrograph and Velox exports), or ``frame_interval_s`` (``--dt``: frame *i* is at *i*·dt),
or ``assume_dt_s`` (``--assume-dt``, a guessed interval stated in every output). Without either, a first frame
with no timestamp is refused: k would come out per frame, not per second.

Example
-------
>>> # result = watch_folder("camera/", "live", frame_interval_s=0.5, idle_timeout_s=60)
>>> # result.n_frames, result.frames_per_s, result.track.fits
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg._util import atomic_path, require_same_settings
from nanoseg.errors import NanosegError
from nanoseg.io import FORMATS, Series, read
from nanoseg.particles import TABLE_COLUMNS

__all__ = ["WatchResult", "watch_folder", "write_watch_report", "WATCH_SUFFIXES", "PARTICLE_COLUMNS"]

#: file types picked up (the TIA ``.emi`` is read through its ``.ser``)
WATCH_SUFFIXES = frozenset(s for s in FORMATS if s != ".emi")
#: columns of ``watch/particles.csv``, in order
PARTICLE_COLUMNS = [*TABLE_COLUMNS, "frame", "time_s", "file"]
_FRAME_COLUMNS = ["frame", "file", "time_s", "timestamp_s", "n_particles", "mean_diameter_nm", "seconds", "dy_px",
                  "dx_px", "peak_ratio"]


@dataclass
class WatchResult:
    """What one :func:`watch_folder` call did (the folder holds everything it wrote)."""

    out_dir: Path
    n_frames: int  # frames in the run, this call and earlier ones
    n_new: int  # frames done by this call
    seconds_per_frame: float  # median read + segment + write time of this call's frames (NaN without any)
    skipped: list[dict] = field(default_factory=list)  # {"file", "reason"} of files given up on
    stopped_by: str = ""  # "signal", "stop", "max_frames", "idle_timeout"
    track: object | None = None  # the TrackResult of the kinetics, None if there was nothing to analyse
    warnings: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        """Processing rate of this call: 1 / the median seconds of work per frame (the most it keeps up with; the
        median, so that the first frame's engine build does not count)."""
        return 1.0 / self.seconds_per_frame if self.seconds_per_frame > 0 else float("nan")


def _candidates(folder: Path) -> dict[str, tuple[int, int]]:
    """Files that could be frames: name → (size, mtime_ns)."""
    found = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        raise NanosegError("the watched folder does not exist", path=folder,
                           hint="create it (the camera software writes into it) or fix the path") from None
    for entry in entries:
        name = entry.name
        if name.startswith((".", "~")) or Path(name).suffix.lower() not in WATCH_SUFFIXES:
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:  # removed between listing and stat
            continue
        if entry.is_file():
            found[name] = (st.st_size, st.st_mtime_ns)
    return found


class _StopFlag:
    """SIGINT/SIGTERM set ``event`` (the current frame is finished); a second signal stops at once."""

    def __init__(self, event: threading.Event):
        self.event, self.old, self.by_signal = event, {}, False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.event.is_set() and self.by_signal:
            raise KeyboardInterrupt
        self.by_signal = True
        self.event.set()

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False


class _Run:
    """The on-disk state of a watch run in ``out_dir/watch``."""

    def __init__(self, out: Path, settings: dict, restart: bool):
        self.dir = out / "watch"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path, self.csv = self.dir / "state.json", self.dir / "particles.csv"
        self.drift_path = self.dir / "drift_state.npz"
        if restart:
            for p in (self.state_path, self.csv, self.drift_path, self.dir / "frames.csv"):
                p.unlink(missing_ok=True)
        self.state = {"settings": settings, "frames": [], "skipped": [], "particles_csv_bytes": 0,
                      "first_timestamp_s": None, "pixel_size_nm": None, "shape": None}
        if self.state_path.exists():
            try:
                stored = json.loads(self.state_path.read_text())
            except json.JSONDecodeError:
                raise NanosegError("unreadable watch state", path=self.state_path,
                                   hint="rerun with restart=True to start this folder again") from None
            require_same_settings(stored.get("settings"), settings, path=out,
                                  hint="rerun with the same options, use another out_dir=FOLDER, or restart=True")
            self.state = stored
        # cut off a half-written append (a crash after the append, before the state was committed)
        size = int(self.state["particles_csv_bytes"])
        if self.csv.exists() and self.csv.stat().st_size != size:
            with open(self.csv, "r+b") as fh:
                fh.truncate(size)

    @classmethod
    def read(cls, out: Path) -> _Run:
        """The run in ``out`` as it is on disk (for a report; nothing is checked, cut or written)."""
        run = cls.__new__(cls)
        run.dir = out / "watch"
        run.state_path, run.csv, run.drift_path = run.dir / "state.json", run.dir / "particles.csv", run.dir / "drift_state.npz"
        try:
            run.state = json.loads(run.state_path.read_text())
        except (OSError, json.JSONDecodeError):
            raise NanosegError("unreadable watch state", path=run.state_path,
                               hint="rerun with restart=True to start this folder again") from None
        return run

    @property
    def done(self) -> set[str]:
        return {f["file"] for f in self.state["frames"]}

    def skipped_size(self, name: str) -> int | None:
        return next((s["size"] for s in self.state["skipped"] if s["file"] == name), None)

    def skip(self, name: str, size: int, reason: str) -> None:
        self.state["skipped"] = [s for s in self.state["skipped"] if s["file"] != name]
        self.state["skipped"].append({"file": name, "size": size, "reason": reason})
        self._write_state()

    def commit(self, table: pd.DataFrame, frame_row: dict, tracker) -> None:
        """Append one frame's particles, then record it (the state file is the commit point)."""
        header = int(self.state["particles_csv_bytes"]) == 0
        text = table.reindex(columns=PARTICLE_COLUMNS).to_csv(index=False, header=header)
        with open(self.csv, "ab") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        self.state["particles_csv_bytes"] = self.csv.stat().st_size
        self.state["frames"].append(frame_row)
        self.state["skipped"] = [s for s in self.state["skipped"] if s["file"] != frame_row["file"]]
        if tracker is not None:
            with atomic_path(self.drift_path) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **tracker.state())
        self._write_state()
        with atomic_path(self.dir / "frames.csv") as tmp:
            self.frames().to_csv(tmp, index=False)

    def _write_state(self) -> None:
        with atomic_path(self.state_path) as tmp:
            tmp.write_text(json.dumps(self.state, indent=1))

    def frames(self) -> pd.DataFrame:
        return pd.DataFrame(self.state["frames"], columns=_FRAME_COLUMNS)

    def particles(self) -> pd.DataFrame:
        if not self.csv.exists() or self.csv.stat().st_size == 0:
            return pd.DataFrame(columns=PARTICLE_COLUMNS)
        table = pd.read_csv(self.csv)
        table["touches_edge"] = table["touches_edge"].astype(bool)
        return table


class _TimeAxisError(NanosegError):
    """The run's time axis cannot be set up (refused for the whole run, not skipped with one file)."""


def _frame_time(micrograph, index: int, run: _Run, dt: float | None, assume_dt: float | None, path: Path):
    """(time_s, timestamp_s) of frame ``index`` under the time policy of the module docstring."""
    stamp = micrograph.metadata.get("timestamp_s")
    step = dt if dt is not None else assume_dt
    if step is not None:
        if assume_dt is not None and stamp is not None and index == 0:
            raise _TimeAxisError("the frames carry timestamps; assume_dt_s= would override them", path=path,
                               hint="drop assume_dt_s=, or use frame_interval_s=SECONDS to replace them")
        return index * float(step), stamp
    if stamp is None:
        if index == 0:
            raise _TimeAxisError("the frames carry no timestamps, so rates in nm^n/s cannot be computed", path=path,
                               hint="give frame_interval_s=SECONDS (the time between frames), or assume_dt_s=SECONDS to run "
                                    "with a guessed interval written into every output")
        raise NanosegError("this frame carries no timestamp, the earlier ones did",
                           hint="re-export it with its metadata, or run with frame_interval_s=SECONDS")
    if run.state["first_timestamp_s"] is None:
        run.state["first_timestamp_s"] = float(stamp)
    return float(stamp) - float(run.state["first_timestamp_s"]), stamp


def watch_folder(folder: str | os.PathLike, out_dir: str | os.PathLike, *, model="default",
                 predict_fn: Callable | None = None, pixel_size_nm: float | None = None, signal_choice=None,
                 frame_interval_s: float | None = None, assume_dt_s: float | None = None,
                 min_diameter_nm: float = 0.5, threshold: float = 0.5, split_touching: bool = True,
                 correct_drift: bool = True, search_range_nm: float = 1.0, memory: int = 2, n_boot: int = 200,
                 figures: bool = True, poll_s: float = 1.0, retries: int = 3, max_frames: int | None = None,
                 idle_timeout_s: float | None = None, report_every_s: float = 30.0, restart: bool = False,
                 stop: threading.Event | None = None, on_frame: Callable[[dict], None] | None = None) -> WatchResult:
    """Segment the frames written into ``folder`` as they arrive; on stop, write the kinetics (module docstring).

    Parameters
    ----------
    folder : the folder the camera software writes into (not searched recursively).
    out_dir : results (``watch/`` tables and state, ``report.html``, the ``nanoseg track`` outputs).
    model, predict_fn : the segmentation, as for :func:`nanoseg.insitu.track_movie` (``predict_fn``:
        ``f(Micrograph) -> Prediction`` or a probability/mask array).
    pixel_size_nm : override/supply the pixel size (required when the files carry none).
    signal_choice : for files holding several images (Velox HAADF + DF), which one: index or title
        (``signal=`` of :func:`nanoseg.io.read`).
    frame_interval_s, assume_dt_s : the time axis when the files carry no timestamps (give at most one).
    min_diameter_nm, threshold, split_touching : as for :func:`nanoseg.particles.label_particles`.
    correct_drift, search_range_nm, memory, n_boot, figures : as for :func:`nanoseg.insitu.track_movie`.
    poll_s : seconds between looks at the folder (a file must be unchanged over one interval).
    retries : polls an unreadable, unchanging file is tried again before it is skipped and reported.
    max_frames : stop after this many new frames; idle_timeout_s : stop after this long without a new frame.
    report_every_s : seconds between rewrites of ``report.html`` (0: after every frame).
    restart : discard an earlier run in ``out_dir``.
    stop : an event that stops the watch when set (SIGINT/SIGTERM set it too, from the main thread).
    on_frame : called with each committed frame's row of ``watch/frames.csv`` (a dict).
    """
    from nanoseg.insitu.drift import DriftTracker
    from nanoseg.insitu.stream import make_segmenter, measure_frame

    folder, out = Path(folder), Path(out_dir)
    if frame_interval_s is not None and assume_dt_s is not None:
        raise NanosegError("give frame_interval_s= or assume_dt_s=, not both",
                           hint="frame_interval_s= when the interval is known, assume_dt_s= when it is a guess")
    for name, value in (("frame_interval_s", frame_interval_s), ("assume_dt_s", assume_dt_s), ("poll_s", poll_s)):
        if value is not None and not value > 0:
            raise NanosegError(f"{name}={value} must be > 0 s")
    if not folder.is_dir():
        raise NanosegError("the watched folder does not exist or is not a folder", path=folder,
                           hint="give the folder the camera software saves frames into")
    if out.resolve() == folder.resolve():
        raise NanosegError("the output folder must not be the watched folder", path=out, hint="choose another out_dir=FOLDER")
    settings = {"folder": str(folder.resolve()), "pixel_size_nm": pixel_size_nm, "signal": signal_choice, "frame_interval_s": frame_interval_s,
                "assume_dt_s": assume_dt_s, "min_diameter_nm": min_diameter_nm, "threshold": threshold,
                "split_touching": split_touching, "correct_drift": correct_drift,
                "segmentation": "predict_fn" if predict_fn is not None else _model_fingerprint(model)}
    run = _Run(out, settings, restart)
    segment, _ = make_segmenter(predict_fn, model, None, 1)
    tracker = None
    if correct_drift:
        tracker = DriftTracker()
        if run.state["frames"] and run.drift_path.exists():
            with np.load(run.drift_path) as z:
                tracker = DriftTracker.from_state({k: z[k] for k in z.files})
    stop = stop or threading.Event()
    seen: dict[str, tuple[int, int]] = {}
    failures: dict[str, int] = {}
    n_new, busy_s, stopped_by, frame_seconds = 0, 0.0, "", []
    last_frame_at = last_report_at = time.monotonic()
    with _StopFlag(stop) as flag:
        while not stopped_by:
            now = _candidates(folder)
            done = run.done
            ready = sorted((stat[1], name) for name, stat in now.items()
                           if name not in done and seen.get(name) == stat and stat[0] > 0
                           and run.skipped_size(name) != stat[0])
            seen = now
            for _, name in ready:
                if stop.is_set():
                    break
                path = folder / name
                t0 = time.perf_counter()
                try:
                    micrograph = read(path, pixel_size_nm=pixel_size_nm, signal=signal_choice)
                except NanosegError as exc:
                    failures[name] = failures.get(name, 0) + 1
                    if failures[name] > retries:
                        run.skip(name, now[name][0], exc.message + (f" ({exc.hint})" if exc.hint else ""))
                        failures.pop(name)
                    continue
                failures.pop(name, None)
                index = len(run.state["frames"])
                try:
                    row = _process(micrograph, index, name, path, run, tracker, segment, measure_frame,
                                   frame_interval_s, assume_dt_s, pixel_size_nm, min_diameter_nm, split_touching,
                                   threshold)
                except _TimeAxisError:
                    raise  # the time policy is the run's, not this file's
                except NanosegError as exc:
                    run.skip(name, now[name][0], str(exc))
                    continue
                row["seconds"] = time.perf_counter() - t0
                busy_s += row["seconds"]
                frame_seconds.append(row["seconds"])
                run.commit(row.pop("_table"), row, tracker)
                n_new += 1
                last_frame_at = time.monotonic()
                if on_frame is not None:
                    on_frame(dict(row))
                if report_every_s <= 0 or time.monotonic() - last_report_at >= report_every_s:
                    _write_live_report(out, run, n_new, busy_s)
                    last_report_at = time.monotonic()
                if max_frames is not None and n_new >= max_frames:
                    stopped_by = "max_frames"
                    break
            if stopped_by:
                break
            if stop.is_set():
                stopped_by = "signal" if flag.by_signal else "stop"
            elif idle_timeout_s is not None and time.monotonic() - last_frame_at >= idle_timeout_s:
                stopped_by = "idle_timeout"
            else:
                stop.wait(poll_s)
    result = WatchResult(out_dir=out, n_frames=len(run.state["frames"]), n_new=n_new,
                         seconds_per_frame=float(np.median(frame_seconds)) if n_new else float("nan"),
                         skipped=[{"file": s["file"], "reason": s["reason"]} for s in run.state["skipped"]],
                         stopped_by=stopped_by)
    result.track = _kinetics(run, result, search_range_nm=search_range_nm, memory=memory,
                             min_diameter_nm=min_diameter_nm, n_boot=n_boot, figures=figures,
                             correct_drift=correct_drift)
    _write_live_report(out, run, n_new, busy_s, result=result)
    return result


def _model_fingerprint(model):
    """:func:`nanoseg.infer.fingerprint.model_fingerprint` (imported here: it loads torch, which a ``predict_fn`` needs not)."""
    from nanoseg.infer.fingerprint import model_fingerprint

    return model_fingerprint(model)


def _process(micrograph, index, name, path, run, tracker, segment, frame_table, dt, assume_dt, pixel_size_nm,
             min_diameter_nm, split_touching, threshold) -> dict:
    """Segment and measure one frame; returns its frames.csv row with the particle table under ``_table``.

    The run's first timestamp and frame shape are taken from the first frame that succeeds."""
    before = (run.state["first_timestamp_s"], run.state["shape"])
    try:
        return _measure(micrograph, index, name, path, run, tracker, segment, frame_table, dt, assume_dt,
                        pixel_size_nm, min_diameter_nm, split_touching, threshold)
    except NanosegError:
        run.state["first_timestamp_s"], run.state["shape"] = before
        raise


def _measure(micrograph, index, name, path, run, tracker, segment, frame_table, dt, assume_dt, pixel_size_nm,
             min_diameter_nm, split_touching, threshold) -> dict:
    time_s, stamp = _frame_time(micrograph, index, run, dt, assume_dt, path)
    shape = list(micrograph.shape)
    if run.state["shape"] is None:
        run.state["shape"] = shape
    elif run.state["shape"] != shape:
        raise NanosegError(f"frame of {shape[0]}×{shape[1]} px; the run's frames are "
                           f"{run.state['shape'][0]}×{run.state['shape'][1]} px",
                           hint="one watch run takes one camera setting; start another out_dir=FOLDER for this size")
    series = Series.from_micrographs([micrograph], [time_s])
    table, px, data = frame_table(0, series=series, segment=lambda i, frame: segment(index, frame),
                                  pixel_size_nm=pixel_size_nm, min_diameter_nm=min_diameter_nm,
                                  split_touching=split_touching, threshold=threshold)
    table["frame"] = np.int64(index)
    table["file"] = name
    run.state["pixel_size_nm"] = px
    dy = dx = ratio = np.nan
    if tracker is not None:
        dy, dx = tracker.update(data)
        ratio = tracker.last_peak_ratio
    return {"frame": index, "file": name, "time_s": time_s, "timestamp_s": stamp, "n_particles": len(table),
            "mean_diameter_nm": float(table["diameter_nm"].mean()) if len(table) else float("nan"),
            "seconds": 0.0, "dy_px": float(dy), "dx_px": float(dx), "peak_ratio": float(ratio), "_table": table}


def _kinetics(run: _Run, result: WatchResult, **options):
    """Run the ``nanoseg track`` analysis on every frame so far; a reason it cannot goes into the warnings."""
    from nanoseg.insitu.stream import analyse_tracks

    frames = run.frames()
    if frames.empty:
        result.warnings.append("no frames yet: no kinetics written")
        return None
    particles = run.particles().drop(columns=["file"])
    particles = particles.sort_values(["frame", "label"]).reset_index(drop=True)
    px = run.state["pixel_size_nm"]
    drift = None
    if options["correct_drift"]:
        drift = frames[["frame", "time_s", "dy_px", "dx_px", "peak_ratio"]].copy()
        drift["dy_nm"], drift["dx_nm"] = drift["dy_px"] * px, drift["dx_px"] * px
    shape = run.state["shape"]
    try:
        track = analyse_tracks(particles, drift, out_dir=run.dir.parent, pixel_size_nm=px,
                               field_area_nm2=float(shape[0] * shape[1] * px**2), **options)
    except NanosegError as exc:
        result.warnings.append(f"kinetics not written: {exc}")
        return None
    result.warnings += list(track.summary.get("warnings", []))
    return track


def write_watch_report(out_dir: str | os.PathLike, *, out: str | os.PathLike | None = None) -> Path:
    """The report of a watch folder, while it runs or after (what ``nanoseg report OUT`` writes for one)."""
    from nanoseg.report import write_report

    root = Path(out_dir)
    run = _Run.read(root)
    frames = run.frames()
    sections = _live_sections(run, len(frames), float(frames["seconds"].median()) * len(frames) if len(frames) else 0.0)
    if (root / "summary.json").exists() and (root / "tracks.csv").exists():
        from nanoseg.insitu.stream import read_track_result
        from nanoseg.report.folders import track_sections

        sections += track_sections(read_track_result(root))
    return write_report(Path(out) if out else root / "report.html", f"Live acquisition — {root.name}", sections)


def _write_live_report(out: Path, run: _Run, n_new: int, busy_s: float, *, result: WatchResult | None = None):
    """``report.html``: the live section (and, at the end, the ``nanoseg track`` sections)."""
    from nanoseg.report import write_report

    sections = _live_sections(run, n_new, busy_s, result=result)
    if result is not None and result.track is not None:
        from nanoseg.report.folders import track_sections

        sections += track_sections(result.track)
    write_report(out / "report.html", f"Live acquisition — {out.name}", sections)


def _live_sections(run: _Run, n_new: int, busy_s: float, *, result: WatchResult | None = None) -> list:
    """Frames done, rate, skipped files, latest frames and the latest frame's sizes."""
    from nanoseg.report import Section

    frames = run.frames()
    settings = run.state["settings"]
    rate = n_new / busy_s if busy_s > 0 else float("nan")
    if settings.get("frame_interval_s"):
        time_text = f"frame i at i × {settings['frame_interval_s']:g} s (--frame-interval-s)"
    elif settings.get("assume_dt_s"):
        time_text = (f"time axis assumed: {settings['assume_dt_s']:g} s per frame (--assume-frame-interval-s); every time and rate "
                     "scales with this guess")
    else:
        time_text = "the files' acquisition timestamps"
    facts = pd.DataFrame([
        {"quantity": "frames done", "value": len(frames)},
        {"quantity": "frames done by this run", "value": n_new},
        {"quantity": "processing rate (frames/s of work; read + segment + write)", "value": rate},
        {"quantity": "files skipped", "value": len(run.state["skipped"])},
        {"quantity": "pixel size (nm)", "value": run.state["pixel_size_nm"]},
    ])
    text = (f"Watching {settings['folder']}. Times: {time_text}. The tables grow per frame in watch/ "
            "(particles.csv, frames.csv).")
    interval_s = float(np.median(np.diff(frames["time_s"]))) if len(frames) > 1 else float("nan")
    work_s = float(frames["seconds"].median()) if len(frames) else float("nan")
    if interval_s > 0 and np.isfinite(work_s):
        keeps_up = work_s <= interval_s
        text += (f" Frames arrive every {interval_s:.3g} s (median, on the time axis above) and take {work_s:.3g} s "
                 f"of work (median): {'it keeps up' if keeps_up else 'it falls behind; the backlog is worked off in arrival order'}.")
    if result is not None:
        text += f" Stopped ({result.stopped_by or 'done'}); the kinetics below use every frame so far."
    sections = [Section("Live acquisition", text=text, tables=[facts],
                        warnings=list(result.warnings) if result is not None else [])]
    if run.state["skipped"]:
        sections.append(Section("Skipped files", tables=[pd.DataFrame(run.state["skipped"])[["file", "reason"]]]))
    if len(frames):
        sections.append(Section("Latest frames", tables=[frames.tail(20)]))
        last = run.particles()
        last = last[last["frame"] == frames["frame"].iloc[-1]]
        if len(last):
            from nanoseg.evaluate.sizes import size_statistics_table

            stats = size_statistics_table(last, n_boot=200, detection_limit_nm=settings["min_diameter_nm"])
            sections.append(Section(f"Sizes in the latest frame ({frames['file'].iloc[-1]})",
                                    text="Border particles left out (no Miles–Lantuéjoul weights in live tables); "
                                         "95 % bootstrap intervals (200 replicates).", tables=[stats]))
    return sections
