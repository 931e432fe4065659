"""``nanoseg simulate``: generate a labelled dataset from a simulation spec (YAML)."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder


@app.command()
def simulate(
    spec: Path = typer.Argument(..., help="Simulation spec (YAML), e.g. examples/simulate/au_5nm.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to create or resume."),
    n: int = typer.Option(100, "-n", "--n-images", help="Number of images in the dataset."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed (same spec + seed → identical images)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786)."),
    workers: int = typer.Option(None, "--workers", help="Local worker processes (0 = no Dask)."),
) -> None:
    """Simulate labelled HRTEM images (abTEM multislice) into a nanoseg dataset; reruns resume.

    Example: nanoseg simulate examples/simulate/au_5nm.yaml --out data/au5 -n 200 --workers 2
    """
    from nanoseg.datasets import open_dataset
    from nanoseg.errors import NanosegError
    from nanoseg.simulate import SimulationConfig, generate_dataset

    writable_folder(out)
    config = SimulationConfig.from_yaml(spec)
    before = len(open_dataset(out)) if (out / "meta.parquet").exists() else 0
    generate_dataset(config, out, n_images=n, seed=seed, scheduler=scheduler, n_workers=workers, progress=True)
    if not (out / "meta.parquet").exists():  # every image failed: the warning above lists why
        raise NanosegError("no image could be simulated, so no dataset was written", path=out,
                           hint="fix the spec as the failures above say, then rerun the same command")
    total = len(open_dataset(out))
    console.print(f"[green]{total - before} new images[/] ({total} in total) → {out}")
