"""``nanoseg export``: a checkpoint as one ONNX or TorchScript file with its model card inside."""

from __future__ import annotations

from pathlib import Path

import typer

from nanoseg.cli._app import app, console


@app.command()
def export(
    model: str = typer.Argument(..., help="Checkpoint folder or .nanoseg file, or 'default' (the shipped model)."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (.onnx or .pt)."),
    fmt: str = typer.Option(None, "--format", "-f", help="onnx or torchscript (default: from the --out suffix)."),
) -> None:
    """Write the network as ONNX or TorchScript, with its model card (pixel size, preprocessing pipeline,
    input multiple) inside the file, for `nanoseg predict --model FILE` or any ONNX / TorchScript runtime.

    The exported file is run against PyTorch on a random input and refused when the particle probabilities
    differ by more than 1e-4; the measured difference is printed. ONNX needs nanoseg[fast]. See docs/export.md.

    Example: nanoseg export default --format onnx --out default.onnx
    """
    from nanoseg.infer.export import export_model

    result = export_model(model, out, fmt=fmt)
    console.print(result.summary(), highlight=False, soft_wrap=True)
