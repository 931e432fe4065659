"""Print the Markdown tables of docs/important-features.md from a finished Horwath study folder.

Reads the CSVs that ``nanoseg explain-study`` writes (``summary.csv``, ``ablation_drops.csv``,
``threshold_curves.csv``, ``per_model.csv``, ``raw_outputs.csv``, ``labels_*.csv``) and prints, per label
source × blur × model (mean over folds): pixel scores at 0.5 and at Otsu, the best threshold, particle and size
scores, the fold spread, the frequency-ablation drops and the raw-output statistics. Every number in the doc's
result tables comes from this script, so the doc can be regenerated from the study's real output.

Usage: python scripts/horwath_tables.py runs/horwath-cpu [--bands "low-pass ≥ 3 px" ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

GROUP = ["labels", "blur_sigma_px", "model"]


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub Markdown table (floats rounded to ``digits``)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def best_threshold(curves: pd.DataFrame) -> pd.DataFrame:
    """Per group: the numeric threshold with the highest mean pixel F1, and that F1."""
    numeric = curves[curves["threshold_name"] != "otsu"].copy()
    numeric["threshold"] = numeric["threshold_name"].astype(float)
    best = numeric.loc[numeric.groupby(GROUP)["f1_mean"].idxmax(), GROUP + ["threshold", "f1_mean"]]
    return best.rename(columns={"threshold": "best_threshold", "f1_mean": "best_f1"})


def accuracy_table(study: Path) -> pd.DataFrame:
    summary = pd.read_csv(study / "summary.csv")
    best = best_threshold(pd.read_csv(study / "threshold_curves.csv"))
    table = summary.merge(best, on=GROUP, how="left")
    cols = ["labels", "blur_sigma_px", "model", "n_models", "f1", "precision", "recall", "otsu_f1", "best_f1",
            "best_threshold", "particle_f1", "size_n_pred", "size_n_ref", "size_mean_error_nm",
            "size_ks_statistic", "f1_fold_std"]
    return table[[c for c in cols if c in table]].sort_values(GROUP)


def ablation_table(study: Path, bands: list[str] | None) -> pd.DataFrame:
    drops = pd.read_csv(study / "ablation_drops.csv")
    keep = [b for b in (bands or [c for c in drops.columns if c not in GROUP]) if b in drops]
    return drops[GROUP + keep].sort_values(GROUP)


def raw_table(study: Path) -> pd.DataFrame:
    raw = pd.read_csv(study / "raw_outputs.csv")
    wide = raw.groupby(GROUP + ["channel"])[["separation", "texture_fraction"]].mean().unstack("channel")
    wide.columns = [f"{metric} ({channel})" for metric, channel in wide.columns]
    return wide.reset_index().sort_values(GROUP)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a finished `nanoseg explain-study` output folder")
    parser.add_argument("--bands", nargs="*", help="ablation bands to show (default: all)")
    args = parser.parse_args(argv)
    if not (args.study / "summary.csv").exists():
        parser.error(f"{args.study}: no summary.csv — run `nanoseg explain-study ... --out {args.study}` first")
    print("## Accuracy (mean over folds)\n")
    print(markdown(accuracy_table(args.study)))
    print("\n## Frequency-ablation drops (mean over folds)\n")
    print(markdown(ablation_table(args.study, args.bands)))
    print("\n## Raw outputs, test frame 0 (mean over folds)\n")
    print(markdown(raw_table(args.study)))
    for name in ("labels_summary", "labels_by_size"):
        path = args.study / f"{name}.csv"
        if path.exists():
            print(f"\n## {name}\n")
            print(markdown(pd.read_csv(path)))


if __name__ == "__main__":
    main()
