"""``nanoseg study run|report``: train × test generalization studies on a Dask cluster."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder

study_app = typer.Typer(
    help=("Generalization studies: train on some datasets, test on others, over folds, seeds and options; "
          "run on Dask; draw train × test matrices.\n\n"
          "Example: nanoseg study run examples/studies/dose.yaml --out runs/dose --size small"),
    no_args_is_help=True,
)
app.add_typer(study_app, name="study")


@study_app.command("run")
def run(
    spec: Path = typer.Argument(..., help="Study spec (YAML), e.g. examples/studies/dose.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Study folder (created; run again to resume)."),
    scheduler: str = typer.Option(None, "--scheduler",
                                  help="Dask scheduler address (tcp://host:8786); 'threads' or 'sync' for local "
                                       "debugging; default: a LocalCluster on this machine."),
    workers: int = typer.Option(None, "--workers", min=1, help="Workers of the LocalCluster (default: one per "
                                                                "GPU, else one per core)."),
    size: str = typer.Option(None, "--size", help="Which `sizes:` entry of the spec to apply (small, full)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html when done."),
) -> None:
    """Run (or resume) a study: every training and evaluation cell as Dask tasks, one results row per cell.

    Example: nanoseg study run examples/studies/tiny.yaml --out runs/tiny --workers 2
    """
    from nanoseg.study import run_study, write_study_report

    writable_folder(out)
    table = run_study(spec, out, size=size, scheduler=scheduler, n_workers=workers, progress=True)
    n_ok = int((table["status"] == "ok").sum()) if "status" in table else 0
    n_failed = len(table) - n_ok
    console.print(f"[green]{n_ok} cells finished[/], {n_failed} failed → {out / 'results.parquet'}")
    if report and n_ok:
        console.print(f"report → {write_study_report(out)}")
    if n_failed:
        for _, row in table[table["status"] != "ok"].head(10).iterrows():
            console.print(f"  FAILED {row['cell']}: {row['error']}", highlight=False)
        raise typer.Exit(code=1)


@study_app.command("report")
def report_cmd(
    study_dir: Path = typer.Argument(..., help="A folder written by `nanoseg study run`."),
    metric: list[str] = typer.Option(None, "--metric", "-m", help="Metric(s) to draw (default: dice, soft_dice, "
                                                                   "iou, precision, recall)."),
) -> None:
    """Draw the train × test matrices, drops, sweeps and descriptor plot into DIR/report.html.

    Example: nanoseg study report runs/dose --metric dice
    """
    from nanoseg.study import write_study_report

    console.print(f"report → {write_study_report(study_dir, metrics=metric or None)}")


@study_app.command("plan")
def plan_cmd(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    size: str = typer.Option(None, "--size", help="Which `sizes:` entry of the spec to apply."),
    seconds_per_patch: float = typer.Option(None, "--seconds-per-patch", min=0,
                                            help="Seconds of one training pass over a 256² patch on your "
                                                 "hardware (measure it); gives an estimate in hours."),
) -> None:
    """Count a study before running it: trainings, cells, images to simulate, training work.

    Example: nanoseg study plan examples/studies/dose.yaml --size full --seconds-per-patch 0.003
    """
    from nanoseg.study import load_spec
    from nanoseg.study.plan import study_plan

    plan = study_plan(load_spec(spec, size=size), seconds_per_patch=seconds_per_patch)
    for key, value in plan.items():
        console.print(f"{key:>20}: {value:,.1f}" if isinstance(value, float) else f"{key:>20}: {value:,}")
