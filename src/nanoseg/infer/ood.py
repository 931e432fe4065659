"""Out-of-distribution checks: is this image like the ones the model was trained on?

Sytwu et al. show that networks are not robust across pixel size and collapse at doses below their
training range; the model card records the training ranges, and :func:`check_distribution` compares an
input against them. Each check gives a flag (``True`` = outside the training range) and a warning line.

The image statistics (``contrast``, ``roughness``, ``noise``, after per-image standardization) are defined once,
in :mod:`nanoseg.datasets.imagestats` (``image_statistics`` is re-exported here). Only statistics that the card
lists in ``image_statistics`` are compared; the others are reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nanoseg.datasets.imagestats import image_statistics  # noqa: F401  (re-exported: the one definition, shared with training)

RANGE_TOLERANCE = 0.05  # relative slack on either side of a training range before warning


def _outside(value: float, low: float, high: float) -> bool:
    span = max(abs(high), abs(low), 1e-12) * RANGE_TOLERANCE
    return value < low - span or value > high + span


def check_distribution(card, *, pixel_size_nm: float | None, dose_e_per_A2: float | None,
                       statistics: dict[str, float] | None = None) -> tuple[dict[str, bool], list[str]]:
    """Compare an input with the card's training ranges.

    Returns ``(flags, warnings)``: ``flags[name]`` is True when the input lies outside the training range
    (more than 5 % beyond it), False when inside, and absent when the card or the input does not say.
    """
    flags: dict[str, bool] = {}
    notes: list[str] = []
    name = card.name or card.architecture

    def check(key: str, value, rng, what: str, unit: str) -> None:
        if value is None or rng is None:
            return
        low, high = float(rng[0]), float(rng[1])
        flags[key] = _outside(float(value), low, high)
        if flags[key]:
            notes.append(f"{what} {value:.4g}{unit} lies outside the training range {low:.4g}–{high:.4g}{unit} "
                         f"of model {name!r}: the segmentation may be unreliable")

    check("pixel_size", pixel_size_nm, card.pixel_size_range_nm, "pixel size", " nm")
    check("dose", dose_e_per_A2, card.dose_range_e_per_A2, "dose", " e/Å²")
    for stat, value in (statistics or {}).items():
        check(stat, value, card.image_statistics.get(stat), f"image {stat}", "")
    if dose_e_per_A2 is None and card.dose_range_e_per_A2 is not None:
        notes.append("the input's dose is unknown; it cannot be compared with the training range "
                     f"{card.dose_range_e_per_A2[0]:.4g}–{card.dose_range_e_per_A2[1]:.4g} e/Å²")
    return flags, notes


FLOODED_FRACTION = 0.6  # a mask covering more of the field than this is flagged


def check_mask(mask: np.ndarray, card, *, input_pixel_size_nm: float | None, probability: np.ndarray | None = None,
               threshold: float | None = None) -> tuple[dict[str, Any], list[str]]:
    """Sanity checks of a predicted mask: empty, flooded (> :data:`FLOODED_FRACTION` of the field), and the
    particle sizes against the card's trained ``particle_diameter_range_nm`` (in model pixels).

    Sizes are equivalent-circle diameters of the connected components (8-connected: touching particles count
    as one) that do not touch the frame, converted to the model grid with ``input_pixel_size_nm / card.pixel_size_nm``
    (an unknown input pixel size counts as the model's). A warning is given when their median lies outside the
    trained range. Returns ``(results, warnings)``; ``results`` holds ``mask_fraction``, ``empty``, ``flooded`` and,
    when the sizes can be compared, ``median_diameter_model_px``, ``trained_diameter_model_px``,
    ``fraction_smaller``, ``fraction_larger`` and ``particle_size`` (True = median outside the trained range).
    """
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    fraction = float(m.mean())
    out: dict[str, Any] = {"mask_fraction": fraction, "empty": not m.any(), "flooded": fraction > FLOODED_FRACTION}
    notes: list[str] = []
    name = card.name or card.architecture
    if out["empty"]:
        top = ""
        if probability is not None:
            below = "" if threshold is None else f" < threshold {threshold:.3g}"
            top = f" (highest probability {float(np.max(probability)):.3g}{below})"
        notes.append(f"the mask is empty: no particle was found{top}; if the image shows particles, model {name!r} "
                     "does not fit it (check the pixel size and the particle polarity, or try threshold=otsu)")
        return out, notes
    if out["flooded"]:
        notes.append(f"the mask covers {fraction:.0%} of the field (more than {FLOODED_FRACTION:.0%}): the background "
                     f"was probably taken for particles; model {name!r} may not fit this image")
    model_px, trained = getattr(card, "pixel_size_nm", None), getattr(card, "particle_diameter_range_nm", None)
    if model_px is None or trained is None:
        return out, notes
    labels, n = ndimage.label(m, structure=np.ones((3, 3), bool))
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    areas = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
    inner = np.setdiff1d(np.arange(1, n + 1), edge)
    if inner.size == 0:
        return out, notes
    factor = (float(input_pixel_size_nm) if input_pixel_size_nm is not None else float(model_px)) / float(model_px)
    diameters = 2.0 * np.sqrt(areas[inner] / np.pi) * factor
    low, high = float(trained[0]) / float(model_px), float(trained[1]) / float(model_px)
    median = float(np.median(diameters))
    out.update({"median_diameter_model_px": median, "trained_diameter_model_px": [low, high],
                "fraction_smaller": float((diameters < low).mean()), "fraction_larger": float((diameters > high).mean()),
                "particle_size": not low <= median <= high})
    where = f"(median {median:.3g} model px = {median * float(model_px):.3g} nm at {float(model_px):g} nm/px, " \
            f"{inner.size} particles not cut by the frame)"
    if median < low:
        notes.append(f"the particles found are smaller than the smallest trained ({low:.3g} model px = "
                     f"{float(trained[0]):.3g} nm) {where}: they may be noise, or the pixel size may be wrong")
    elif median > high:
        notes.append(f"the particles found are larger than the largest trained ({high:.3g} model px = "
                     f"{float(trained[1]):.3g} nm) {where}: they may be merged or the background, or the pixel size "
                     "may be wrong")
    return out, notes
