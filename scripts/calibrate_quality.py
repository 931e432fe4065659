"""Calibrate a model's per-image quality estimate (``Prediction.estimated_dice``) on held-out simulated sets.

Every image of every SET_DIR (folders made by ``nanoseg simulate``: images + exact masks) is scored by
``evaluate_default_model.score_heldout``: it runs through ``nanoseg.infer.predict`` exactly as a user's image would
(raw image at its own pixel size and dose, default options: threshold 0.5, no TTA, out-of-distribution checks on)
and its true hard Dice is scored against the exact mask on the input grid (particle probability ≥ 0.5,
smoothing 1). The map features → true Dice (``nanoseg.infer.quality.fit_calibration``) is
cross-validated — leave one set out with two or more sets, k-fold by image with one — and the script prints, for the
cross-validated estimates and for the uncalibrated estimate (the expected Dice):

* Spearman(estimated, true Dice)                                 (issue #14 target ≥ 0.7)
* the fraction of images with true Dice < 0.7 that are flagged    (target ≥ 90 %)
* the fraction of images with true Dice ≥ 0.85 that are flagged   (target ≤ 15 %)

("flagged" = estimated Dice < LOW_CONFIDENCE_DICE = 0.8). The calibration fitted on all images is written into the
model card (``quality_calibration``) with --write-card, together with the cross-validated numbers.

Usage: python scripts/calibrate_quality.py MODEL_DIR SET_DIR [SET_DIR ...] [--write-card] [--json OUT]
       [--folds K] [--max-images N] [--features soft_dice,margin_inside,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_default_model import score_heldout  # noqa: E402  (the same loading and scoring as the card's)

from nanoseg.datasets import open_dataset  # noqa: E402
from nanoseg.errors import NanosegError  # noqa: E402
from nanoseg.infer.quality import (  # noqa: E402
    FEATURES,
    LOW_CONFIDENCE_DICE,
    apply_calibration,
    area_cap,
    estimate_from_features,
    fit_calibration,
    spearman,
)
from nanoseg.models import load_model  # noqa: E402
from nanoseg.models.checkpoint import read_card  # noqa: E402

BAD_DICE, GOOD_DICE = 0.7, 0.85  # the classes of "failed" and "good" images


def score_images(model_dir: Path, sets: list[Path], *, max_images: int | None = None,
                 progress: bool = True) -> list[dict]:
    """One row per image (``evaluate_default_model.score_heldout``: the user's predict path): set, id, true hard
    Dice, the uncalibrated estimate and the quality features. A calibration already in the card is ignored."""
    loaded = load_model(model_dir)
    loaded = dataclasses.replace(loaded, card=loaded.card.model_copy(update={"quality_calibration": None}))
    for set_dir in sets:
        open_dataset(set_dir)  # one clear error for a folder that is not a simulated set, before any work
    table = score_heldout(loaded, sets, progress=progress, quality_view=True)  # every feature, view agreement too
    if max_images is not None:
        table = table.groupby("set", sort=False).head(max_images)
    return [{"set": r["set"], "id": r["id"], "true_dice": float(r["hard_dice"]),
             "uncalibrated_dice": float(r["estimated_dice"]),
             **{k: r.get(f"quality_{k}") for k in FEATURES}} for r in table.to_dict(orient="records")]


def _features(row: dict) -> dict:
    return {k: (float("nan") if row.get(k) is None else float(row[k])) for k in FEATURES}


def cross_validate(rows: list[dict], *, folds: int = 5, features: tuple[str, ...] = FEATURES) -> tuple[np.ndarray, str]:
    """Held-out estimates: leave one set out (≥ 2 sets) or k-fold by image; returns (estimates, scheme)."""
    names = sorted({r["set"] for r in rows})
    if len(names) >= 2:
        groups, scheme = np.array([names.index(r["set"]) for r in rows]), f"leave one set out ({len(names)} sets)"
    else:
        k = max(2, min(int(folds), len(rows)))
        groups, scheme = np.random.default_rng(0).permutation(len(rows)) % k, f"{k}-fold by image (1 set)"
    estimates = np.full(len(rows), np.nan)
    for g in np.unique(groups):
        train = [i for i in range(len(rows)) if groups[i] != g]
        if len(train) < 3:
            raise NanosegError(f"too few images to cross-validate ({len(rows)})", hint="simulate more held-out images")
        cal = fit_calibration([_features(rows[i]) for i in train], [rows[i]["true_dice"] for i in train],
                              feature_names=features)
        for i in np.flatnonzero(groups == g):
            f = _features(rows[i])
            estimates[i] = min(apply_calibration(cal, f), area_cap(f["area_fraction"]))
    return estimates, scheme


def flag_rates(estimated, true) -> dict:
    """Spearman and the flagged fractions of the bad (< 0.7) and good (≥ 0.85) images."""
    est, tru = np.asarray(estimated, float), np.asarray(true, float)
    flagged = est < LOW_CONFIDENCE_DICE
    bad, good = tru < BAD_DICE, tru >= GOOD_DICE
    return {"spearman": spearman(est, tru),
            "n_bad": int(bad.sum()), "flagged_of_bad": float(flagged[bad].mean()) if bad.any() else None,
            "n_good": int(good.sum()), "flagged_of_good": float(flagged[good].mean()) if good.any() else None}


def _plain(value):
    """JSON-ready: NaN → None, numpy scalars → Python numbers (recursively)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="checkpoint folder (card.json + weights)")
    parser.add_argument("sets", type=Path, nargs="+", help="held-out simulated set folder(s) of `nanoseg simulate`")
    parser.add_argument("--write-card", action="store_true", help="store the calibration in MODEL/card.json")
    parser.add_argument("--json", type=Path, default=None, help="write per-image rows and the summary here")
    parser.add_argument("--folds", type=int, default=5, help="k of the k-fold by image when one set is given")
    parser.add_argument("--max-images", type=int, default=None, help="use at most this many images per set")
    parser.add_argument("--features", default=",".join(FEATURES),
                        help="comma-separated features to fit (default: all). Without view_dice, predict skips the "
                             "second view (no extra inference cost)")
    args = parser.parse_args(argv)
    started = time.time()
    features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    unknown = sorted(set(features) - set(FEATURES))
    if unknown or not features:
        raise SystemExit(f"error: unknown --features {unknown or '(none)'}; choose from {', '.join(FEATURES)}")
    card_path = args.model / "card.json"
    if not card_path.exists():
        raise SystemExit(f"{args.model}: not a checkpoint folder (no card.json) — give the folder of a trained model")
    try:
        rows = score_images(args.model, args.sets, max_images=args.max_images)
        cv, scheme = cross_validate(rows, folds=args.folds, features=features)
        names = sorted({r["set"] for r in rows})
        fitted_on = {"sets": names, "set_dirs": [str(s) for s in args.sets],
                     "n_images_per_set": {n: sum(r["set"] == n for r in rows) for n in names},
                     "protocol": "nanoseg.infer.predict defaults (threshold 0.5, no TTA, ood checks) on the raw "
                                 "image; true hard Dice (smoothing 1) against the exact mask on the input grid"}
        calibration = fit_calibration([_features(r) for r in rows], [r["true_dice"] for r in rows],
                                      feature_names=features, fitted_on=fitted_on)
    except NanosegError as exc:
        raise SystemExit(f"error: {exc}") from None
    true = [r["true_dice"] for r in rows]
    summary = {"n_images": len(rows), "cross_validation": scheme, "calibrated_cv": flag_rates(cv, true),
               "uncalibrated": flag_rates([r["uncalibrated_dice"] for r in rows], true),
               "targets": {"spearman": ">= 0.7", "flagged_of_bad": ">= 0.90", "flagged_of_good": "<= 0.15"},
               "seconds": round(time.time() - started, 1)}
    calibration["cross_validation"] = _plain({"scheme": scheme, **summary["calibrated_cv"]})
    calibration = _plain(calibration)
    for row, estimate in zip(rows, cv, strict=True):
        row["calibrated_cv_dice"] = float(estimate)
        row["calibrated_dice"] = estimate_from_features(_features(row), calibration).estimated_dice
    print(f"{len(rows)} images from {', '.join(names)}; cross-validation: {scheme}")
    print(f"flagged = estimated Dice < {LOW_CONFIDENCE_DICE}; bad = true Dice < {BAD_DICE}, good = ≥ {GOOD_DICE}")
    print("| estimate | Spearman | flagged of bad | flagged of good |\n|---|---|---|---|")
    for label, m in (("calibrated (cross-validated)", summary["calibrated_cv"]),
                     ("uncalibrated (expected Dice)", summary["uncalibrated"])):
        print(f"| {label} | {m['spearman']:.3f} | {_pct(m['flagged_of_bad'])} of {m['n_bad']} | "
              f"{_pct(m['flagged_of_good'])} of {m['n_good']} |")
    print(f"(targets: Spearman ≥ 0.7, ≥ 90 % of bad flagged, ≤ 15 % of good flagged; {summary['seconds']} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(_plain({"summary": summary, "calibration": calibration, "images": rows}),
                                        indent=2))
    if args.write_card:
        card = read_card(card_path.read_text(), path=card_path)
        card_path.write_text(card.model_copy(update={"quality_calibration": calibration}).model_dump_json(indent=2))
        print(f"calibration written → {card_path}")
    return {"summary": summary, "calibration": calibration, "images": rows}


if __name__ == "__main__":
    main()
