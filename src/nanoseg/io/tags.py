"""Tag mapping: a vendor file's metadata tree → nanoseg's standard metadata (voltage, magnification, exposure,
acquisition time, dose, axes calibration).

Used by the format openers (:mod:`nanoseg.io.openers`); no function here reads a file.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

from nanoseg.io.units import length_to_nm


def to_float(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        if isinstance(value, str):
            match = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", value)
            if match:
                return float(match.group())
        return None
    return out if math.isfinite(out) else None


def lookup(tree: Any, dotted: str) -> Any:
    """Follow ``a.b.c`` through nested dicts, treating spaces and underscores in keys as equal."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        if part in node:
            node = node[part]
            continue
        want = part.replace(" ", "_").lower()
        for key, value in node.items():
            if str(key).replace(" ", "_").lower() == want:
                node = value
                break
        else:
            return None
    return node


def leaves(tree: Any, prefix: str = ""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree


def apply_mapping(original: dict, mapping: dict | None) -> dict:
    """Apply a RosettaSciIO ``mapping`` (original path → (HyperSpy path, converter)) to a dict."""
    out: dict = {}
    for source, (target, func) in (mapping or {}).items():
        value = lookup(original, source)
        if value is None:
            continue
        try:
            value = func(value) if func is not None else value
        except Exception:  # a vendor tag we cannot parse is simply left out
            continue
        if value is None:
            continue
        node = out
        parts = target.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def timestamp_of(date: str | None, time: str | None) -> tuple[str | None, float | None]:
    if not date and not time:
        return None, None
    try:
        from dateutil import parser

        stamp = parser.parse(f"{date or ''} {time or ''}".strip())
    except Exception:
        return None, None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.UTC)
    return stamp.isoformat(), stamp.timestamp()


def standard_metadata(hs: dict) -> dict[str, Any]:
    """Pick the acquisition fields nanoseg uses out of HyperSpy-style metadata."""
    meta: dict[str, Any] = {}
    tem = lookup(hs, "Acquisition_instrument.TEM") or lookup(hs, "Acquisition_instrument.SEM") or {}
    voltage = to_float(lookup(tem, "beam_energy"))
    if voltage:
        meta["voltage_kV"] = voltage
    mag = to_float(lookup(tem, "magnification"))
    if mag:
        meta["magnification"] = mag
    exposure = None
    for key in ("Camera.exposure", "Detector.Camera.exposure", "exposure", "Detector.exposure"):
        exposure = to_float(lookup(tem, key))
        if exposure:
            break
    if exposure:
        meta["exposure_s"] = exposure
    dwell = to_float(lookup(tem, "dwell_time"))
    if dwell:
        meta["dwell_time_s"] = dwell
    for key in ("microscope",):
        value = lookup(tem, key)
        if value:
            meta[key] = str(value)
    acquired, stamp = timestamp_of(lookup(hs, "General.date"), lookup(hs, "General.time"))
    if acquired:
        meta["acquired"] = acquired
        meta["timestamp_s"] = stamp
    title = lookup(hs, "General.title")
    if title:
        meta["title"] = str(title)
    return meta


# tag names that mention dose but hold no dose (dose-fractionation settings, counters, switches)
_NOT_A_DOSE = ("fraction", "frame", "number", "count", "mode", "enable", "limit", "protect", "use", "auto",
               "apply", "save")


def dose_from_tags(tags: dict, exposure_s: float | None,
                    pixel_size_nm: float | None = None) -> tuple[float | None, str | None]:
    """An explicit dose tag: ``...Dose...`` or a dose *rate* (per second) times the exposure.

    The area unit comes from the tag name: ``nm`` → e/nm² (÷ 100), ``pix``/``px`` → e/pixel (÷ pixel
    area in Å², needs the calibration), otherwise e/Å². Returns (dose in e/Å², tag path)."""
    rate = None
    for key, value in leaves(tags):
        name = key.rsplit(".", 1)[-1].lower()
        if "dose" not in name or any(word in name for word in _NOT_A_DOSE) or isinstance(value, bool):
            continue
        number = to_float(value)
        if not number or number <= 0:
            continue
        if "pix" in name or "px" in name:
            if not pixel_size_nm:
                continue
            number /= (pixel_size_nm * 10.0) ** 2
        elif "nm" in name:
            number /= 100.0
        if "rate" in name or "/s" in name:
            if rate is None:
                rate = (number, key)
            continue
        return number, key
    if rate is not None and exposure_s:
        return rate[0] * exposure_s, f"{rate[1]} × exposure"
    return None, None


def axes_calibration(axes: list[dict], path) -> tuple[float | None, dict[str, Any], list[float] | None]:
    """Pixel size from the two image axes (the last two in the array); frame times from a leading
    frame axis calibrated in seconds."""
    axes = sorted(axes, key=lambda a: int(a.get("index_in_array", 0)))
    meta: dict[str, Any] = {}
    sizes = [length_to_nm(a.get("scale", 1.0), a.get("units"), path=path) for a in axes[-2:]]
    pixel = None
    if len(sizes) == 2 and all(s is not None for s in sizes):
        pixel = sizes[-1]  # columns (x)
        if abs(sizes[0] - sizes[-1]) > 0.01 * sizes[-1]:
            meta["pixel_size_y_nm"] = sizes[0]
    times = None
    if len(axes) == 3:
        unit = str(axes[0].get("units") or "").strip().lower()
        if unit in ("s", "sec", "seconds", "ms"):
            scale = float(axes[0].get("scale", 1.0)) * (1e-3 if unit == "ms" else 1.0)
            if scale > 0:
                times = [round(i * scale, 9) for i in range(int(axes[0]["size"]))]
    return pixel, meta, times
