"""``nanoseg track``: an in situ movie → tracks, events, kinetics, verdict and figures."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder
from nanoseg.errors import NanosegError
from nanoseg.workflows.track import record_time_assumption


@app.command()
def track(
    movie: list[Path] = typer.Argument(..., help="A stacked movie file (TIFF, DM, MRC, NPY…) or frame files / a glob."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (resumed when it holds an unfinished run)."),
    model: str = typer.Option("default", "--model", help="Model checkpoint, ensemble folder, or 'default'."),
    masks: list[Path] = typer.Option(None, "--masks",
                                     help="Track from given masks instead of a model: a mask stack or one file "
                                          "per frame (repeat the option)."),
    dt: float = typer.Option(None, "--frame-interval-s", help="Seconds between frames, when the files carry no timestamps."),
    assume_dt: float = typer.Option(None, "--assume-frame-interval-s",
                                    help="Seconds between frames as an assumption (the interval is not known): "
                                         "written into summary.json, every table and the report."),
    pixel_size: float = typer.Option(None, "--pixel-size-nm", help="Pixel size in nm (overrides the file's)."),
    search_range_nm: float = typer.Option(1.0, "--search-range-nm", help="Largest move between frames (nm)."),
    memory: int = typer.Option(2, "--memory", help="Frames a particle may be missed and keep its track."),
    min_diameter_nm: float = typer.Option(0.5, "--min-diameter-nm", help="Smallest particle kept (nm)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Probability threshold."),
    no_drift: bool = typer.Option(False, "--no-drift", help="Skip drift correction."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap replicates for k, n uncertainty (0: none)."),
    chunk_frames: int = typer.Option(25, "--chunk-frames", help="Frames per incremental write (resume step)."),
    restart: bool = typer.Option(False, "--overwrite", help="Discard an earlier run in --out."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Do not draw figures."),
    gif: bool = typer.Option(False, "--gif", help="Also write figures/tracks.gif (particles circled per track)."),
    dask: str = typer.Option(None, "--dask",
                             help="Segment frames on Dask: 'local' (a LocalCluster here) or a scheduler address."),
) -> None:
    """Segment every frame, track particles, find coalescence/ripening events and fit coarsening kinetics.

    Frames are processed one at a time and written incrementally; rerunning the same command resumes.

    Example: nanoseg track movie.tif --out tracked --frame-interval-s 0.1 --search-range-nm 1.5

    Example (given masks): nanoseg track movie.tif --masks masks.tif --out tracked-masks
    """
    writable_folder(out)
    source = [str(p) for p in movie] if len(movie) > 1 else str(movie[0])
    series, assumption = _timed_series(source, dt, assume_dt)
    client = None
    if dask:
        from dask.distributed import Client

        client = Client(processes=True, dashboard_address=":0") if dask == "local" else Client(dask)
        console.print(f"Dask: {client}")
    try:
        result = _run(series, masks, model, out, pixel_size, min_diameter_nm, threshold, search_range_nm, memory,
                      no_drift, chunk_frames, bootstrap, no_figures, gif, restart, client)
    finally:
        if client is not None:
            client.close()
    if assumption:
        record_time_assumption(out, assumption)
        result.summary = json.loads((Path(out) / "summary.json").read_text())
    _print_summary(result, out)


def _timed_series(source, dt: float | None, assume_dt: float | None):
    """Open the movie lazily with real times: the file's, ``--frame-interval-s``'s, or an explicit ``--assume-frame-interval-s``.

    Returns ``(series, assumption)``; ``assumption`` is the sentence to write into every output, or None.
    A movie without timestamps and without either option is refused: k would come out in nm^n per *frame*.
    """
    from nanoseg.io import read_series

    if dt is not None and assume_dt is not None:
        raise NanosegError("give --frame-interval-s or --assume-frame-interval-s, not both",
                           hint="--frame-interval-s when the interval is known, --assume-frame-interval-s when it is a guess")
    if dt is not None:
        return read_series(source, frame_interval_s=dt), None
    series = read_series(source)
    untimed = series.timing == "index"
    if assume_dt is None:
        if untimed:
            raise NanosegError("the frames carry no timestamps, so rates in nm^n/s cannot be computed",
                               path=series.source,
                               hint="give --frame-interval-s SECONDS (the time between frames), or --assume-frame-interval-s SECONDS to run "
                                    "with a guessed interval written into every output")
        return series, None
    if not untimed:
        raise NanosegError(f"the frames carry timestamps ({series.timing}); --assume-frame-interval-s would override them",
                           path=series.source, hint="drop --assume-frame-interval-s, or use --frame-interval-s SECONDS to replace them")
    assumption = (f"time axis assumed: the frames carry no timestamps; assumed {assume_dt:g} s per frame "
                  "(--assume-frame-interval-s), so every time and rate (k in nm^n/s) scales with this guess")
    return read_series(source, frame_interval_s=assume_dt), assumption


def _run(series, masks, model, out, pixel_size, min_diameter_nm, threshold, search_range_nm, memory, no_drift,
         chunk_frames, bootstrap, no_figures, gif, restart, client):
    from nanoseg.insitu import track_movie

    return track_movie(
        series, model=None if masks else model, masks=([str(p) for p in masks] if masks else None),
        out_dir=out, pixel_size_nm=pixel_size, min_diameter_nm=min_diameter_nm,
        threshold=threshold, search_range_nm=search_range_nm, memory=memory, correct_drift=not no_drift,
        chunk_frames=chunk_frames, n_boot=bootstrap, figures=not no_figures, gif=gif, restart=restart,
        client=client, progress=True,
    )


def _print_summary(result, out) -> None:
    s = result.summary
    console.print(f"{s['n_frames']} frames, {s['n_detections']} detections, {s['n_tracks']} tracks, "
                  f"events: {s['events'] or 'none'}")
    units = "nm^n/s" + (" (assumed time axis, see the warning)" if s.get("time_assumption") else "")
    for row in result.fits.itertuples():
        console.print(f"  {row.model}: n = {row.n:.2f} ± {row.n_std:.2f}, k = {row.k:.4g} ± {row.k_std:.2g} "
                      f"{units}, ΔAIC = {row.delta_aic:.1f}")
    v = s["verdict"]
    console.print(f"verdict: [bold]{v['mechanism']}[/] (support {v['support']:.2f}; {v['note']})")
    for warning in s.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    console.print(f"[green]results[/] → {out}")
