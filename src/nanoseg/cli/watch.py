"""``nanoseg watch``: segment frames as the camera software writes them; the kinetics when stopped."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder
from nanoseg.errors import NanosegError


@app.command()
def watch(
    folder: Path = typer.Argument(..., help="The folder the camera software saves frames into (DM3/DM4, Velox EMD, "
                                            "TIFF, MRC, SER…)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (resumed when it holds a run with the same settings)."),
    model: str = typer.Option("default", "--model", help="Model checkpoint, ensemble folder, or 'default'."),
    dt: float = typer.Option(None, "--frame-interval-s", help="Seconds between frames (frame i at i·dt), replacing timestamps."),
    assume_dt: float = typer.Option(None, "--assume-frame-interval-s",
                                    help="Seconds between frames as an assumption (the interval is not known): "
                                         "written into summary.json, every table and the report."),
    pixel_size: float = typer.Option(None, "--pixel-size-nm", help="Pixel size in nm (overrides the files')."),
    signal: str = typer.Option(None, "--signal", help="For files holding several images (Velox HAADF + DF): "
                                                      "which one, by index or title (see `nanoseg info FILE`)."),
    min_diameter_nm: float = typer.Option(0.5, "--min-diameter-nm", help="Smallest particle kept (nm)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Probability threshold."),
    search_range_nm: float = typer.Option(1.0, "--search-range-nm", help="Largest move between frames (nm)."),
    memory: int = typer.Option(2, "--memory", help="Frames a particle may be missed and keep its track."),
    no_drift: bool = typer.Option(False, "--no-drift", help="Skip drift correction."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap replicates for k, n uncertainty (0: none)."),
    poll: float = typer.Option(1.0, "--poll-s", help="Seconds between looks at the folder."),
    retries: int = typer.Option(3, "--retries", help="Polls an unreadable file is retried before it is skipped."),
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after this many new frames."),
    idle_timeout: float = typer.Option(None, "--idle-timeout-s", help="Stop after this many seconds without a frame."),
    report_every: float = typer.Option(30.0, "--report-every-s", help="Seconds between report.html updates."),
    restart: bool = typer.Option(False, "--overwrite", help="Discard an earlier run in --out."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Do not draw the kinetics figures."),
) -> None:
    """Segment frames as they are written into FOLDER; Ctrl-C (or SIGTERM) finishes the frame and writes the kinetics.

    A file is taken once its size is unchanged over one poll and it reads; unreadable (truncated) files are retried,
    then skipped and listed. Per-frame tables grow in OUT/watch/, report.html is updated as it goes; when stopped,
    the `nanoseg track` outputs (tracks, events, kinetics, fits, verdict) are written for all frames so far.
    Rerunning the same command resumes. Times: the files' timestamps, or --frame-interval-s / --assume-frame-interval-s.

    Example: nanoseg watch capture --out live --frame-interval-s 0.5 --idle-timeout-s 3
    """
    from nanoseg.insitu.watch import watch_folder

    writable_folder(out)
    result = watch_folder(
        folder, out, model=model, pixel_size_nm=pixel_size, signal_choice=_signal(signal), frame_interval_s=dt, assume_dt_s=assume_dt,
        min_diameter_nm=min_diameter_nm, threshold=threshold, correct_drift=not no_drift,
        search_range_nm=search_range_nm, memory=memory, n_boot=bootstrap, figures=not no_figures, poll_s=poll,
        retries=retries, max_frames=max_frames, idle_timeout_s=idle_timeout, report_every_s=report_every,
        restart=restart)
    if assume_dt is not None and (Path(out) / "summary.json").exists():
        from nanoseg.workflows.track import record_time_assumption

        record_time_assumption(out, f"time axis assumed: the frames carry no timestamps; assumed {assume_dt:g} s "
                                    "per frame (--assume-frame-interval-s), so every time and rate (k in nm^n/s) scales with this "
                                    "guess")
    _print_summary(result)


def _signal(text: str | None) -> int | str | None:
    """``--signal``: an index (digits) or a title."""
    return int(text) if text is not None and text.strip().isdigit() else text


def _print_summary(result) -> None:
    rate = result.frames_per_s
    console.print(f"stopped ({result.stopped_by}): {result.n_frames} frames, {result.n_new} new"
                  + (f", {rate:.2f} frames/s of work" if rate == rate else ""), highlight=False)
    for skipped in result.skipped:
        console.print(f"[yellow]skipped[/] {skipped['file']}: {skipped['reason']}", highlight=False, soft_wrap=True)
    if result.track is not None:
        summary = json.loads((result.out_dir / "summary.json").read_text())
        verdict = summary.get("verdict", {})
        console.print(f"kinetics: {summary['n_tracks']} tracks; verdict {verdict.get('mechanism')}", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if result.n_frames == 0 and result.stopped_by in ("idle_timeout", "max_frames"):
        raise NanosegError("no frame arrived", path=result.out_dir,
                           hint="check the folder the camera software saves into and the file types")
    console.print(f"[green]results[/] → {result.out_dir}")
