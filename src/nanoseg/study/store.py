"""The results table of a study: one row per evaluation cell, appended atomically as cells finish.

Each finished cell writes one small JSON file ``results/cells/<cell>.json`` through a temporary file that is
renamed into place, so a killed study never leaves a half-written row and concurrent workers never collide.
:meth:`ResultsStore.consolidate` gathers them into ``results.parquet`` (also atomic). A study that is run
again reads the rows back and skips every cell whose row says ``status == "ok"`` for the same config.

Example
-------
>>> import tempfile
>>> store = ResultsStore(tempfile.mkdtemp())
>>> store.write({"cell": "a__f0__test_b", "status": "ok", "dice": 0.9})
>>> store.finished_cells()
{'a__f0__test_b': None}
>>> float(store.load()["dice"].iloc[0])
0.9
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from nanoseg._util import atomic_path

RESULTS_FILE = "results.parquet"


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


class ResultsStore:
    """Rows of one study directory (see the module docstring)."""

    def __init__(self, study_dir: str | os.PathLike):
        self.root = Path(study_dir)
        self.cells_dir = self.root / "results" / "cells"
        self.cells_dir.mkdir(parents=True, exist_ok=True)

    def path_of(self, cell: str) -> Path:
        return self.cells_dir / f"{cell}.json"

    def write(self, row: dict[str, Any]) -> None:
        """Store (or replace) the row of ``row["cell"]`` atomically."""
        clean = {k: _plain(v) for k, v in row.items()}
        with atomic_path(self.path_of(str(row["cell"]))) as tmp:
            tmp.write_text(json.dumps(clean, default=str), encoding="utf-8")

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.cells_dir.glob("*.json")):
            if path.name.startswith("."):
                continue  # a temporary file of a write in progress
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue  # unreadable row: the cell simply runs again
        return out

    def load(self) -> pd.DataFrame:
        """Every row as a DataFrame (the consolidated table when no cell file is left)."""
        rows = self.rows()
        if rows:
            return pd.DataFrame(rows)
        if (self.root / RESULTS_FILE).exists():
            return pd.read_parquet(self.root / RESULTS_FILE)
        return pd.DataFrame()

    def finished_cells(self) -> dict[str, str | None]:
        """``{cell: config_hash}`` of the cells that finished without error."""
        return {r["cell"]: r.get("config_hash") for r in self.rows() if r.get("status") == "ok"}

    def consolidate(self) -> Path:
        """Write ``results.parquet`` (all rows) atomically and return its path."""
        table = self.load()
        path = self.root / RESULTS_FILE
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)
        return path


def load_results(study_dir: str | os.PathLike) -> pd.DataFrame:
    """The results table of a study directory (``results.parquet`` or the cell rows)."""
    root = Path(study_dir)
    store_dir = root / "results" / "cells"
    if store_dir.is_dir() and any(store_dir.glob("*.json")):
        return ResultsStore(root).load()
    if (root / RESULTS_FILE).exists():
        return pd.read_parquet(root / RESULTS_FILE)
    from nanoseg.errors import NanosegError

    raise NanosegError("no study results here", path=root, hint="run `nanoseg study run SPEC --out DIR` first")
