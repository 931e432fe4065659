"""Report sections rendered from results already computed: a tracking result, an evaluation folder, a quality line.

Rendering only (no analysis): :mod:`nanoseg.workflows.report` decides what a folder holds and calls these;
the demo and the in situ watcher reuse :func:`track_sections`.

Example
-------
>>> quality_line("a", {"estimated_dice": 0.91, "quality": {"calibrated": True, "method": "ridge"}})
'a: estimated Dice 0.91 (calibrated: ridge)'
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nanoseg.report import Section

FIGURE_CAPTIONS = {
    "size_vs_time": "Equivalent diameter of every tracked particle vs time",
    "psd_evolution": "Size distributions (r/⟨r⟩) per time window with bootstrap bands and the LSW shape",
    "kinetics": "⟨r⟩ⁿ vs time with the fitted coarsening laws",
    "frame_strip": "Frames with track IDs",
    "drift": "Measured stage drift",
    "growth": "Per-particle growth rate vs size",
}


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


def evaluate_sections(folder: Path) -> list[Section]:
    """Sections for a ``nanoseg evaluate`` output folder."""
    figures = [(p, p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png"))]
    return [Section("Summary", text="Mean ± std over images (see metrics.csv for every image).",
                    tables=[pd.read_csv(folder / "summary.csv")]),
            Section("Figures", figures=figures)]
