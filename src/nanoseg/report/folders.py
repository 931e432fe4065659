"""Reports for any nanoseg output folder: ``track``, ``watch``, ``predict``, ``evaluate`` or ``study`` results.

:func:`report_folder` looks at what a folder holds and writes ``report.html`` into it; the section
builders are reused by the demo.

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

FIGURE_CAPTIONS = {
    "size_vs_time": "Equivalent diameter of every tracked particle vs time",
    "psd_evolution": "Size distributions (r/⟨r⟩) per time window with bootstrap bands and the LSW shape",
    "kinetics": "⟨r⟩ⁿ vs time with the fitted coarsening laws",
    "frame_strip": "Frames with track IDs",
    "drift": "Measured stage drift",
    "growth": "Per-particle growth rate vs size",
}


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


def _count_tracks(tracks: pd.DataFrame) -> int:
    """Distinct ``track_id`` values (the column :func:`nanoseg.insitu.link_particles` writes)."""
    return int(tracks["track_id"].nunique()) if "track_id" in tracks else 0


def track_sections(result) -> list[Section]:
    """Sections for a :class:`nanoseg.insitu.stream.TrackResult`: summary, verdict, kinetics, figures, events."""
    summary = result.summary or {}
    facts = pd.DataFrame([
        {"quantity": "frames", "value": summary.get("n_frames", result.particles["frame"].nunique()
                                                    if len(result.particles) else 0)},
        {"quantity": "detections", "value": len(result.particles)},
        {"quantity": "tracks", "value": summary.get("n_tracks", _count_tracks(result.tracks))},
        {"quantity": "events", "value": len(result.events)},
    ])
    sections = [Section("Tracking summary", text=summary.get("description", ""), tables=[facts],
                        warnings=list(summary.get("warnings", [])))]
    if len(result.verdict):
        sections.append(Section(
            "Coarsening mechanism",
            text="Each row is one piece of evidence for Ostwald ripening or migration–coalescence; "
                 "the last row weighs them.",
            tables=[result.verdict]))
    if len(result.fits):
        sections.append(Section("Kinetics fits", text="Fits of ⟨r⟩ⁿ − ⟨r₀⟩ⁿ = k·t (n free, n = 3 LSW, n = 4).",
                                tables=[result.fits]))
    figures = [(path, FIGURE_CAPTIONS.get(name, name.replace("_", " ")))
               for name, path in (result.figures or {}).items() if str(path).endswith(".png")]
    if figures:
        sections.append(Section("Figures", figures=figures))
    if len(result.events):
        sections.append(Section("Events", text="Coalescence, splitting and disappearance events (first 50).",
                                tables=[result.events.head(50)]))
    return sections


def _out_of_distribution(meta: dict) -> bool:
    """The prediction JSON's own verdict; warnings (e.g. an unknown dose) are not out-of-distribution flags."""
    if "out_of_distribution" in meta:
        return bool(meta["out_of_distribution"])
    return any(bool(v) for v in (meta.get("ood") or {}).values())


def quality_line(stem: str, meta: dict) -> str:
    """One report line on an image's quality estimate: the value, calibrated or not, and a warning when low."""
    quality = meta.get("quality") or {}
    value = meta.get("estimated_dice", quality.get("estimated_dice"))
    if value is None:
        return f"{stem}: no quality estimate (predicted by an older nanoseg)"
    how = "calibrated" if quality.get("calibrated") else "uncalibrated"
    text = f"{stem}: estimated Dice {value:.2f} ({how}: {quality.get('method', '?')})"
    if meta.get("low_confidence"):
        text += (f" — LOW CONFIDENCE (< {quality.get('low_confidence_below', '?')}): the mask may be wrong; check "
                 "it by eye before using its numbers")
    return text


def predict_sections(folder: Path, *, max_images: int = 12, figures_dir: Path | None = None) -> list[Section]:
    """Sections for a ``nanoseg predict`` output folder: per-image particle counts, warnings, the particle sizes
    (:func:`nanoseg.report.sizes.size_section`, its figure and CSV written to ``figures_dir``), overlays."""
    from nanoseg.infer.batch import SETTINGS_FILE
    from nanoseg.report.sizes import size_section

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


def evaluate_sections(folder: Path) -> list[Section]:
    """Sections for a ``nanoseg evaluate`` output folder."""
    figures = [(p, p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png"))]
    return [Section("Summary", text="Mean ± std over images (see metrics.csv for every image).",
                    tables=[pd.read_csv(folder / "summary.csv")]),
            Section("Figures", figures=figures)]


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
