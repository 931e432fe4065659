"""The work behind the widgets, without Qt: segmentation and tracking results as napari layer tuples.

Every function here is plain Python on arrays and tables (testable without a viewer); the widgets run them in
a worker thread and add the returned ``(data, kwargs, layer_type)`` tuples to the viewer.

Coordinates: the layers are in nm, like the reader's image layers (``scale`` = pixel size in nm); the frame
axis of a movie is the frame index.

Example
-------
>>> import numpy as np
>>> from nanoseg.models import build_model
>>> image = np.ones((64, 64), np.float32)
>>> result = segment_layers(image, pixel_size_nm=0.2, models=build_model("unet3"), engine="fused")
>>> [kind for _, _, kind in result.layers], result.layers[1][1]["scale"]
(['image', 'labels'], (0.2, 0.2))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError

#: particle-table columns the widget shows, in order (those present)
SHOWN_COLUMNS = ["label", "diameter_nm", "diameter_std_nm", "area_nm2", "major_axis_nm", "minor_axis_nm",
                 "eccentricity", "y_nm", "x_nm", "touches_edge"]
#: kinetics-fit columns the Track widget shows (those present)
FIT_COLUMNS = ["model", "n", "n_std", "k", "k_std", "rate_units", "r0_nm", "n_points", "delta_aic"]


@dataclass
class SegmentResult:
    """What :func:`segment_layers` returns: layer tuples, the particle table and the quality estimate."""

    layers: list
    table: pd.DataFrame
    quality: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


@dataclass
class TrackLayers:
    """What :func:`track_layers` returns: layer tuples, the kinetics fits and a one-paragraph summary."""

    layers: list
    fits: pd.DataFrame
    summary: str = ""


def layer_pixel_size_nm(layer) -> float | None:
    """The pixel size (nm) of an image layer: nanoseg's reader metadata, else a square nm ``scale``; or None.

    A layer opened by another reader has scale 1 and no units: None (the widget then needs the override).
    """
    meta = (getattr(layer, "metadata", None) or {}).get("nanoseg") or {}
    if meta.get("pixel_size_nm"):
        return float(meta["pixel_size_nm"])
    units = getattr(layer, "units", None)
    scale = np.asarray(getattr(layer, "scale", []), dtype=float)
    if units is None or len(scale) < 2 or scale[-1] != scale[-2]:
        return None
    if all(str(u) == "nanometer" for u in tuple(units)[-2:]):
        return float(scale[-1])
    return None


def resolve_pixel_size_nm(layer_px: float | None, override_nm: float | None, *, name: str,
                          allow_estimate: bool = False) -> float | None:
    """The pixel size to use: the override when given (> 0), else the layer's. Without either: None when
    ``allow_estimate`` (segmentation then assumes one from the particle size, as ``nanoseg predict`` does, and
    says so in a warning), else a clear error (tracking: rates in nm need a calibrated pixel)."""
    if override_nm is not None and override_nm > 0:
        return float(override_nm)
    if layer_px is None and allow_estimate:
        return None
    if layer_px is None:
        raise NanosegError("the image has no pixel size, so sizes in nm cannot be computed", path=name,
                           hint="set 'pixel size (nm)' in the widget, or open the file with the nanoseg reader")
    return float(layer_px)


def segment_layers(image: np.ndarray, *, pixel_size_nm: float | None, models=None, threshold: float | str = 0.5,
                   tta: bool = False, min_diameter_nm: float = 0.5, name: str = "image", engine: str = "auto",
                   scale_translate: tuple | None = None) -> SegmentResult:
    """Segment one 2-D image: probability and labels layer tuples plus the particle table (sizes in nm).

    ``models`` as for :func:`nanoseg.infer.predict` (a path, ``"default"``/None, loaded models). The labels
    layer's ``features`` is the particle table; with ``tta`` it has ``diameter_std_nm`` (the half spread of
    the diameters from probability ± its std over the 8 views). ``quality`` holds the out-of-distribution
    flags and warnings of :func:`nanoseg.infer.predict`, the estimate of how far to trust the numbers.
    """
    from nanoseg.infer import predict
    from nanoseg.io import Micrograph
    from nanoseg.particles import label_particles, particle_table

    micrograph = Micrograph(np.asarray(image), pixel_size_nm=pixel_size_nm, source=name)
    pred = predict(micrograph, models, threshold=threshold, tta=tta, engine=engine)
    if pixel_size_nm is None:  # predict assumed one from the particle size (its warnings say how)
        if pred.pixel_size_nm is None:
            raise NanosegError("the image has no pixel size and none could be assumed", path=name,
                               hint="set 'pixel size (nm)' in the widget")
        pixel_size_nm = float(pred.pixel_size_nm)
    labels = label_particles(pred.mask, pixel_size_nm=pixel_size_nm, min_diameter_nm=min_diameter_nm)
    std = None if pred.variance is None else np.sqrt(np.clip(pred.variance, 0, None))
    table = particle_table(labels, pixel_size_nm=pixel_size_nm, image=micrograph.data,
                           probability=pred.probability, probability_std=std, threshold=pred.threshold)
    quality = {"out_of_distribution": pred.out_of_distribution, "ood_flags": dict(pred.ood),
               "warnings": list(pred.warnings), "threshold": pred.threshold, "tta": tta}
    geometry = {"scale": (pixel_size_nm, pixel_size_nm), "units": ("nm", "nm")}
    if scale_translate is not None:
        geometry["translate"] = tuple(scale_translate)
    meta = {"nanoseg": {"pixel_size_nm": pixel_size_nm, "source": name, "quality": quality,
                        "prediction": pred.metadata}}
    layers = [
        (pred.probability, {"name": f"{name} probability", "colormap": "magma", "opacity": 0.5,
                            "blending": "additive", "contrast_limits": (0.0, 1.0), **geometry,
                            "metadata": meta}, "image"),
        (labels, {"name": f"{name} particles", "features": table, "opacity": 0.45, **geometry, "metadata": meta},
         "labels"),
    ]
    return SegmentResult(layers=layers, table=table, quality=quality,
                         summary=segment_summary(table, quality, pixel_size_nm=pixel_size_nm))


def segment_summary(table: pd.DataFrame, quality: dict, *, pixel_size_nm: float) -> str:
    """One paragraph for the widget: count, sizes, and what the sizes assume."""
    n = len(table)
    lines = [f"{n} particle{'s' if n != 1 else ''} at {pixel_size_nm:g} nm/px, threshold {quality['threshold']:.3g}"]
    if n:
        d = table["diameter_nm"]
        lines.append(f"diameter (equivalent circle): median {d.median():.2f} nm, range {d.min():.2f}–{d.max():.2f} nm; "
                     f"{int(table['touches_edge'].sum())} cut by the border (their size is a lower bound)")
        if "diameter_std_nm" in table.columns:
            lines.append(f"TTA diameter spread: median ±{table['diameter_std_nm'].median():.2f} nm")
    flags = [k for k, v in quality["ood_flags"].items() if v]
    lines.append("out of the model's training range: " + ", ".join(flags) if flags
                 else "within the model's training range (out-of-distribution checks passed)")
    lines += [f"warning: {w}" for w in quality["warnings"]]
    return "\n".join(lines)


def shown_table(table: pd.DataFrame, columns: list[str]) -> dict[str, list]:
    """The columns of ``table`` worth showing, rounded, as a dict of lists (for a table widget)."""
    out = {}
    for col in (c for c in columns if c in table.columns):
        values = table[col]
        if pd.api.types.is_float_dtype(values):
            values = values.round(4)
        out[col] = values.tolist()
    return out


def track_layers(result, *, translate_nm: tuple[float, float] = (0.0, 0.0), name: str = "movie") -> TrackLayers:
    """Tracks and coalescence-event layer tuples of a :class:`nanoseg.insitu.TrackResult`.

    Tracks: ``[track_id, frame, y_nm, x_nm]`` in the image's coordinates (positions as measured in each frame,
    not drift-corrected, so they sit on the particles), ``graph`` = each track's parent tracks (coalescences
    join two tracks into one), ``features`` diameter. Events: a Points layer at each coalescence, at the
    frame after it and the merged particle's position.
    """
    tracks = result.tracks.sort_values(["track_id", "frame"])
    if tracks.empty:
        raise NanosegError("no tracks were found", hint="check the threshold, the model and min_diameter_nm")
    data = tracks[["track_id", "frame", "y_nm", "x_nm"]].to_numpy(dtype=float)
    translate = (0.0, float(translate_nm[0]), float(translate_nm[1]))
    graph = _track_graph(result.events)
    features = pd.DataFrame({"diameter_nm": tracks["diameter_nm"].to_numpy(dtype=float)})
    layers = [(data, {"name": f"{name} tracks", "graph": graph, "features": features, "translate": translate,
                      "tail_length": 10, "color_by": "track_id"}, "tracks")]
    points = coalescence_points(result.events, tracks)
    if len(points):
        layers.append((points, {"name": f"{name} coalescences", "symbol": "star", "size": 2.0,
                                "face_color": "yellow", "translate": translate, "out_of_slice_display": False},
                       "points"))
    return TrackLayers(layers=layers, fits=result.fits, summary=track_summary(result))


def _track_graph(events: pd.DataFrame) -> dict[int, list[int]]:
    graph: dict[int, list[int]] = {}
    for _, event in events.iterrows():
        if event["kind"] != "coalescence":
            continue
        for child in _ids(event["children"]):
            graph.setdefault(child, []).extend(_ids(event["parents"]))
    return graph


def _ids(value) -> list[int]:
    if isinstance(value, str):
        return [int(v) for v in value.split(";") if v.strip()]
    return [int(v) for v in (value or ())]


def coalescence_points(events: pd.DataFrame, tracks: pd.DataFrame) -> np.ndarray:
    """(N, 3) ``[frame, y_nm, x_nm]`` of each coalescence: the merged particle where it first appears."""
    rows = []
    for _, event in events.iterrows():
        if event["kind"] != "coalescence":
            continue
        for child in _ids(event["children"]):
            seen = tracks[(tracks["track_id"] == child) & (tracks["frame"] >= event["frame"])]
            if len(seen):
                first = seen.sort_values("frame").iloc[0]
                rows.append((float(first["frame"]), float(first["y_nm"]), float(first["x_nm"])))
    return np.asarray(rows, dtype=float).reshape(-1, 3)


def track_summary(result) -> str:
    """The counts, the mechanism verdict and the best kinetics fit, with their assumptions."""
    s = result.summary
    events = s.get("events", {})
    lines = [f"{s.get('n_tracks', 0)} tracks over {s.get('n_frames', 0)} frames at {s.get('pixel_size_nm')} nm/px; "
             f"events: {', '.join(f'{v} {k}' for k, v in events.items()) or 'none'}"]
    verdict = s.get("verdict")
    if verdict:
        lines.append(f"verdict: {verdict['mechanism']} (support {verdict['support']:.2f}; {verdict['note']})")
    fits = result.fits
    if len(fits):
        best = fits.sort_values("delta_aic").iloc[0] if "delta_aic" in fits.columns else fits.iloc[0]
        lines.append(f"best kinetics fit ⟨r⟩^n − ⟨r0⟩^n = k·t: {best['model']}, n = {best['n']:.2f}, "
                     f"k = {best['k']:.3g} ± {best['k_std']:.2g} {best['rate_units']} "
                     f"(particles ≥ {s.get('kinetics_min_diameter_nm', 0):g} nm; times from the movie's timestamps "
                     "or the frame interval given)")
    lines += [f"warning: {w}" for w in s.get("warnings", [])]
    return "\n".join(lines)


def movie_series(data, *, pixel_size_nm: float, times_s, frame_interval_s: float | None, name: str):
    """A :class:`nanoseg.io.Series` of a 3-D layer's frames with real times, or the CLI's refusal.

    ``frame_interval_s`` (> 0) replaces the layer's times; without it the layer's ``times_s`` (from the
    file's timestamps) are used; a movie with neither is refused: rates would come out per frame.
    """
    from nanoseg.io import Micrograph, Series

    if getattr(data, "ndim", 0) != 3:
        raise NanosegError(f"a movie must be a 3-D layer (frames, rows, cols), got {getattr(data, 'ndim', 0)}-D",
                           path=name, hint="open a stacked file or a folder of frames")
    n = int(data.shape[0])
    if frame_interval_s is not None and frame_interval_s > 0:
        times = np.arange(n) * float(frame_interval_s)
    elif times_s is not None and len(times_s) == n:
        times = np.asarray(times_s, dtype=float)
    else:
        raise NanosegError("the frames carry no timestamps, so rates in nm^n/s cannot be computed", path=name,
                           hint="set 'frame interval (s)' in the widget to the time between frames")

    def load(i: int) -> Micrograph:
        return Micrograph(np.asarray(data[i]), pixel_size_nm=pixel_size_nm,
                          metadata={"time_s": float(times[i]), "frame_index": i}, source=name)

    return Series(load, times, source=name)
