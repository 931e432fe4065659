"""The Horwath et al. (2020) study, reproducible in one command: architectures × input blur × label source.

Protocol (``examples/studies/horwath.yaml``, a ``nanoseg.study`` spec):

1. Simulate a training **pool** and a separate fixed **test** set of in situ-like frames (many small Au
   particles; the simulator's exact masks are the ground truth).
2. Derive the training sets ``<labels>_s<σ>``: the pool's images blurred by a Gaussian of σ px (labels
   unchanged, Horwath's input blur) with either the simulator's **exact** masks or the masks of Horwath's
   classical **auto**-labeler (``nanoseg.preprocess.auto_label`` on the unblurred frame). Their paths in the spec
   are placeholders ``derived/<name>``; :func:`run_horwath` writes them under ``OUT/data/<name>``.
3. Train every architecture of the sweep on every training set (``nanoseg.study.run_study``: folds, Dask).
4. Evaluate every trained model on the **unblurred** test frames against the exact masks: precision / recall / F1
   vs threshold and at Otsu, particle-size distributions vs ground truth (``nanoseg.evaluate``), the frequency
   ablation and the raw-output statistics (``nanoseg.explain``).
5. Measure how the auto-labels differ from the exact labels (:func:`compare_labels`).

Everything lands in ``OUT/`` as CSV tables, figures and ``OUT/report.html``. Finished trainings, evaluations
and derived datasets are reused, so an interrupted run resumes.

Command line::

    nanoseg explain-study examples/studies/horwath.yaml --out runs/horwath --size small

Example
-------
>>> parse_derived("auto_s2")
('auto', 2.0)
>>> parse_derived("exact_s0.5"), parse_derived("pool")
(('exact', 0.5), None)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nanoseg._util import atomic_path, progress_iter
from nanoseg.errors import NanosegError

DERIVED_PREFIX = "derived/"
_DERIVED = re.compile(r"^(exact|auto)_s(\d+(?:\.\d+)?)$")
POOL, TEST = "pool", "test"
# bands drawn against the training blur: finest detail removed, particle-scale contrast removed, and the lattice
KEY_BANDS = ("low-pass: keep periods ≥ 3 px", "low-pass: keep periods ≥ 12 px", "high-pass: keep periods < 16 px")
KEY_BAND_PREFIXES = ("low-pass below lattice", "Bragg only")


def parse_derived(name: str) -> tuple[str, float] | None:
    """``("exact" | "auto", σ px)`` for a derived training-set name such as ``auto_s2``, else None."""
    match = _DERIVED.match(name)
    return (match.group(1), float(match.group(2))) if match else None


# --------------------------------------------------------------------------------------------- datasets
def derive_dataset(pool_dir: str | os.PathLike, out_dir: str | os.PathLike, *, labels: str, sigma_px: float,
                   auto_label_options: dict[str, Any] | None = None, progress: bool = False) -> Path:
    """A training set from the pool: inputs blurred by ``sigma_px``, masks exact or from the auto-labeler.

    The auto-labeler sees the *unblurred* frame (labels do not change with the input blur, as in the paper).
    Images already written are skipped (resume).
    """
    from nanoseg.datasets.store import DatasetWriter, open_dataset
    from nanoseg.preprocess import auto_label, gaussian_blur

    if labels not in ("exact", "auto"):
        raise NanosegError(f"unknown label source {labels!r}", hint="use 'exact' or 'auto'")
    if not np.isfinite(sigma_px) or sigma_px < 0:
        raise NanosegError(f"input blur σ must be ≥ 0 px, got {sigma_px}")
    pool = open_dataset(pool_dir)
    with DatasetWriter(out_dir, info={"derived_from": str(pool_dir), "labels": labels,
                                      "input_blur_sigma_px": sigma_px}) as writer:
        for image_id in progress_iter(pool.ids, f"deriving {labels}_s{sigma_px:g}", enabled=progress):
            if writer.has(image_id):
                continue
            image = pool.image(image_id)
            if labels == "exact":
                mask, instances = pool.mask(image_id), pool.instances(image_id)
            else:
                mask, instances = auto_label(image, **(auto_label_options or {})), None
            row = {k: v for k, v in pool.row(image_id).items() if k not in ("id", "height_px", "width_px")}
            row.update(labels=labels, input_blur_sigma_px=float(sigma_px))
            writer.add(image_id, gaussian_blur(image, sigma_px=sigma_px), mask, row, instances=instances)
    return Path(out_dir)


@dataclass
class LabelComparison:
    """Auto-labels vs exact labels: per image, per particle-size bin, a one-row summary, and error counts."""

    per_image: pd.DataFrame
    by_size: pd.DataFrame
    summary: pd.DataFrame
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)


def compare_labels(dataset_dir: str | os.PathLike, *, auto_label_options: dict[str, Any] | None = None,
                   size_bins_nm: tuple[float, ...] = (0, 1, 2, 3, 4, 6, 10, np.inf),
                   iou_threshold: float = 0.5, progress: bool = False) -> LabelComparison:
    """How Horwath's classical auto-labeler differs from the exact (simulator) masks of a dataset.

    Per image: pixel Dice / precision / recall of the auto mask against the exact mask, particle counts,
    one-to-one matches at ``iou_threshold``, and the mean equivalent diameter of matched particles (size bias).
    Per exact-particle size bin: the fraction found (matched) and the diameter error of the found ones.
    Error kinds: exact particles missed entirely (no auto pixel), merged (one auto particle covering ≥ 2 exact
    particles), false positives (auto particles touching no exact particle), border particles missed.
    """
    from skimage.measure import label as cc_label

    from nanoseg.datasets.store import open_dataset
    from nanoseg.evaluate import dice, match_instances, particle_sizes
    from nanoseg.evaluate.pixel import confusion, scores_from_counts
    from nanoseg.preprocess import auto_label

    ds = open_dataset(dataset_dir)
    per_image, particles, errors = [], [], []
    for image_id in progress_iter(ds.ids, "comparing labels", enabled=progress):
        image = ds.image(image_id)
        exact = ds.mask(image_id) > 0
        exact_inst = ds.instances(image_id)
        exact_lab = exact_inst if exact_inst is not None else cc_label(exact)
        auto = auto_label(image, **(auto_label_options or {})) > 0
        auto_lab = cc_label(auto)
        pixel = float(ds.row(image_id).get("pixel_size_nm") or np.nan)
        scores = scores_from_counts(confusion(auto, exact))
        match = match_instances(exact_lab, auto_lab, iou_threshold=iou_threshold)
        # every particle, as labelled here (border ones are counted separately below)
        true_sizes = particle_sizes(exact_lab, pixel_size_nm=pixel, exclude_border=False,
                                    split_touching=False).set_index("label")
        auto_sizes = particle_sizes(auto_lab, pixel_size_nm=pixel, exclude_border=False,
                                    split_touching=False).set_index("label")
        matched = {t: p for t, p, _ in match.pairs}
        # error kinds
        exact_ids = [int(i) for i in np.unique(exact_lab) if i]
        auto_ids = [int(i) for i in np.unique(auto_lab) if i]
        missed = [i for i in exact_ids if not auto[exact_lab == i].any()]
        covered_by: dict[int, set[int]] = {}
        for i in exact_ids:
            for a in np.unique(auto_lab[exact_lab == i]):
                if a:
                    covered_by.setdefault(int(a), set()).add(i)
        merged = [a for a, ts in covered_by.items() if len(ts) >= 2]
        false_pos = [a for a in auto_ids if not exact[auto_lab == a].any()]
        border = {i for i in exact_ids
                  if np.any((exact_lab == i)[[0, -1], :]) or np.any((exact_lab == i)[:, [0, -1]])}
        errors.append({"id": image_id, "n_exact": len(exact_ids), "n_auto": len(auto_ids),
                       "missed_entirely": len(missed), "merged_auto_particles": len(merged),
                       "exact_particles_in_merges": sum(len(covered_by[a]) for a in merged),
                       "false_positive_particles": len(false_pos),
                       "border_particles": len(border), "border_missed": len(border - set(matched))})
        for t in exact_ids:
            d_true = float(true_sizes.loc[t, "diameter_nm"]) if t in true_sizes.index else np.nan
            p = matched.get(t)
            d_auto = float(auto_sizes.loc[p, "diameter_nm"]) if p is not None and p in auto_sizes.index else np.nan
            particles.append({"id": image_id, "label": t, "diameter_true_nm": d_true, "found": p is not None,
                              "diameter_auto_nm": d_auto, "touches_border": t in border})
        d_pairs = [(float(true_sizes.loc[t, "diameter_nm"]), float(auto_sizes.loc[p, "diameter_nm"]))
                   for t, p in matched.items() if t in true_sizes.index and p in auto_sizes.index]
        per_image.append({
            "id": image_id, "dice": dice(auto, exact), "precision": scores["precision"],
            "recall": scores["recall"], "area_ratio_auto_over_exact": float(auto.sum() / max(exact.sum(), 1)),
            "n_exact": match.n_true, "n_auto": match.n_pred, "matched": match.tp,
            "particle_recall": match.recall, "particle_precision": match.precision,
            "mean_diameter_exact_matched_nm": float(np.mean([a for a, _ in d_pairs])) if d_pairs else np.nan,
            "mean_diameter_auto_matched_nm": float(np.mean([b for _, b in d_pairs])) if d_pairs else np.nan,
        })
    per_image_df = pd.DataFrame(per_image)
    parts = pd.DataFrame(particles)
    errors_df = pd.DataFrame(errors)
    if len(parts):
        parts["size_bin_nm"] = pd.cut(parts["diameter_true_nm"], bins=list(size_bins_nm), right=False)
        by_size = (parts.groupby("size_bin_nm", observed=True)
                   .agg(n_exact=("label", "size"), fraction_found=("found", "mean"),
                        mean_diameter_true_nm=("diameter_true_nm", "mean"),
                        mean_diameter_auto_nm=("diameter_auto_nm", "mean"))
                   .reset_index())
        by_size["diameter_bias_nm"] = by_size["mean_diameter_auto_nm"] - by_size["mean_diameter_true_nm"]
        by_size["size_bin_nm"] = by_size["size_bin_nm"].astype(str)
        found = parts[parts["found"]]
        bias = float((found["diameter_auto_nm"] - found["diameter_true_nm"]).mean()) if len(found) else np.nan
    else:
        by_size, bias = pd.DataFrame(), np.nan
    summary = pd.DataFrame([{
        "images": len(per_image_df),
        "dice_mean": per_image_df["dice"].mean(), "dice_std": per_image_df["dice"].std(ddof=0),
        "dice_median": per_image_df["dice"].median(),
        "pixel_precision": per_image_df["precision"].mean(), "pixel_recall": per_image_df["recall"].mean(),
        "area_ratio_auto_over_exact_median": per_image_df["area_ratio_auto_over_exact"].median(),
        "exact_particles": int(errors_df["n_exact"].sum()) if len(errors_df) else 0,
        "auto_particles": int(errors_df["n_auto"].sum()) if len(errors_df) else 0,
        "particle_recall_iou50": float(parts["found"].mean()) if len(parts) else np.nan,
        "diameter_bias_matched_nm": bias,
        "missed_entirely": int(errors_df["missed_entirely"].sum()) if len(errors_df) else 0,
        "merged_auto_particles": int(errors_df["merged_auto_particles"].sum()) if len(errors_df) else 0,
        "false_positive_particles": int(errors_df["false_positive_particles"].sum()) if len(errors_df) else 0,
    }])
    return LabelComparison(per_image=per_image_df, by_size=by_size, summary=summary, errors=errors_df)


# --------------------------------------------------------------------------------------------- spec
def resolve_spec(spec_path: str | os.PathLike, out_dir: str | os.PathLike, *, size: str | None = None
                 ) -> tuple[dict[str, Any], dict[str, tuple[str, float]]]:
    """The study spec as a dict with the derived datasets' placeholder paths replaced by ``OUT/data/<name>``.

    Returns the dict and ``{name: (labels, σ)}`` of the derived sets. The spec needs a ``pool`` preset
    dataset (the training images), a ``test`` dataset and derived sets named ``exact_s<σ>`` / ``auto_s<σ>``.
    """
    from nanoseg.study import load_spec

    spec = load_spec(spec_path, size=size).model_dump()
    # the size patch is applied; keep its name (results rows carry it) with an empty patch
    spec["sizes"] = {spec["size"]: {}} if spec.get("size") else {}
    derived = {}
    for name, ds in spec["datasets"].items():
        path = ds.get("path")
        if path is not None and str(path).replace("\\", "/").rstrip("/").endswith(DERIVED_PREFIX + name):
            parsed = parse_derived(name)
            if parsed is None:
                raise NanosegError(f"derived dataset {name!r} must be named exact_s<σ> or auto_s<σ>",
                                   path=spec_path)
            derived[name] = parsed
            ds["path"] = str(Path(out_dir).resolve() / "data" / name)
    if POOL not in spec["datasets"] or spec["datasets"][POOL].get("preset") is None:
        raise NanosegError("the Horwath spec needs a 'pool' dataset with a simulator preset", path=spec_path)
    if not derived:
        raise NanosegError(f"no derived training sets (path: {DERIVED_PREFIX}<name>) in the spec", path=spec_path)
    return spec, derived


# --------------------------------------------------------------------------------------------- evaluation
def _trained_models(study_dir: Path) -> pd.DataFrame:
    from nanoseg.study import load_results

    results = load_results(study_dir)
    if results.empty:
        return results
    ok = results[results["status"] == "ok"].drop_duplicates("training")
    rows = []
    for row in ok.itertuples():
        record = json.loads((study_dir / "models" / row.training / "training.json").read_text())
        rows.append({"training": row.training, "train_set": row.train_set, "fold": row.fold, "seed": row.seed,
                     "model": getattr(row, "opt_model", None) or record["config"].get("model"),
                     "checkpoint": record["checkpoint"]})
    return pd.DataFrame(rows)


def evaluate_model(checkpoint: str | os.PathLike, test_dir: str | os.PathLike, *, max_ablation_images: int = 4,
                   threshold: float = 0.5, lattice_spacings_nm: Sequence[float] | None = None) -> dict[str, Any]:
    """Horwath's evaluation of one checkpoint on unblurred test frames (exact masks).

    Returns ``summary`` (one row: Dice/precision/recall/F1 at ``threshold`` and at Otsu, particle F1, size
    distribution errors), ``thresholds`` (mean ± std over frames vs threshold, with Otsu), ``ablation`` (the
    frequency ablation on the first ``max_ablation_images`` frames), ``raw`` (raw-output statistics of frame 0)
    and ``diameters`` (predicted and true particle diameters, nm). ``lattice_spacings_nm`` (e.g. Au
    ``[0.235, 0.204]``) fixes the band-stop and Bragg ablations' lattice instead of finding it in the spectrum.
    """
    from nanoseg.datasets.store import open_dataset
    from nanoseg.evaluate import evaluate_dataset, model_predictor
    from nanoseg.explain import prepare_input
    from nanoseg.explain.ablation import frequency_ablation, lattice_frequencies
    from nanoseg.explain.maps import raw_output_maps, raw_output_stats
    from nanoseg.models import load_model

    model = load_model(checkpoint)
    ds = open_dataset(test_dir)
    predictor = model_predictor(ds, model, tile_size=None, ood=False, device="cpu", assume_model_pixel_size=True)
    cache = {image_id: predictor(image_id) for image_id in ds.ids}
    at = evaluate_dataset(ds, cache, threshold=threshold, n_worst=0)
    otsu = evaluate_dataset(ds, cache, threshold="otsu", n_worst=0)
    summary = {}
    for tag, ev in (("", at), ("otsu_", otsu)):
        per = ev.per_image
        for name in ("dice", "precision", "recall", "f1"):
            if name in per:
                summary[f"{tag}{name}"] = float(per[name].mean())
                summary[f"{tag}{name}_std"] = float(per[name].std(ddof=0))
    if "f1@0.5" in at.per_image:  # particles matched one-to-one at IoU ≥ 0.5
        summary["particle_f1"] = float(at.per_image["f1@0.5"].mean())
    sizes = at.size_comparison
    for key in ("n_pred", "n_ref", "mean_pred_nm", "mean_ref_nm", "mean_error_nm", "relative_mean_error",
                "ks_statistic", "wasserstein_nm"):
        if key in sizes:
            summary[f"size_{key}"] = sizes[key]
    prepared = [prepare_input(model, ds.micrograph(i), ds.mask(i)) for i in ds.ids[:max(1, max_ablation_images)]]
    pixel = float(np.mean([p.pixel_size_nm for p in prepared])) if all(p.pixel_size_nm for p in prepared) else None
    lattice = lattice_frequencies(lattice_spacings_nm, pixel) if lattice_spacings_nm else None
    ablation = frequency_ablation(model, [p.image for p in prepared], [p.mask for p in prepared],
                                  pixel_size_nm=pixel, lattice=lattice)
    raw = raw_output_stats(raw_output_maps(model, prepared[0].image), prepared[0].mask)
    diameters = pd.concat([
        at.particles_pred.assign(kind="predicted")[["kind", "diameter_nm"]] if len(at.particles_pred) else None,
        at.particles_true.assign(kind="truth")[["kind", "diameter_nm"]] if len(at.particles_true) else None,
    ]) if (len(at.particles_pred) or len(at.particles_true)) else pd.DataFrame(columns=["kind", "diameter_nm"])
    lattice = ablation.attrs.get("lattice_frequencies_cycles_per_px", [])
    ablation.attrs = {}
    summary["n_lattice_peaks"] = len(lattice)
    return {"summary": summary, "thresholds": at.thresholds, "ablation": ablation, "raw": raw,
            "diameters": diameters}


def _cached_evaluation(row, test_dir: Path, cache_dir: Path, max_ablation_images: int,
                       lattice_spacings_nm: Sequence[float] | None = None) -> dict[str, Any]:
    path = cache_dir / f"{row.training}.json"
    settings = {"max_ablation_images": max_ablation_images,
                "lattice_spacings_nm": [float(x) for x in lattice_spacings_nm or []]}
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("settings", settings) == settings:  # evaluations cached before settings were kept count
            return {"summary": data["summary"], **{k: pd.DataFrame(v["data"], columns=v["columns"])
                                                   for k, v in data["tables"].items()}}
    result = evaluate_model(row.checkpoint, test_dir, max_ablation_images=max_ablation_images,
                            lattice_spacings_nm=lattice_spacings_nm)
    tables = {k: v for k, v in result.items() if isinstance(v, pd.DataFrame)}
    payload = {"summary": result["summary"], "settings": settings,
               "tables": {k: json.loads(v.to_json(orient="split", index=False)) for k, v in tables.items()}}
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, default=float))
    return {"summary": result["summary"], **tables}


@dataclass
class HorwathResult:
    """Tables of the Horwath study (also written as CSV under ``OUT/``) and the report path."""

    out_dir: Path
    report: Path | None
    tables: dict[str, pd.DataFrame]


def run_horwath(spec_path: str | os.PathLike, out_dir: str | os.PathLike, *, size: str | None = None,
                scheduler: str | None = "sync", n_workers: int | None = None, max_ablation_images: int = 4,
                lattice_spacings_nm: Sequence[float] | None = None, progress: bool = True) -> HorwathResult:
    """Run (or resume) the Horwath study of ``spec_path`` into ``out_dir`` and write ``out_dir/report.html``.

    Parameters
    ----------
    spec_path : ``examples/studies/horwath.yaml`` or a spec of the same shape.
    size : the spec's ``sizes`` entry (``small``, ``full``).
    scheduler : passed to ``nanoseg.study.run_study`` (``"sync"`` = this process; ``None`` = a LocalCluster).
    max_ablation_images : test frames used for the frequency ablation of every model.
    lattice_spacings_nm : known lattice spacings for the band-stop and Bragg ablations (e.g. Au
        ``[0.235, 0.204]``); default: the peaks found in the test frames' power spectrum.
    """
    from nanoseg.study import load_spec, run_study
    from nanoseg.study.data import prepare_dataset

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec_dict, derived = resolve_spec(spec_path, out, size=size)
    spec = load_spec(spec_dict)
    spec_dir = Path(spec_path).resolve().parent
    pool_dir = prepare_dataset(spec, POOL, out / "prep", spec_dir=spec_dir, progress=progress)
    if lattice_spacings_nm:  # refuse unresolved spacings now, not after every training has run
        from nanoseg.datasets.store import open_dataset
        from nanoseg.explain.ablation import lattice_frequencies

        try:
            lattice_frequencies(lattice_spacings_nm, float(open_dataset(pool_dir).meta["pixel_size_nm"].mean()))
        except NanosegError as exc:
            raise NanosegError(f"{exc.message} (the pool frames' mean pixel size)", path=pool_dir,
                               hint=exc.hint) from None
    for name, (labels, sigma) in derived.items():
        derive_dataset(pool_dir, spec_dict["datasets"][name]["path"], labels=labels, sigma_px=sigma,
                       progress=progress)
    with atomic_path(out / "spec.resolved.json") as tmp:
        tmp.write_text(json.dumps(spec_dict, indent=2, default=str))
    # the study: trainings on the derived sets, its own Dice rows on the test set
    full_spec = spec_dict
    spec_dict = {**spec_dict, "datasets": {k: v for k, v in spec_dict["datasets"].items() if k != POOL}}
    run_study(spec_dict, out / "study", scheduler=scheduler, n_workers=n_workers, progress=progress,
              descriptors=False)
    test_dir = prepare_dataset(load_spec(spec_dict), TEST, out / "study", spec_dir=spec_dir, progress=False)

    tables: dict[str, pd.DataFrame] = {}
    comparison = compare_labels(pool_dir, progress=progress)
    tables.update(labels_summary=comparison.summary, labels_by_size=comparison.by_size,
                  labels_per_image=comparison.per_image, labels_errors=comparison.errors)

    models = _trained_models(out / "study")
    if models.empty:
        raise NanosegError("no trained model finished", path=out / "study", hint="see the study's results table")
    summaries, sweeps, ablations, raws, diameters = [], [], [], [], []
    for row in progress_iter(list(models.itertuples()), "evaluating models", enabled=progress):
        labels, sigma = derived.get(row.train_set, (row.train_set, np.nan))
        keys = {"labels": labels, "blur_sigma_px": sigma, "model": row.model, "fold": row.fold, "seed": row.seed}
        result = _cached_evaluation(row, Path(test_dir), out / "evaluations", max_ablation_images,
                                    lattice_spacings_nm)
        summaries.append({**keys, **result["summary"]})
        sweeps.append(result["thresholds"].assign(**keys))
        ablations.append(result["ablation"].assign(**keys))
        raws.append(result["raw"].assign(**keys))
        diameters.append(result["diameters"].assign(**keys))
    tables["per_model"] = pd.DataFrame(summaries)
    tables["thresholds"] = pd.concat(sweeps, ignore_index=True)
    tables["ablation"] = pd.concat(ablations, ignore_index=True)
    tables["raw_outputs"] = pd.concat(raws, ignore_index=True)
    tables["diameters"] = pd.concat(diameters, ignore_index=True)
    tables.update(_aggregate(tables))
    for name, table in tables.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    report = _write_report(out, tables, full_spec, derived, size)
    return HorwathResult(out_dir=out, report=report, tables=tables)


GROUP = ["labels", "blur_sigma_px", "model"]


def _aggregate(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Means (and std over folds) per label source × blur × model."""
    per_model = tables["per_model"]
    metrics = [c for c in ("dice", "precision", "recall", "f1", "otsu_dice", "otsu_f1", "particle_f1",
                           "size_mean_error_nm", "size_relative_mean_error", "size_ks_statistic",
                           "size_n_pred", "size_n_ref") if c in per_model]
    grouped = per_model.groupby(GROUP)[metrics]
    main = grouped.mean().add_suffix("").reset_index()
    stds = grouped.std(ddof=0).add_suffix("_fold_std").reset_index(drop=True)
    main = pd.concat([main, stds[[f"{m}_fold_std" for m in ("dice", "f1") if f"{m}_fold_std" in stds]]], axis=1)
    main.insert(3, "n_models", grouped.size().to_numpy())
    abl = tables["ablation"]
    drops = (abl.groupby(GROUP + ["band"], sort=False)["drop"].mean().unstack("band").reset_index())
    band_cols = [c for c in drops.columns if c not in GROUP]
    ordered = [b for b in abl["band"].drop_duplicates() if b in band_cols and b != "none"]
    drops = drops[GROUP + ordered]
    ref = abl[abl["band"] == "none"].groupby(GROUP)["dice"].mean().rename("dice_unablated").reset_index()
    drops = ref.merge(drops, on=GROUP)
    th = tables["thresholds"]
    curve_cols = [c for c in th.columns if c.endswith("_mean")]
    curves = th.groupby(GROUP + ["threshold_name"], sort=False)[curve_cols].mean().reset_index()
    return {"summary": main, "ablation_drops": drops, "threshold_curves": curves}


def _fmt_table(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(digits)
    return out


def _write_report(out: Path, tables: dict[str, pd.DataFrame], spec: dict[str, Any], derived: dict, size) -> Path:
    from nanoseg.report import Section, write_report
    from nanoseg.report.figures import figure, save_figure

    figs = []
    # F1 vs threshold, one panel per (labels, blur)
    curves = tables["threshold_curves"]
    f1_col = "f1_mean" if "f1_mean" in curves else None
    if f1_col is not None and len(curves):
        panels = curves[["labels", "blur_sigma_px"]].drop_duplicates().sort_values(["labels", "blur_sigma_px"])
        fig, axes = figure(len(panels), size=3.3)
        for ax, (_, panel) in zip(axes[0], panels.iterrows(), strict=False):
            part = curves[(curves["labels"] == panel["labels"]) & (curves["blur_sigma_px"] == panel["blur_sigma_px"])]
            for model, rows in part.groupby("model"):
                numeric = rows[rows["threshold_name"] != "otsu"]
                line, = ax.plot(numeric["threshold_name"].astype(float), numeric[f1_col], marker=".", label=model)
                otsu = rows[rows["threshold_name"] == "otsu"]
                if len(otsu):  # Otsu: a star at its mean threshold
                    ax.plot(otsu["threshold_mean"], otsu[f1_col], marker="*", ms=9, color=line.get_color())
            ax.set_title(f"{panel['labels']} labels, σ = {panel['blur_sigma_px']:g}", fontsize=9)
            ax.set_xlabel("softmax threshold")
            ax.set_ylim(0, 1)
        axes[0, 0].set_ylabel("pixel F1 (mean over test frames; ★ Otsu)")
        axes[0, -1].legend(fontsize=7)
        figs.append((save_figure(fig, out / "f1_vs_threshold.png"), "pixel F1 vs threshold per model"))
    # ablation drops vs blur
    drops = tables["ablation_drops"]
    key_bands = [b for b in drops.columns if b in KEY_BANDS or str(b).startswith(KEY_BAND_PREFIXES)]
    if key_bands:
        fig, axes = figure(len(key_bands), size=3.3)
        for ax, band in zip(axes[0], key_bands, strict=False):
            for (labels, model), rows in drops.groupby(["labels", "model"]):
                rows = rows.sort_values("blur_sigma_px")
                ax.plot(rows["blur_sigma_px"], rows[band], marker="o", ls="-" if labels == "exact" else "--",
                        label=f"{model} ({labels})")
            ax.set_title(band, fontsize=8)
            ax.set_xlabel("training input blur σ (px)")
            ax.axhline(0, color="0.6", lw=0.6)
        axes[0, 0].set_ylabel("Dice drop")
        axes[0, -1].legend(fontsize=6)
        figs.append((save_figure(fig, out / "ablation_vs_blur.png"), "Dice drop per ablated band vs training blur"))
    # size distributions (exact labels, σ = 0)
    diam = tables["diameters"]
    if len(diam):
        sub = diam[diam["labels"] == "exact"]
        models = sorted(sub["model"].dropna().unique())
        if models:
            fig, axes = figure(len(models), size=3.0)
            first = sub[sub["kind"] == "truth"].iloc[:1]  # the truth is the same for every model: take one
            truth = sub[(sub["kind"] == "truth") & (sub["model"] == first["model"].iloc[0])
                        & (sub["fold"] == first["fold"].iloc[0])
                        & (sub["blur_sigma_px"] == first["blur_sigma_px"].iloc[0])]["diameter_nm"] \
                if len(first) else sub["diameter_nm"].iloc[:0]
            bins = np.linspace(0, max(float(sub["diameter_nm"].quantile(0.99)), 0.5), 25)
            for ax, model in zip(axes[0], models, strict=False):
                pred = sub[(sub["model"] == model) & (sub["kind"] == "predicted") & (sub["blur_sigma_px"] == 0)]
                ax.hist(truth, bins=bins, alpha=0.4, density=True, label="truth")
                ax.hist(pred["diameter_nm"], bins=bins, histtype="step", density=True, label="predicted σ=0")
                ax.set_title(model, fontsize=9)
                ax.set_xlabel("equivalent diameter (nm)")
            axes[0, 0].legend(fontsize=7)
            figs.append((save_figure(fig, out / "size_distributions.png"),
                         "particle-size distributions, exact-label models trained at σ = 0, vs ground truth"))
    datasets = spec["datasets"]
    setup = (f"Spec: size {size or spec.get('size')}; pool {datasets[POOL].get('preset')} × "
             f"{datasets[POOL].get('n_images') or spec.get('n_images')} images; test set "
             f"{datasets[TEST].get('preset') or datasets[TEST].get('path')}; training sets "
             + ", ".join(sorted(derived)) + f"; {spec.get('folds')} folds; training {spec.get('training')}; "
             f"sweep {spec.get('sweep')}.")
    sections = [
        Section("Setup", text=setup),
        Section("Auto-labels vs exact labels", text=(
            "Horwath's classical labeler (Gaussian σ = 2, grey reconstruction, |difference| + Sobel, opening with "
            "disk(5), Otsu) run on the unblurred pool frames, against the simulator's exact masks."),
            tables=[_fmt_table(tables["labels_summary"]), _fmt_table(tables["labels_by_size"])]),
        Section("Accuracy per model, blur and label source", text=(
            "Mean over folds of the per-frame mean on the unblurred test frames (exact masks). dice/precision/"
            "recall/f1 at threshold 0.5, otsu_* at the Otsu threshold of each probability map; size_* compare "
            "the predicted particle-size distribution with the ground truth."),
            tables=[_fmt_table(tables["summary"])], figures=[f for f in figs if "f1" in str(f[0])]),
        Section("Frequency ablation", text=(
            "Dice drop on the test frames when a band is removed from the network input (mean over folds)."),
            tables=[_fmt_table(tables["ablation_drops"])], figures=[f for f in figs if "ablation" in str(f[0])]),
        Section("Particle sizes", figures=[f for f in figs if "size" in str(f[0])]),
        Section("Raw output maps (statistics)", text=(
            "Per model and channel on test frame 0: separation d′ between particle and background pixels, and "
            "the share of within-class variance in fine texture (σ = 2 px)."),
            tables=[_fmt_table(tables["raw_outputs"].groupby(GROUP + ["channel"])[
                ["separation", "texture_fraction"]].mean().reset_index())]),
    ]
    return write_report(out / "report.html", "Horwath study: what does the network look at?", sections)


__all__ = ["HorwathResult", "LabelComparison", "compare_labels", "derive_dataset", "evaluate_model",
           "parse_derived", "resolve_spec", "run_horwath"]
