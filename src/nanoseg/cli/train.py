"""``nanoseg train``: train a model (or k cross-validation folds) on one or more datasets."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from nanoseg.cli._app import app, console, writable_folder


@app.command()
def train(
    datasets: list[Path] = typer.Argument(..., help="Dataset directories (from `nanoseg simulate` or "
                                                    "nanoseg.datasets.DatasetWriter).", show_default=False),
    model: str = typer.Option(None, "--model", "-m", help="Architecture: encoder_decoder, unet3, norm_unet, "
                              "twoconv_unet, twoconv_norm_unet, dilated_unet, sytwu_resunet, modern_unet "
                              "(default: the config's, else sytwu_resunet)."),
    config: Path = typer.Option(None, "--config", "-c", help="Training config YAML (see docs/training.md)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory (a fold{i}/ per fold with --folds)."),
    folds: int = typer.Option(1, "--folds", "-k", help="k > 1: grouped k-fold cross-validation + summary.csv."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Override the number of epochs."),
    device: str = typer.Option(None, "--device", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    seed: int = typer.Option(None, "--seed", help="Override the seed."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over, discarding a run in --out (default: "
                                                              "continue an interrupted run, keep a finished one)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train a segmentation network; writes weights.safetensors + card.json, curves.png and history.csv.

    Multi-GPU: torchrun --nproc_per_node 4 -m nanoseg train data/au5 --model norm_unet --out runs/n

    Example: nanoseg train data/au5 --model sytwu_resunet --config examples/train/default_model.yaml --out runs/s --folds 5
    """
    from nanoseg.train import TrainConfig, cross_validate, train_model

    writable_folder(out)
    cfg = TrainConfig.from_yaml(config) if config is not None else TrainConfig()
    changes = {"epochs": epochs, "device": device, "seed": seed, "num_threads": threads}
    if model is not None and model != cfg.model:
        changes.update(model=model, model_config={})
    cfg = cfg.with_overrides(**changes)
    main = int(os.environ.get("RANK", "0")) == 0
    if folds > 1:
        summary = cross_validate(datasets, cfg, out, folds=folds, progress=progress, resume=not overwrite)
        if main:
            from rich.table import Table

            table = Table(title=f"{folds}-fold cross-validation of {cfg.model}")
            for col in ("fold", "n_train_images", "n_val_images", "n_test_images", "best_epoch",
                        "val_loss", "test_hard_dice"):
                table.add_column(col)
            for _, row in summary.iterrows():
                table.add_row(*[f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in
                                ("fold", "n_train_images", "n_val_images", "n_test_images", "best_epoch",
                                 "val_loss", "test_hard_dice")])
            console.print(table)
            console.print(f"[green]summary[/] → {Path(out) / 'summary.csv'}")
        return
    path = train_model(datasets, cfg, out, progress=progress, resume=not overwrite)
    if main:
        from nanoseg.models.checkpoint import read_card

        card = read_card((path / "card.json").read_text(), path=path / "card.json")
        m = card.metrics
        console.print(f"[green]trained[/] {card.architecture} ({card.n_parameters:,} parameters), best epoch "
                      f"{card.training['best_epoch']}: val loss {m['val_loss']:.4f}, val hard Dice "
                      f"{m['val_hard_dice']:.3f}, test hard Dice "
                      f"{'–' if m['test_hard_dice'] is None else format(m['test_hard_dice'], '.3f')} → {path}",
                      highlight=False)
