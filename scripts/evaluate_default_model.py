"""Evaluate a trained checkpoint on its held-out test images per condition and (optionally) install it as
nanoseg's default model. Used by scripts/train_default_model.sh.

Per test image (the ``test`` ids of the run's ``split.json``, never seen in training or selection): resample to
the model's pixel size, run the card's preprocessing, predict, and score the hard Dice (particle probability
≥ 0.5, smoothing 1) against the resampled exact simulator mask. Scores are grouped by material, dose bin,
particle-size bin, pixel-size bin and detector, written into the card (``metrics.test_per_condition``) and
printed as a Markdown table for docs/models.md.

Held-out sets (``--heldout SET_DIR ...``, folders made by ``nanoseg simulate`` that no training or selection
saw): every image goes through the user's path, ``nanoseg.infer.predict(Micrograph(raw counts, pixel_size_nm,
dose_e_per_A2), model)`` (resampling, preprocessing and tiling as ``nanoseg predict`` does them), and its hard
Dice is scored on the image's own grid against the exact simulator mask; the per-set means go into the card
(``metrics.heldout``) and the per-image table next to the run (``heldout_per_image.csv``).

Usage: python scripts/evaluate_default_model.py RUN_DIR DATASET_DIR [DATASET_DIR ...] [--install DIR]
       [--extra-json FILE] [--heldout SET_DIR ...]
       python scripts/evaluate_default_model.py MODEL_DIR FRESH_DATASET_DIR ... --every-image
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nanoseg.datasets import open_dataset
from nanoseg.datasets.patches import prepare_image
from nanoseg.models import load_model
from nanoseg.models.checkpoint import read_card
from nanoseg.preprocess import Pipeline
from nanoseg.train import TrainingData

BINS = {
    "dose_e_per_A2": ([0, 150, 400, 1e9], ["< 150", "150–400", "≥ 400"]),
    "diameter_nm": ([0, 3, 6, 10, 1e9], ["< 3 nm", "3–6 nm", "6–10 nm", "≥ 10 nm"]),
    "pixel_size_nm": ([0, 0.025, 0.035, 0.05, 1], ["< 0.025", "0.025–0.035", "0.035–0.05", "≥ 0.05"]),
}


def hard_dice(prob: np.ndarray, mask: np.ndarray, smooth: float = 1.0) -> float:
    pred = prob >= 0.5
    truth = mask > 0
    return float((2 * np.sum(pred & truth) + smooth) / (pred.sum() + truth.sum() + smooth))


def predict_probability(module, image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = image.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    padded = np.pad(image, ((0, ph), (0, pw)), mode="reflect")
    with torch.no_grad():
        logits = module(torch.from_numpy(np.ascontiguousarray(padded, np.float32))[None, None])
    return torch.softmax(logits, dim=1)[0, 1, :h, :w].numpy()


def evaluate(run: Path, data: list[Path], *, every_image: bool = False) -> tuple[pd.DataFrame, dict]:
    """Score the run's held-out test images (``split.json``), or ``every_image`` of ``data`` (fresh sets)."""
    loaded = load_model(run)
    card = loaded.card
    training_data = TrainingData.open(data)  # the same image keys (``name:id`` for several sets) as training
    if every_image:
        test_ids = list(training_data.keys)
    else:
        test_ids = json.loads((run / "split.json").read_text())["test"]
    pipeline = Pipeline.from_spec(card.preprocessing)
    rows = []
    for image_id in test_ids:
        index, key = training_data.keys[image_id]
        ds = training_data.datasets[index]
        meta = ds.row(key)
        image, mask = prepare_image(ds.image(key), ds.mask(key), pixel_size_nm=float(meta["pixel_size_nm"]),
                                    to_pixel_size_nm=card.pixel_size_nm, pipeline=pipeline, image_id=key)
        prob = predict_probability(loaded.module, image, loaded.size_multiple)
        rows.append({"id": key, "hard_dice": hard_dice(prob, mask), **{k: meta.get(k) for k in
                     ("material", "dose_e_per_A2", "diameter_nm", "pixel_size_nm", "detector", "voltage_kV")}})
    table = pd.DataFrame(rows)
    for column, (edges, labels) in BINS.items():
        table[column + "_bin"] = pd.cut(table[column].astype(float), edges, labels=labels, right=False)
    per = {"all": {"n": len(table), "hard_dice_mean": float(table["hard_dice"].mean()),
                   "hard_dice_std": float(table["hard_dice"].std())}}
    for column in ("material", "dose_e_per_A2_bin", "diameter_nm_bin", "pixel_size_nm_bin", "detector"):
        per[column.removesuffix("_bin")] = {
            str(k): {"n": int(len(g)), "hard_dice_mean": float(g["hard_dice"].mean())}
            for k, g in table.groupby(column, observed=True)}
    return table, per


def score_heldout(model, sets: list[Path], *, progress: bool = True, **options) -> pd.DataFrame:
    """Hard Dice of every image of ``sets`` through :func:`nanoseg.infer.predict` (the user's path).

    One row per image: ``set`` (folder name), ``id``, ``hard_dice`` (probability ≥ 0.5 vs the exact mask, on
    the image's own grid, smoothing 1), ``estimated_dice`` / ``low_confidence`` when the prediction carries
    them, ``ood`` (any out-of-distribution flag), the image's drawn conditions and the quality estimate's
    features as ``quality_<name>`` (what scripts/calibrate_quality.py fits on). ``options`` go to ``predict``.
    """
    from nanoseg.infer import predict, resolve_models
    models = resolve_models(model)
    rows = []
    for set_dir in sets:
        ds = open_dataset(set_dir)
        keys = ds.ids
        for n, key in enumerate(keys):
            meta = ds.row(key)
            micrograph = ds.micrograph(key)
            pred = predict(micrograph, models, **options)
            truth = np.asarray(ds.mask(key)) > 0
            rows.append({"set": set_dir.name, "id": key, "hard_dice": hard_dice(pred.probability, truth),
                         "estimated_dice": getattr(pred, "estimated_dice", None),
                         "low_confidence": getattr(pred, "low_confidence", None),
                         "ood": bool(pred.out_of_distribution),
                         **{f"quality_{k}": v for k, v in pred.metadata.get("quality", {}).get("features", {}).items()},
                         **{k: meta.get(k) for k in ("material", "dose_e_per_A2", "diameter_nm", "pixel_size_nm",
                                                     "detector", "voltage_kV", "Cs_um", "support",
                                                     "support_thickness_nm")}})
            if progress:
                print(f"\r{set_dir.name}: {n + 1}/{len(keys)}", end="", flush=True)
        if progress:
            print()
    return pd.DataFrame(rows)


def heldout_summary(table: pd.DataFrame) -> dict:
    """Per-set mean hard Dice (and the mean over the shift sets, every set whose name starts with ``shift``)."""
    per = {name: {"n": int(len(g)), "hard_dice_mean": float(g["hard_dice"].mean()),
                  "hard_dice_min": float(g["hard_dice"].min()),
                  "fraction_below_0.7": float((g["hard_dice"] < 0.7).mean())}
           for name, g in table.groupby("set", sort=False)}
    shift = table[table["set"].str.startswith("shift")]
    if len(shift):
        per["shift_sets_mean"] = {"n": int(len(shift)), "hard_dice_mean": float(
            shift.groupby("set")["hard_dice"].mean().mean())}
    return per


def markdown(per: dict) -> str:
    lines = ["| condition | value | test images | hard Dice (mean) |", "|---|---|---|---|",
             f"| all | – | {per['all']['n']} | {per['all']['hard_dice_mean']:.3f} ± {per['all']['hard_dice_std']:.3f} |"]
    for cond, groups in per.items():
        if cond == "all":
            continue
        for value, g in groups.items():
            lines.append(f"| {cond} | {value} | {g['n']} | {g['hard_dice_mean']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path, nargs="+", help="the dataset folder(s) the run was trained on")
    parser.add_argument("--install", type=Path, default=None, help="copy weights + card here")
    parser.add_argument("--extra-json", type=Path, default=None,
                        help="JSON object merged into card.training (e.g. simulation wall time)")
    parser.add_argument("--every-image", action="store_true",
                        help="score every image of DATASET_DIR (a fresh set no model has seen) and only print: "
                             "the card is not changed")
    parser.add_argument("--heldout", type=Path, nargs="*", default=[],
                        help="held-out set folders scored through nanoseg.infer.predict (into metrics.heldout)")
    args = parser.parse_args()
    started = time.time()
    table, per = evaluate(args.run, args.data, every_image=args.every_image)
    if args.every_image:
        print(markdown(per))
        print(f"(evaluated {len(table)} images in {time.time() - started:.0f} s)")
        return
    table.to_csv(args.run / "test_per_image.csv", index=False)
    card_path = args.run / "card.json"
    card = read_card(card_path.read_text(), path=card_path)
    heldout = {}
    if args.heldout:
        held = score_heldout(args.run, args.heldout)
        held.to_csv(args.run / "heldout_per_image.csv", index=False)
        heldout = {"heldout": heldout_summary(held),
                   "heldout_protocol": "every image of each held-out set through nanoseg.infer.predict(Micrograph("
                                       "raw counts, pixel_size_nm, dose_e_per_A2), model) with default options; "
                                       "hard Dice (p >= 0.5, smoothing 1) on the image's own grid, averaged per set"}
        for name, g in heldout["heldout"].items():
            print(f"held-out {name}: n={g['n']} hard Dice {g['hard_dice_mean']:.3f}")
    metrics = {**card.metrics, **heldout, "test_per_condition": per,
               "test_protocol": "per held-out image at the model pixel size: resample + card preprocessing, "
                                "softmax ≥ 0.5, Dice with smoothing 1, averaged over images"}
    training = dict(card.training)
    if args.extra_json is not None:
        training.update(json.loads(args.extra_json.read_text()))
    card = card.model_copy(update={"metrics": metrics, "training": training})
    card_path.write_text(card.model_dump_json(indent=2))
    print(markdown(per))
    print(f"(evaluated {len(table)} test images in {time.time() - started:.0f} s)")
    if args.install is not None:
        args.install.mkdir(parents=True, exist_ok=True)
        for name in ("weights.safetensors", "card.json"):
            shutil.copy2(args.run / name, args.install / name)
        load_model(args.install)  # the installed copy loads
        print(f"installed → {args.install}")


if __name__ == "__main__":
    main()
