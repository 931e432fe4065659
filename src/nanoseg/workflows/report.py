"""Reports for any nanoseg output folder: ``track``, ``watch``, ``predict``, ``evaluate`` or ``study`` results.

:func:`report_folder` looks at what a folder holds and writes ``report.html`` into it, with the renderer of
that kind of result (:mod:`nanoseg.report.folders`, :mod:`nanoseg.study.report`, :mod:`nanoseg.insitu.watch`).
The dispatch lives here, above every producer, so :mod:`nanoseg.report` stays a renderer that any layer may use.

Example
-------
>>> # report_folder("runs/track-01")   # → runs/track-01/report.html
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from nanoseg.errors import NanosegError
from nanoseg.report import Section, write_report
from nanoseg.report.folders import evaluate_sections, quality_line, track_sections
from nanoseg.workflows.sizes import size_section


def folder_kind(folder: str | os.PathLike) -> str:
    """``"study"``, ``"watch"``, ``"track"``, ``"evaluate"`` or ``"predict"`` from the files a folder holds."""
    root = Path(folder)
    if not root.is_dir():
        raise NanosegError("not a folder", path=root, hint="give the output folder of predict, track, evaluate or study")
    if (root / "results.parquet").exists():
        return "study"
    if (root / "watch" / "state.json").exists():
        return "watch"
    if (root / "tracks.csv").exists() or (root / "summary.json").exists() and (root / "chunks").exists():
        return "track"
    if (root / "summary.csv").exists() and (root / "metrics.csv").exists():
        return "evaluate"
    if list(root.glob("*.mask.tif")):
        return "predict"
    raise NanosegError("found no nanoseg results here", path=root,
                       hint="expected the output folder of `nanoseg predict`, `track`, `evaluate` or `study run`")


def _out_of_distribution(meta: dict) -> bool:
    """The prediction JSON's own verdict; warnings (e.g. an unknown dose) are not out-of-distribution flags."""
    if "out_of_distribution" in meta:
        return bool(meta["out_of_distribution"])
    return any(bool(v) for v in (meta.get("ood") or {}).values())


def predict_sections(folder: Path, *, max_images: int = 12, figures_dir: Path | None = None) -> list[Section]:
    """Sections for a ``nanoseg predict`` output folder: per-image particle counts, warnings, the particle sizes
    (:func:`nanoseg.workflows.sizes.size_section`, its figure and CSV written to ``figures_dir``), overlays."""
    from nanoseg.workflows.predict import SETTINGS_FILE  # here: it imports nanoseg.infer, which loads torch

    rows, warnings, overlays, images, quality_lines, quality_warnings = [], [], [], [], [], []
    for meta_path in sorted(folder.glob("*.json")):
        if meta_path.name in {"summary.json", "preprocess.json", SETTINGS_FILE}:
            continue
        stem = meta_path.name[: -len(".json")]
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            warnings.append(f"{meta_path.name}: unreadable metadata")
            continue
        images.append((stem, meta))
        particles_csv = folder / f"{stem}.particles.csv"
        table = pd.read_csv(particles_csv) if particles_csv.exists() else pd.DataFrame()
        diam = table["diameter_nm"] if "diameter_nm" in table else pd.Series(dtype=float)
        rows.append({"image": stem, "particles": len(table),
                     "mean_diameter_nm": float(diam.mean()) if len(diam) else float("nan"),
                     "pixel_size_nm": meta.get("pixel_size_nm"),
                     "out_of_distribution": _out_of_distribution(meta),
                     "estimated_dice": meta.get("estimated_dice"), "low_confidence": meta.get("low_confidence")})
        line = quality_line(stem, meta)
        (quality_warnings if meta.get("low_confidence") else quality_lines).append(line)
        # the low-confidence warning is the quality section's line, not repeated here
        warnings += [f"{stem}: {w}" for w in meta.get("warnings", []) if not w.startswith("low confidence:")]
        overlay = folder / f"{stem}.overlay.png"
        if overlay.exists() and len(overlays) < max_images:
            overlays.append((overlay, stem))
    quality = Section("Quality estimate", warnings=quality_warnings, text="\n\n".join(
        ["Estimated hard Dice of each mask from inference-time features only (view agreement, probability "
         "margins, mask area, out-of-distribution checks; nanoseg.infer.quality); below the threshold in each "
         "image's JSON (quality.low_confidence_below) the image is flagged low confidence.", *quality_lines]))
    return [Section("Predictions", tables=[pd.DataFrame(rows)], warnings=warnings), quality,
            size_section(folder, images, figures_dir=figures_dir),
            Section("Overlays", figures=overlays)]


def report_folder(folder: str | os.PathLike, *, out: str | os.PathLike | None = None) -> Path:
    """Write ``report.html`` for any nanoseg output folder and return its path."""
    root = Path(folder)
    kind = folder_kind(root)
    target = Path(out) if out else root / "report.html"
    if kind == "study":
        from nanoseg.study.report import write_study_report

        return write_study_report(root, out=target)
    if kind == "watch":
        from nanoseg.insitu.watch import write_watch_report

        return write_watch_report(root, out=target)
    if kind == "track":
        from nanoseg.insitu.stream import read_track_result

        return write_report(target, f"Tracking — {root.name}", track_sections(read_track_result(root)))
    if kind == "evaluate":
        return write_report(target, f"Evaluation — {root.name}", evaluate_sections(root))
    return write_report(target, f"Predictions — {root.name}", predict_sections(root, figures_dir=target.parent))
