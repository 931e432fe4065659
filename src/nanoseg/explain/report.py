"""One call that explains a model on some images: figures, tables (CSV) and ``report.html``.

:func:`explain_report` runs every tool of :mod:`nanoseg.explain` on a model and an image file or a dataset
directory and writes them into one folder; ``nanoseg explain`` is its command line.

Example
-------
>>> import numpy as np, torch, tempfile, pathlib
>>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
>>> image = np.random.default_rng(0).normal(size=(48, 48)).astype("float32")
>>> out = explain_report(net, image, pathlib.Path(tempfile.mkdtemp()), crop_px=32)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nanoseg._util import atomic_path, progress_iter
from nanoseg.errors import NanosegError
from nanoseg.explain import figures
from nanoseg.explain._network import as_module, card_of, particle_probability, prepare_input
from nanoseg.explain.ablation import frequency_ablation, lattice_frequencies, lattice_table
from nanoseg.explain.frequency import find_lattice_peaks, radial_profile
from nanoseg.explain.maps import (
    choose_particle_lines,
    gradient_saliency,
    occlusion_map,
    particle_line_profiles,
    raw_output_maps,
    raw_output_stats,
)


@dataclass
class ExplainInput:
    """One image to explain: a name, the micrograph and its true mask (or None)."""

    name: str
    micrograph: Any
    mask: np.ndarray | None = None


@dataclass
class ExplainResult:
    """What :func:`explain_report` wrote: the report path and the tables it holds."""

    report: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)


def resolve_model(model: Any):
    """A model object from ``"default"``, a checkpoint path, a ``LoadedModel`` or a bare ``nn.Module``."""
    if isinstance(model, (str, os.PathLike)):
        from nanoseg.models import load_default_model, load_model

        return load_default_model() if str(model) == "default" else load_model(model)
    as_module(model)  # raises a clear error for anything else
    return model


def load_inputs(source: Any, *, mask: Any = None, pixel_size_nm: float | None = None,
                max_images: int = 4) -> list[ExplainInput]:
    """Images to explain from an image file, a dataset directory, a ``Micrograph`` or a 2-D array.

    ``mask`` (a mask file or array) applies to a single image; dataset images bring their own masks.
    ``pixel_size_nm`` overrides (or supplies) the calibration. At most ``max_images`` dataset images are used.
    """
    from nanoseg.io import Micrograph, read, read_mask

    def calibrated(m: Micrograph) -> Micrograph:
        return m.with_data(m.data, pixel_size_nm=pixel_size_nm) if pixel_size_nm else m

    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from nanoseg.datasets.store import open_dataset

        if mask is not None:
            raise NanosegError("a mask (mask=PATH) is for a single image; a dataset brings its own masks", path=source)
        ds = open_dataset(source)
        if len(ds) == 0:
            raise NanosegError("the dataset holds no images", path=source)
        return [ExplainInput(image_id, calibrated(ds.micrograph(image_id)), ds.mask(image_id) > 0)
                for image_id in ds.ids[: max(1, int(max_images))]]
    if isinstance(source, (str, os.PathLike)):
        micrograph, name = read(source), Path(source).stem
    elif isinstance(source, Micrograph):
        micrograph, name = source, source.source or "image"
    else:
        micrograph, name = Micrograph(np.asarray(source), source="array"), "image"
    if isinstance(mask, (str, os.PathLike)):
        mask = read_mask(mask, shape=micrograph.shape)
    elif mask is not None:
        mask = np.asarray(mask)
        if mask.shape != micrograph.shape:
            raise NanosegError(f"mask shape {mask.shape} does not match the image {micrograph.shape}")
    return [ExplainInput(name, calibrated(micrograph), None if mask is None else np.asarray(mask) > 0)]


def _crop_around(region: np.ndarray, shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    """A ``size`` square (clipped to the image) centred on the largest connected part of ``region``."""
    from skimage.measure import label, regionprops

    size_y, size_x = min(size, shape[0]), min(size, shape[1])
    regions = sorted(regionprops(label(region)), key=lambda r: r.area, reverse=True) if region.any() else []
    cy, cx = regions[0].centroid if regions else (shape[0] / 2, shape[1] / 2)
    y0 = int(np.clip(round(cy - size_y / 2), 0, shape[0] - size_y))
    x0 = int(np.clip(round(cx - size_x / 2), 0, shape[1] - size_x))
    return slice(y0, y0 + size_y), slice(x0, x0 + size_x)


def _model_table(model, module) -> pd.DataFrame:
    from nanoseg.models import count_parameters, receptive_field

    card = card_of(model)
    try:
        rf = receptive_field(module)
    except Exception:  # an arbitrary user module may hold layers the analyser does not know
        rf = getattr(card, "receptive_field_px", None)
    rows = {
        "architecture": getattr(card, "architecture", None) or getattr(module, "architecture", type(module).__name__),
        "parameters": count_parameters(module),
        "receptive field (px)": rf,
        "training pixel size (nm)": getattr(card, "pixel_size_nm", None),
        "checkpoint": str(getattr(model, "path", "") or "(in memory)"),
    }
    return pd.DataFrame({"property": list(rows), "value": [str(v) for v in rows.values()]})


def explain_report(model: Any, source: Any, out_dir: str | os.PathLike, *, mask: Any = None,
                   pixel_size_nm: float | None = None, max_images: int = 4, crop_px: int = 160,
                   occlusion_patch_px: int = 16, occlusion_stride_px: int = 8, n_profiles: int = 3,
                   occlusion: bool = True, lattice_spacings_nm: Sequence[float] | None = None,
                   progress: bool = False) -> ExplainResult:
    """Explain ``model`` on the images of ``source``; write figures, CSV tables and ``out_dir/report.html``.

    Parameters
    ----------
    model : ``"default"``, a checkpoint path, a ``LoadedModel`` or an ``nn.Module``.
    source : an image file, a dataset directory, a ``Micrograph`` or a 2-D array.
    mask : true mask (file or array) for a single image; without any mask the frequency ablation scores
        each ablated prediction against the model's own prediction on the unablated image.
    pixel_size_nm : calibration override (periods in nm need it).
    max_images : dataset images used for the ablation (the maps use the first).
    crop_px : side of the crop (around the largest particle) for the occlusion and saliency maps.
    occlusion : skip the occlusion map when False (it costs one forward pass per patch position).
    lattice_spacings_nm : known lattice spacings (e.g. Au ``[0.235, 0.204]``) used for the band-stop and Bragg
        ablations instead of the peaks found in the power spectrum (needs a pixel size).

    Returns
    -------
    :class:`ExplainResult` with the report path, the tables (also written as CSV) and the figure paths.
    """
    from nanoseg.report import Section, write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = resolve_model(model)
    module = as_module(model)
    inputs = load_inputs(source, mask=mask, pixel_size_nm=pixel_size_nm, max_images=max_images)
    prepared = [prepare_input(model, item.micrograph, item.mask)
                for item in progress_iter(inputs, "preparing inputs", enabled=progress)]
    pixel = prepared[0].pixel_size_nm
    has_truth = all(p.mask is not None for p in prepared)
    tables: dict[str, pd.DataFrame] = {}
    figs: list[Path] = []
    sections = [Section("Model", text=f"Input: {inputs[0].name}" + (f" and {len(inputs) - 1} more image(s)"
                                                                     if len(inputs) > 1 else "")
                        + f". Preprocessing applied: {', '.join(prepared[0].steps) or 'none (the pixels as they are)'}.",
                        tables=[_model_table(model, module)])]

    first = prepared[0]
    probability = particle_probability(model, first.image)
    truth = first.mask

    # power spectrum and lattice
    same_shape = len({p.image.shape for p in prepared}) == 1
    profile = radial_profile(np.stack([p.image for p in prepared]) if same_shape else first.image)
    if lattice_spacings_nm:
        peaks = lattice_table(lattice_frequencies(lattice_spacings_nm, pixel), pixel)
    else:
        peaks = find_lattice_peaks(None, profile=profile, pixel_size_nm=pixel)
    tables["lattice"] = peaks
    figs.append(figures.plot_spectrum(profile, peaks, out / "spectrum.png", pixel_size_nm=pixel))
    lattice_text = ("No lattice fringes were found in the power spectrum: the band-stop and Bragg ablations are "
                    "skipped." if peaks.empty else
                    ("Lattice spacings given: " if lattice_spacings_nm else "Lattice spacings found: ") + ", ".join(
                        f"{r.spacing_px:.3g} px" + (f" ({r.spacing_nm:.4g} nm)" if pixel else "")
                        for r in peaks.itertuples()) + ".")
    sections.append(Section("Power spectrum and lattice spacings", text=lattice_text, tables=[peaks],
                            figures=[(figs[-1], "radially averaged power spectrum of the network input")]))

    # raw output maps
    raw = raw_output_maps(model, first.image)
    stats = raw_output_stats(raw, truth)
    tables["raw_output_stats"] = stats
    figs.append(figures.plot_raw_outputs(first.image, raw, out / "raw_outputs.png", mask=truth))
    sections.append(Section(
        "Raw output maps",
        text=("The two pre-softmax channels and the softmax (Horwath et al. 2020). A network that segments by "
              "particle features gives smooth channels that separate particles from the support; one that has "
              "learned the support's noise shows its texture in the background channel (high texture fraction, "
              "low separation). Separation = difference of the particle and background means over the pooled "
              "within-class standard deviation (d′), computed over the "
              + ("true mask." if truth is not None else "predicted mask (no true mask given).")),
        tables=[stats], figures=[(figs[-1], "input, raw output 0 (background), raw output 1 (particle), softmax")]))

    # frequency ablation
    masks = [p.mask for p in prepared] if has_truth else \
        [particle_probability(model, p.image) >= 0.5 for p in prepared]
    ablation, examples = frequency_ablation(model, [p.image for p in prepared], masks, pixel_size_nm=pixel,
                                            lattice=peaks["frequency_cycles_per_px"].tolist(),
                                            return_images=True)
    tables["ablation"] = ablation
    figs.append(figures.plot_ablation(ablation, out / "ablation.png", examples=examples, mask=masks[0]))
    shown = ablation[["band", "removes", "from_cycles_per_px", "to_cycles_per_px", "from_period_nm",
                      "to_period_nm", "variance_removed", "dice", "drop"]]
    warn = [] if has_truth else ["no true mask: Dice is measured against the model's own prediction on the "
                                 "unablated input (agreement, not accuracy)"]
    sections.append(Section(
        "Frequency ablation",
        text=(f"Hard Dice (threshold 0.5) over {len(prepared)} image(s) with one band of spatial frequencies "
              "removed from the network input; drop = Dice(unablated) − Dice(ablated). Periods are given in px and "
              "(with a pixel size) nm; 'from' is the lowest removed frequency. A network that uses amplitude "
              "contrast loses little to low-passes and much to high-passes; one that uses lattice fringes collapses "
              "under the lattice band-stop."),
        tables=[shown], figures=[(figs[-1], "Dice per ablation; ablated inputs and their probability maps")],
        warnings=warn))

    # occlusion and saliency on a crop
    region_full = truth if truth is not None else probability >= 0.5
    ys, xs = _crop_around(region_full, first.image.shape, int(crop_px))
    crop = first.image[ys, xs]
    crop_region = region_full[ys, xs] if region_full[ys, xs].any() else None
    sal = gradient_saliency(model, crop, region=crop_region)
    occ = None
    if occlusion:
        patch = min(int(occlusion_patch_px), min(crop.shape))
        occ = occlusion_map(model, crop, region=crop_region, patch_px=patch,
                            stride_px=max(1, min(int(occlusion_stride_px), patch)), progress=progress)
    figs.append(figures.plot_saliency(crop, out / "saliency.png", occlusion=occ, saliency=sal,
                                      probability=probability[ys, xs],
                                      mask=None if truth is None else truth[ys, xs]))
    inside = crop_region if crop_region is not None else np.ones(crop.shape, bool)
    near = _saliency_summary(sal, inside)
    tables["saliency_summary"] = near
    sections.append(Section(
        "Occlusion and gradient saliency",
        text=(f"On a {crop.shape[0]}×{crop.shape[1]} px crop around the largest particle (rows {ys.start}–"
              f"{ys.stop - 1}, columns {xs.start}–{xs.stop - 1}). Occlusion: drop of the mean particle probability of "
              f"the explained region when a {occlusion_patch_px} px patch is replaced by the image mean. Saliency: "
              "|∂ mean particle probability / ∂ input|. The table gives the share of the saliency that falls inside "
              "the particle, on its rim (±2 px) and on the support."),
        tables=[near], figures=[(figs[-1], "crop, probability, occlusion and gradient saliency")]))

    # line profiles
    lines = choose_particle_lines(region_full, n_particles=n_profiles)
    profiles = particle_line_profiles(first.image, probability, mask=truth, lines=lines, pixel_size_nm=pixel)
    tables["line_profiles"] = profiles
    figs.append(figures.plot_line_profiles(profiles, out / "line_profiles.png", image=first.image, lines=lines))
    sections.append(Section(
        "Line profiles",
        text=("Network input and particle probability along lines through the largest particles (major axis, twice "
              "the particle length)" + (", with the true mask shaded." if truth is not None else ".")),
        figures=[(figs[-1], "line profiles across particles")]))

    for name, table in tables.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    report = write_report(out / "report.html", "What does the network look at?", sections)
    return ExplainResult(report=report, tables=tables, figures=figs)


def _saliency_summary(saliency: np.ndarray, region: np.ndarray) -> pd.DataFrame:
    from scipy import ndimage

    total = float(saliency.sum()) or 1.0
    grown = ndimage.binary_dilation(region, iterations=2)
    shrunk = ndimage.binary_erosion(region, iterations=2)
    rim = grown & ~shrunk
    parts = {"particle interior": shrunk, "rim (±2 px)": rim, "support": ~grown}
    return pd.DataFrame({"where": list(parts), "pixels": [int(m.sum()) for m in parts.values()],
                         "saliency_share": [float(saliency[m].sum()) / total for m in parts.values()]})


__all__ = ["ExplainInput", "ExplainResult", "explain_report", "load_inputs", "resolve_model"]
