"""The end-to-end demo that ``make demo`` runs."""

from __future__ import annotations

from pathlib import Path


def run_demo(out: str | Path) -> Path:
    """Run the demo into ``out`` and return the path of its main output."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from nanoseg.io import example_micrograph  # provided by the io module
    from nanoseg.preprocess import demo_figure  # provided by the preprocess module

    return demo_figure(example_micrograph(), out / "preprocess.png")
