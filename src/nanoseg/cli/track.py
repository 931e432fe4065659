"""``nanoseg track``: an in situ movie → tracks, events, kinetics, verdict and figures."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder


@app.command()
def track(
    movie: list[Path] = typer.Argument(..., help="A stacked movie file (TIFF, DM, MRC, NPY…) or frame files / a glob."),
    out: Path = typer.Option(..., "--out", help="Output folder (resumed when it holds an unfinished run)."),
    model: str = typer.Option("default", "--model", help="Model checkpoint, ensemble folder, or 'default'."),
    masks: list[Path] = typer.Option(None, "--masks",
                                     help="Track from given masks instead of a model: a mask stack or one file "
                                          "per frame (repeat the option)."),
    dt: float = typer.Option(None, "--dt", help="Seconds between frames, when the files carry no timestamps."),
    pixel_size: float = typer.Option(None, "--pixel-size", help="Pixel size in nm (overrides the file's)."),
    search_range_nm: float = typer.Option(1.0, "--search-range-nm", help="Largest move between frames (nm)."),
    memory: int = typer.Option(2, "--memory", help="Frames a particle may be missed and keep its track."),
    min_diameter_nm: float = typer.Option(0.5, "--min-diameter-nm", help="Smallest particle kept (nm)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Probability threshold."),
    no_drift: bool = typer.Option(False, "--no-drift", help="Skip drift correction."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap replicates for k, n uncertainty (0: none)."),
    chunk_frames: int = typer.Option(25, "--chunk-frames", help="Frames per incremental write (resume step)."),
    restart: bool = typer.Option(False, "--restart", help="Discard an earlier run in --out."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Do not draw figures."),
    gif: bool = typer.Option(False, "--gif", help="Also write figures/tracks.gif (particles circled per track)."),
    dask: str = typer.Option(None, "--dask",
                             help="Segment frames on Dask: 'local' (a LocalCluster here) or a scheduler address."),
) -> None:
    """Segment every frame, track particles, find coalescence/ripening events and fit coarsening kinetics.

    Frames are processed one at a time and written incrementally; rerunning the same command resumes.

    Example: nanoseg track movie.tif --out tracked --dt 0.1 --search-range-nm 1.5

    Example (given masks): nanoseg track movie.tif --masks masks.tif --out tracked
    """
    writable_folder(out)
    source = [str(p) for p in movie] if len(movie) > 1 else str(movie[0])
    client = None
    if dask:
        from dask.distributed import Client

        client = Client(processes=True, dashboard_address=":0") if dask == "local" else Client(dask)
        console.print(f"Dask: {client}")
    try:
        result = _run(source, masks, model, out, pixel_size, dt, min_diameter_nm, threshold, search_range_nm, memory,
                      no_drift, chunk_frames, bootstrap, no_figures, gif, restart, client)
    finally:
        if client is not None:
            client.close()
    _print_summary(result, out)


def _run(source, masks, model, out, pixel_size, dt, min_diameter_nm, threshold, search_range_nm, memory, no_drift,
         chunk_frames, bootstrap, no_figures, gif, restart, client):
    from nanoseg.insitu import track_movie

    return track_movie(
        source, model=None if masks else model, masks=([str(p) for p in masks] if masks else None),
        out_dir=out, pixel_size_nm=pixel_size, frame_interval_s=dt, min_diameter_nm=min_diameter_nm,
        threshold=threshold, search_range_nm=search_range_nm, memory=memory, correct_drift=not no_drift,
        chunk_frames=chunk_frames, n_boot=bootstrap, figures=not no_figures, gif=gif, restart=restart,
        client=client, progress=True,
    )


def _print_summary(result, out) -> None:
    s = result.summary
    console.print(f"{s['n_frames']} frames, {s['n_detections']} detections, {s['n_tracks']} tracks, "
                  f"events: {s['events'] or 'none'}")
    for row in result.fits.itertuples():
        console.print(f"  {row.model}: n = {row.n:.2f} ± {row.n_std:.2f}, k = {row.k:.4g} ± {row.k_std:.2g} "
                      f"nm^n/s, ΔAIC = {row.delta_aic:.1f}")
    v = s["verdict"]
    console.print(f"verdict: [bold]{v['mechanism']}[/] (support {v['support']:.2f}; {v['note']})")
    for warning in s.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"[green]results[/] → {out}")
