"""The one way nanoseg draws and writes a figure: matplotlib on the Agg backend, PNG written atomically.

Every figure module (:mod:`nanoseg.evaluate.figures`, :mod:`nanoseg.explain.figures`, the predict report's size
histogram) builds on these two functions, so figures look alike (110 dpi, tight box) and a crash never leaves
half a PNG.

Example
-------
>>> import tempfile, pathlib
>>> fig, axes = figure(2)
>>> save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "two.png").suffix
'.png'
"""

from __future__ import annotations

import os
from pathlib import Path

from nanoseg._util import atomic_path

FIGURE_DPI = 110


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed; an already chosen backend is kept)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure(ncols: int, nrows: int = 1, size: float = 3.2):
    """A new ``(figure, axes)`` grid of ``nrows × ncols`` panels, ``size`` inches each (axes always 2-D)."""
    return pyplot().subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically, close it, return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=FIGURE_DPI, bbox_inches="tight", format="png")
    pyplot().close(fig)
    return path
