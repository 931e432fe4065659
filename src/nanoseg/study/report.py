"""Summaries and the HTML report of a study: train × test matrices, drops, sweeps, descriptor plot.

* :func:`summarize` — mean ± std over folds (and seeds) of every metric per (option, train set, test set);
* :func:`metric_matrix` — a train × test matrix of means (and one of stds);
* :func:`drop_matrix` — each cell minus the in-distribution score of its **test** column
  (``drop[train, test] = M[train, test] − M[test, test]``; negative = worse than a model trained on the test
  set's own distribution);
* :func:`write_study_report` — heatmaps, drop heatmaps, sweep line plots, drop vs descriptor distance, tables,
  all in ``report.html`` (figures also as PNG and matrices as CSV under ``report/``).

Example
-------
>>> import pandas as pd
>>> rows = pd.DataFrame({"train_set": ["a", "a", "b", "b"], "test_set": ["a", "b", "a", "b"],
...                      "option": "base", "fold": 0, "status": "ok", "dice": [0.9, 0.6, 0.7, 0.8]})
>>> round(float(drop_matrix(metric_matrix(summarize(rows), "dice")[0]).loc["a", "b"]), 3)   # 0.6 − 0.8
-0.2
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError
from nanoseg.study.descriptors import DESCRIPTORS, descriptor_distance
from nanoseg.study.store import load_results

_KEYS = ["option", "train_set", "test_set"]
_NOT_METRICS = {"fold", "seed", "ensemble_size", "n_images", "train_wall_s", "eval_wall_s", "wall_s", "in_distribution"}


def metric_columns(results: pd.DataFrame) -> list[str]:
    """Numeric columns that are metrics (not bookkeeping, not per-image spreads)."""
    out = []
    for col in results.columns:
        if col in _NOT_METRICS or col.endswith("_image_std") or col.startswith("opt_"):
            continue
        if pd.api.types.is_numeric_dtype(results[col]) and not pd.api.types.is_bool_dtype(results[col]):
            out.append(col)
    return out


def summarize(results: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean, std (over folds and seeds, ddof=1 as usual for fold spreads) and count of every metric per
    (option, train set, test set), using only the cells that finished (``status == "ok"``)."""
    ok = results[results["status"] == "ok"] if "status" in results else results
    if ok.empty:
        raise NanosegError("no finished cells to summarize", hint="run the study (or let it finish) first")
    ok = ok.copy()
    if "option" not in ok:
        ok["option"] = "base"
    metrics = metrics or metric_columns(ok)
    opt_cols = [c for c in ok.columns if c.startswith("opt_")]
    agg = ok.groupby(_KEYS, sort=False)[metrics].agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{stat}" if stat != "count" else f"{m}_n" for m, stat in agg.columns]
    agg = agg.reset_index()
    if opt_cols:
        labels = ok.groupby("option", sort=False)[opt_cols].first().reset_index()
        agg = agg.merge(labels, on="option", how="left")
    return agg


def metric_matrix(summary: pd.DataFrame, metric: str = "dice", option: str | None = None, *,
                  order: tuple[list[str], list[str]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means, stds) as train × test DataFrames for one ``option`` label (the first one by default); rows and
    columns follow ``order`` = (train sets, test sets) when given (the spec's order), else first appearance."""
    if f"{metric}_mean" not in summary:
        raise NanosegError(f"no metric {metric!r} in the results",
                           hint=f"metrics: {sorted(c[:-5] for c in summary.columns if c.endswith('_mean'))}")
    options = list(dict.fromkeys(summary["option"]))
    part = summary[summary["option"] == (option if option is not None else options[0])]
    trains = list(dict.fromkeys(part["train_set"]))
    tests = list(dict.fromkeys(part["test_set"]))
    if order is not None:
        trains = [t for t in order[0] if t in trains] + [t for t in trains if t not in order[0]]
        tests = [t for t in order[1] if t in tests] + [t for t in tests if t not in order[1]]
    means = part.pivot(index="train_set", columns="test_set", values=f"{metric}_mean").reindex(index=trains,
                                                                                              columns=tests)
    stds = part.pivot(index="train_set", columns="test_set", values=f"{metric}_std").reindex(index=trains,
                                                                                            columns=tests)
    means.index.name, means.columns.name = "train", "test"
    stds.index.name, stds.columns.name = "train", "test"
    return means, stds


def diagonal(means: pd.DataFrame) -> pd.Series:
    """The in-distribution score ``M[test, test]`` of every test column (NaN when not trained on)."""
    return pd.Series({t: (means.loc[t, t] if t in means.index else np.nan) for t in means.columns}, dtype=float)


def drop_matrix(means: pd.DataFrame, reference: pd.Series | None = None) -> pd.DataFrame:
    """``M[train, test] − M[test, test]``.

    Where the matrix has no diagonal entry for a test column (an option applied to some training sets only),
    ``reference[test]`` is used instead — the report passes the diagonal of the plain (first) option, so a
    noise-augmented high-dose model is compared with plain models trained on each test dose. NaN otherwise.
    """
    drops = means.copy()
    own = diagonal(means)
    for test in means.columns:
        base = own[test]
        if not np.isfinite(base) and reference is not None and test in reference.index:
            base = reference[test]
        drops[test] = means[test] - base
    return drops


def _numeric(labels) -> list[float] | None:
    try:
        return [float(v) for v in labels]
    except (TypeError, ValueError):
        return None


def _heatmap(means: pd.DataFrame, stds: pd.DataFrame | None, path: Path, title: str, *, diverging: bool = False
             ) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = means.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * values.shape[1] + 2.5, 1.0 * values.shape[0] + 1.8))
    if diverging:
        lim = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
        im = ax.imshow(values, cmap="RdBu", vmin=-max(lim, 1e-3), vmax=max(lim, 1e-3))
    else:
        im = ax.imshow(values, cmap="viridis", vmin=np.nanmin(values) if np.isfinite(values).any() else 0,
                       vmax=np.nanmax(values) if np.isfinite(values).any() else 1)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if not np.isfinite(values[i, j]):
                continue
            text = f"{values[i, j]:+.3f}" if diverging else f"{values[i, j]:.3f}"
            if stds is not None and np.isfinite(stds.iat[i, j]):
                text += f"\n±{stds.iat[i, j]:.3f}"
            rgba = im.cmap(im.norm(values[i, j]))
            light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if light else "white")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in means.columns], rotation=30, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(r) for r in means.index])
    ax.set_xlabel("test set")
    ax.set_ylabel("train set")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep_figures(summary: pd.DataFrame, metric: str, out_dir: Path) -> list[tuple[Path, str]]:
    """For each numeric sweep option: ``metric`` vs its value, one line per test set, one panel per train set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    opt_cols = [c for c in summary.columns if c.startswith("opt_")]
    for col in opt_cols:
        rows = summary[summary[col].notna()]
        if _numeric(rows[col].unique()) is None or rows[col].nunique() < 2:
            continue
        others = [c for c in opt_cols if c != col and rows[c].notna().any()]
        groups = rows.groupby(others, sort=False, dropna=False) if others else [((), rows)]
        for other_values, part in groups:
            other_values = other_values if isinstance(other_values, tuple) else (other_values,)
            trains = list(dict.fromkeys(part["train_set"]))
            fig, axes = plt.subplots(1, len(trains), figsize=(4.2 * len(trains), 3.4), squeeze=False, sharey=True)
            for ax, train in zip(axes[0], trains, strict=True):
                for test, line in part[part["train_set"] == train].groupby("test_set", sort=False):
                    x = np.array(_numeric(line[col]))
                    order = np.argsort(x)
                    ax.errorbar(x[order], line[f"{metric}_mean"].to_numpy()[order],
                                yerr=line[f"{metric}_std"].fillna(0).to_numpy()[order], marker="o", capsize=3,
                                label=f"test {test}")
                ax.set_title(f"train {train}", fontsize=10)
                ax.set_xlabel(col.removeprefix("opt_"))
                ax.grid(alpha=0.3)
            axes[0][0].set_ylabel(metric)
            axes[0][-1].legend(fontsize=8)
            suffix = "_".join(f"{o}-{v}" for o, v in zip(others, other_values, strict=True))
            path = out_dir / f"sweep_{metric}_{col.removeprefix('opt_')}{('_' + suffix) if suffix else ''}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            caption = f"{metric} vs {col.removeprefix('opt_')} (mean ± std over folds)"
            if suffix:
                caption += f"; {suffix}"
            figures.append((path, caption))
    return figures


def ordered_options(summary: pd.DataFrame) -> list[str]:
    """Option labels, the reference first: the one trained on the most sets (``base`` wins ties)."""
    options = list(dict.fromkeys(summary["option"]))
    n_sets = summary.groupby("option")["train_set"].nunique()
    return sorted(options, key=lambda o: (-int(n_sets[o]), o != "base", options.index(o)))


def drop_vs_descriptors(summary: pd.DataFrame, descriptors: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """One row per out-of-distribution (option, train, test) pair: its drop and its descriptor distances."""
    rows = []
    options = ordered_options(summary)
    reference = diagonal(metric_matrix(summary, metric, options[0])[0])
    for option in options:
        means, _ = metric_matrix(summary, metric, option)
        drops = drop_matrix(means, reference)
        for train in drops.index:
            for test in drops.columns:
                if train == test or not np.isfinite(drops.loc[train, test]):
                    continue
                if train not in descriptors.index or test not in descriptors.index:
                    continue
                row = {"option": option, "train_set": train, "test_set": test, "drop": drops.loc[train, test]}
                row.update({f"d_{k}": v for k, v in descriptor_distance(descriptors, train, test).items()})
                rows.append(row)
    return pd.DataFrame(rows)


def _descriptor_figure(table: pd.DataFrame, path: Path, metric: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in table.columns if c.startswith("d_") and table[c].notna().any()]
    n_cols = min(3, len(cols))
    n_rows = -(-len(cols) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.0 * n_rows), squeeze=False, sharey=True)
    for ax in axes.ravel()[len(cols):]:
        ax.set_visible(False)
    for ax, col in zip(axes.ravel(), cols, strict=False):
        ax.scatter(table[col], table["drop"], s=18)
        for _, r in table.iterrows():
            ax.annotate(f"{r['train_set']}→{r['test_set']}", (r[col], r["drop"]), fontsize=6, alpha=0.7)
        finite = table[[col, "drop"]].dropna()
        if len(finite) >= 3 and finite[col].round(12).nunique() > 1 and finite["drop"].round(12).nunique() > 1:
            rho = finite[col].corr(finite["drop"], method="spearman")
            ax.set_title(f"Spearman ρ = {rho:+.2f}", fontsize=9)
        ax.set_xlabel(f"|Δ {col[2:]}|")
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel(f"{metric} drop")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pm(means: pd.DataFrame, stds: pd.DataFrame) -> pd.DataFrame:
    out = means.copy().astype(object)
    for i in range(means.shape[0]):
        for j in range(means.shape[1]):
            m, s = means.iat[i, j], stds.iat[i, j]
            out.iat[i, j] = "" if not np.isfinite(m) else (f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}")
    return out.reset_index()


def _spec_order(study_dir: Path) -> tuple[list[str], list[str]] | None:
    """(train sets, test sets) in the order of the study's ``spec.yaml``, when there is one."""
    path = Path(study_dir) / "spec.yaml"
    if not path.exists():
        return None
    import yaml

    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return None
    return list(spec.get("train") or []), list(spec.get("test") or [])


def load_descriptors(study_dir: str | os.PathLike) -> pd.DataFrame:
    """Dataset descriptors of a study (rows = dataset names), empty when none were computed."""
    folder = Path(study_dir) / "descriptors"
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
    return pd.DataFrame.from_dict(rows, orient="index")


def write_study_report(study_dir: str | os.PathLike, *, metrics: list[str] | None = None,
                       out: str | os.PathLike | None = None) -> Path:
    """Draw every matrix of a study directory into ``report.html`` (default: ``study_dir/report.html``).

    Parameters
    ----------
    study_dir : path
        A folder written by :func:`nanoseg.study.run_study` (or any folder with ``results.parquet``).
    metrics : list of str, optional
        Metrics to draw (default: hard Dice first, then soft Dice, IoU, precision, recall when present).

    Examples
    --------
    >>> write_study_report("runs/dose")  # doctest: +SKIP
    """
    from nanoseg.report import Section, write_report

    study_dir = Path(study_dir)
    results = load_results(study_dir)
    if results.empty:
        raise NanosegError("the results table is empty", path=study_dir)
    summary = summarize(results)
    available = [c[:-5] for c in summary.columns if c.endswith("_mean")]
    preferred = [m for m in ("dice", "soft_dice", "iou", "precision", "recall") if m in available]
    metrics = metrics or preferred or available
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise NanosegError(f"unknown metric(s) {unknown}", hint=f"available: {available}")
    fig_dir = study_dir / "report"
    fig_dir.mkdir(parents=True, exist_ok=True)
    name = str(results["study"].iloc[0]) if "study" in results else study_dir.name
    n_ok = int((results["status"] == "ok").sum()) if "status" in results else len(results)
    options = ordered_options(summary)
    order = _spec_order(study_dir)
    folds = int(results["fold"].nunique()) if "fold" in results else 1
    sections = [Section(
        "Overview",
        text=(f"{len(results)} evaluation cells, {n_ok} finished, {len(results) - n_ok} failed; "
              f"{len(options)} option combination(s); {folds} fold(s). Matrices show the mean ± standard "
              "deviation over folds and seeds. In-distribution cells (the diagonal) test each fold model on its "
              "held-out fold; off-diagonal cells test every fold model on the whole other dataset (Sytwu). "
              "Drops are each cell minus the diagonal of its test column (for an option applied to some "
              f"training sets only, the diagonal of the first option, {options[0]!r})."),
    )]
    for metric in metrics:
        reference = diagonal(metric_matrix(summary, metric, options[0])[0])
        for option in options:
            means, stds = metric_matrix(summary, metric, option, order=order)
            tag = "" if option == "base" else f" — {option}"
            slug = "".join(c if c.isalnum() else "_" for c in f"{metric}_{option}")
            heat = _heatmap(means, stds, fig_dir / f"matrix_{slug}.png", f"{metric}{tag}")
            drops = drop_matrix(means, reference)
            drop_fig = _heatmap(drops, stds, fig_dir / f"drop_{slug}.png", f"{metric} drop vs diagonal{tag}",
                                diverging=True)
            means.to_csv(fig_dir / f"matrix_{slug}.csv")
            drops.to_csv(fig_dir / f"drop_{slug}.csv")
            sections.append(Section(
                f"{metric}{tag}",
                text=f"Rows: training set; columns: test set. Left: {metric}; right: drop relative to the "
                     "in-distribution score of the test column.",
                tables=[_pm(means, stds)],
                figures=[(heat, f"{metric}{tag}: mean ± std over folds"),
                         (drop_fig, f"{metric}{tag}: cell − diagonal of its test column")],
            ))
        sweeps = sweep_figures(summary, metric, fig_dir)
        if sweeps:
            sections.append(Section(f"Sweeps — {metric}", figures=sweeps))
    descriptors = load_descriptors(study_dir)
    if not descriptors.empty:
        cols = [c for c in DESCRIPTORS if c in descriptors]
        table = drop_vs_descriptors(summary, descriptors, metrics[0])
        figures = []
        if not table.empty:
            figures.append((_descriptor_figure(table, fig_dir / "drop_vs_descriptors.png", metrics[0]),
                            f"{metrics[0]} drop of out-of-distribution cells vs descriptor distance train → test"))
            table.to_csv(fig_dir / "drop_vs_descriptors.csv", index=False)
        sections.append(Section(
            "Dataset descriptors",
            text="Descriptors computed before training (medians over images): particle–background contrast, "
                 "Fourier roughness, information limit of the radially averaged power spectrum, relative noise. "
                 "The plot asks whether the distance between train and test descriptors predicts the drop.",
            tables=[descriptors[cols].reset_index(names="dataset")] + ([table] if not table.empty else []),
            figures=figures,
        ))
    failed = results[results["status"] != "ok"] if "status" in results else results.iloc[:0]
    summary_cols = [c for c in summary.columns if not c.endswith("_n") or c == f"{metrics[0]}_n"]
    sections.append(Section("All cells (mean, std over folds)", tables=[summary[summary_cols]]))
    if not failed.empty:
        sections.append(Section("Failed cells", warnings=[f"{len(failed)} cell(s) failed"],
                                tables=[failed[["cell", "error"]].reset_index(drop=True)]))
    summary.to_csv(fig_dir / "summary.csv", index=False)
    return write_report(out or study_dir / "report.html", f"Study {name}", sections)
