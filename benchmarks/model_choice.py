"""Model choice: accuracy and CPU inference cost per pixel of every option of a finished study, side by side.

For each option of a ``nanoseg study`` directory (``examples/studies/model_choice.yaml``): hard Dice mean ± sd
over folds (and seeds) on every test set — in distribution (the held-out fold) and on each shifted set — next to
the network's parameters, receptive field and CPU cost, measured here in one run: the eager forward pass of a
``--size``² image under ``torch.no_grad`` with ``--threads`` torch threads, best of ``--repeats`` (interleaved
across options, so a busy machine slows all alike). An ensemble option (``…,ensemble=N``) costs N forwards of its
member network (N × the member's time, not measured separately).

Usage::

    python benchmarks/model_choice.py runs/model_choice_v3            # table
    python benchmarks/model_choice.py runs/model_choice_v3 --json runs/model_choice_v3/cost.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch


def option_networks(study_dir: Path, results: pd.DataFrame) -> dict[str, dict]:
    """Per option label: the training config of one of its models (all folds and seeds share the network)."""
    out = {}
    for option, rows in results[results["status"] == "ok"].groupby("option", sort=False):
        record = json.loads((study_dir / "models" / rows["training"].iloc[0] / "training.json").read_text())
        size = int(rows["ensemble_size"].iloc[0]) if "ensemble_size" in rows else 1
        out[option] = {"model": record["config"].get("model", "sytwu_resunet"),
                       "model_config": record["config"].get("model_config", {}),
                       "patch_size": record["config"].get("patch_size"), "ensemble_size": size}
    return out


def forward_seconds(net: torch.nn.Module, size_px: int) -> float:
    x = torch.zeros(1, 1, size_px, size_px)
    with torch.no_grad():
        t = time.perf_counter()
        net(x)
        return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--size", type=int, default=512, help="image side of the timed forward pass (px)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--metric", default="dice")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from nanoseg.models.receptive import receptive_field
    from nanoseg.models.zoo import build_model, count_parameters
    from nanoseg.study import load_results, summarize

    torch.set_num_threads(args.threads)
    results = load_results(args.study_dir)
    summary = summarize(results, [args.metric])
    networks = option_networks(args.study_dir, results)
    built = {}
    for option, net in networks.items():
        module = build_model(net["model"], **net["model_config"]).eval()
        built[option] = module
        net.update(parameters=count_parameters(module), receptive_field_px=receptive_field(module))
    best = {option: float("inf") for option in built}
    for _ in range(args.repeats):
        for option, module in built.items():
            best[option] = min(best[option], forward_seconds(module, args.size))
    rows = []
    for option, net in networks.items():
        part = summary[summary["option"] == option]
        row = {"option": option, **{k: net[k] for k in ("model", "patch_size", "ensemble_size", "parameters",
                                                        "receptive_field_px")},
               "cpu_ns_per_px": best[option] * net["ensemble_size"] / args.size ** 2 * 1e9}
        for _, cell in part.iterrows():
            tag = "in_dist" if cell["train_set"] == cell["test_set"] else f"on_{cell['test_set']}"
            row[f"{args.metric}_{tag}"] = f"{cell[f'{args.metric}_mean']:.3f} ± {cell[f'{args.metric}_std']:.3f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    print(f"{args.study_dir}: {args.metric} mean ± sd over folds (and seeds); CPU: eager forward of a "
          f"{args.size}² image, {args.threads} thread(s), best of {args.repeats}; ensembles N × one member")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.0f}"))
    if args.json:
        args.json.write_text(table.to_json(orient="records", indent=2))
        print(f"→ {args.json}")


if __name__ == "__main__":
    from nanoseg.errors import NanosegError

    try:
        main()
    except NanosegError as exc:
        raise SystemExit(f"error: {exc}") from None
