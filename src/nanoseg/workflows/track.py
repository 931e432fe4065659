"""The track workflow's folder bookkeeping (``nanoseg track`` / ``nanoseg watch``): what a result folder assumed.

Example
-------
>>> # record_time_assumption("track-out", "time axis assumed: 2 s per frame")
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nanoseg._util import atomic_path


def record_time_assumption(out: Path, assumption: str) -> None:
    """Write ``assumption`` into summary.json (``time_assumption`` + a warning) and a column of every table."""
    out = Path(out)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["time_assumption"] = assumption
    summary["warnings"] = [assumption, *[w for w in summary.get("warnings", []) if w != assumption]]
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    for path in sorted(out.glob("*.csv")):
        try:
            table = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            continue
        table["time_assumption"] = assumption
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
