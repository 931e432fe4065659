"""Detection benchmark on real S/TEM images: nanoseg's models against two baselines, per modality.

Data: ``../shared/real/ardagen/`` (33 real S/TEM JPEGs of supported catalyst particles with YOLO boxes, MIT
licence; ``labels/<stem>.txt`` rows ``class cx cy w h`` as fractions of the image side). 27 images are
HAADF-STEM (bright particles), 6 bright-field TEM (dark particles); the modality of each image is found from
its polarity (the mean grey level at the box centres against the image median), which uses the boxes and
is only used to *group* the results; every method sees the image alone.

Per image and method, detections are the centroids of the predicted particles. A detection matches a box
when its centroid lies inside the box or within half the box size (``max(w, h) / 2``) of the box centre;
matching is one-to-one (Hungarian, nearest first). Recall = matched boxes / boxes; precision = matched
detections / detections; F1 their harmonic mean; pooled (micro) over the images of a modality, and the mean
per-image F1. **Caveat: the boxes are not exhaustive** (unlabelled particles exist), so precision (and F1) is
a lower bound: an unboxed real particle that is found counts as a false positive.

Methods (all from the image alone, at the same scale):

``otsu``
    Gaussian blur (σ = d/8 px) + Otsu threshold on the particle side of the polarity, 8-connected
    components of at least (d/4)² px (no splitting), d the particle diameter of the scale below.
``auto_label``
    :func:`nanoseg.preprocess.labels.auto_label` (σ 2 px, opening radius d/4 px, polarity as estimated) on the
    image binned to ≈ 14 px particles, its 8-connected components.
``haadf_stem`` / ``bf_tem`` / ``default``
    a nanoseg model (``src/nanoseg/data/models/<name>/``, when present): :func:`nanoseg.infer.predict` with the
    pixel size that puts the particles at the model's typical training diameter
    (:func:`nanoseg.infer.scale.assumed_pixel_size_nm`), particles by :func:`nanoseg.particles.label_particles`
    (touching ones split).

Scale: no pixel size is given. ``--scale estimate`` (the default, the number to quote) takes the particle
diameter from :func:`nanoseg.infer.scale.estimate_particle_diameter_px` (image only); ``--scale boxes`` takes
the median box side (uses the labels: an **upper bound**, not a result). The output says which was used.

Run (from the repository root, ``../shared`` beside it)::

    .venv/bin/python benchmarks/real_images.py                     # every image, every method, estimated scale
    .venv/bin/python benchmarks/real_images.py --scale boxes --images Cu1,PtC1 --methods otsu,haadf_stem
    .venv/bin/python benchmarks/real_images.py --json runs/real_images.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "real" / "ardagen"
MODELS = ROOT / "src" / "nanoseg" / "data" / "models"
WORK_DIAMETER_PX = 14.0  # baselines run on the image binned so that particles are about this wide
BASELINES = ("otsu", "auto_label")
MODEL_METHODS = ("haadf_stem", "bf_tem", "default")
CAVEAT = ("boxes are not exhaustive (unlabelled particles exist): precision and F1 are lower bounds; "
          "recall is the reliable number")


class BenchmarkError(RuntimeError):
    """The data is missing or unreadable (one clear message, no traceback)."""


# ------------------------------------------------------------------------------------------------ data
def load_boxes(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """YOLO boxes of one image as an (n, 4) array of pixel (cx, cy, w, h); rows ``class cx cy w h`` in fractions.

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a.txt"); _ = open(f, "w").write("0 0.5 0.25 0.1 0.2\\n")
    >>> load_boxes(Path(f), (100, 200)).tolist()
    [[100.0, 25.0, 20.0, 20.0]]
    """
    try:
        rows = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{path}: cannot read YOLO boxes ({exc})") from exc
    if rows.size == 0:
        return np.zeros((0, 4))
    if rows.shape[1] != 5:
        raise BenchmarkError(f"{path}: expected 5 columns (class cx cy w h), got {rows.shape[1]}")
    h, w = shape
    return np.stack([rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h], axis=1)


def read_grey(path: Path) -> np.ndarray:
    """An image file as a float64 grey-level array."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.float64)
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read the image ({exc})") from exc


def list_images(root: Path, names: list[str] | None = None) -> list[tuple[str, Path, Path]]:
    """(stem, image, labels) for the images of ``root`` (all, or ``names``); a clear error when absent."""
    images = root / "images"
    if not images.is_dir():
        raise BenchmarkError(f"no real images at {images}: this benchmark needs ../shared/real/ardagen beside the "
                             "repository (see ../shared/real/README.md)")
    found = sorted(images.glob("*.jpg")) + sorted(images.glob("*.png"))
    out = [(p.stem, p, root / "labels" / f"{p.stem}.txt") for p in found]
    if names:
        known = {s for s, _, _ in out}
        missing = [n for n in names if n not in known]
        if missing:
            raise BenchmarkError(f"unknown image(s) {', '.join(missing)} in {images}")
        out = [t for t in out if t[0] in names]
    return [t for t in out if t[2].is_file()]


def polarity_from_boxes(image: np.ndarray, boxes: np.ndarray) -> str:
    """"bright" (HAADF-STEM) when the box centres are brighter than the image median, else "dark" (BF-TEM)."""
    h, w = image.shape
    cx = np.clip(boxes[:, 0].astype(int), 0, w - 1)
    cy = np.clip(boxes[:, 1].astype(int), 0, h - 1)
    return "bright" if float(image[cy, cx].mean()) > float(np.median(image)) else "dark"


# -------------------------------------------------------------------------------------------- matching
def match_detections(centroids_xy: np.ndarray, boxes: np.ndarray) -> tuple[int, int, int]:
    """One-to-one matching of detections to boxes: (true positives, false positives, false negatives).

    A detection (x, y) may match a box when it lies inside the box or within half the box size
    (``max(w, h) / 2``) of its centre; among those pairs, a minimum-total-distance one-to-one assignment.

    >>> boxes = np.array([[10.0, 10.0, 6.0, 6.0], [30.0, 10.0, 6.0, 6.0]])
    >>> match_detections(np.array([[11.0, 9.0], [12.0, 11.0], [50.0, 50.0]]), boxes)
    (1, 2, 1)
    """
    centroids_xy = np.asarray(centroids_xy, dtype=float).reshape(-1, 2)
    n_det, n_box = len(centroids_xy), len(boxes)
    if n_det == 0 or n_box == 0:
        return 0, n_det, n_box
    dx = centroids_xy[:, None, 0] - boxes[None, :, 0]
    dy = centroids_xy[:, None, 1] - boxes[None, :, 1]
    dist = np.hypot(dx, dy)
    inside = (np.abs(dx) <= boxes[None, :, 2] / 2) & (np.abs(dy) <= boxes[None, :, 3] / 2)
    near = dist <= np.maximum(boxes[None, :, 2], boxes[None, :, 3]) / 2
    feasible = inside | near
    rows_any = np.flatnonzero(feasible.any(axis=1))
    cols_any = np.flatnonzero(feasible.any(axis=0))
    if rows_any.size == 0:
        return 0, n_det, n_box
    sub = feasible[np.ix_(rows_any, cols_any)]
    cost = np.where(sub, dist[np.ix_(rows_any, cols_any)], 1e9)
    r, c = linear_sum_assignment(cost)
    tp = int(sub[r, c].sum())
    return tp, n_det - tp, n_box - tp


def scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Recall, precision and F1 (0 where undefined)."""
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"recall": recall, "precision": precision, "f1": f1}


def centroids_of_labels(labels: np.ndarray) -> np.ndarray:
    """(x, y) centroids of the labelled objects (0 = background)."""
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return np.zeros((0, 2))
    cy_cx = np.asarray(ndimage.center_of_mass(np.ones_like(labels), labels, np.arange(1, n + 1)), dtype=float)
    present = np.isfinite(cy_cx).all(axis=1)
    return cy_cx[present][:, ::-1]


# ---------------------------------------------------------------------------------------------- scale
def particle_diameter_px(image: np.ndarray, boxes: np.ndarray, scale: str) -> tuple[float, str, str]:
    """The particle diameter (px), how it was found, and the particle polarity (from the image) to use."""
    from nanoseg.infer.scale import estimate_particle_diameter_px

    estimate = estimate_particle_diameter_px(image)
    if scale == "boxes":
        return float(np.median(np.maximum(boxes[:, 2], boxes[:, 3]))), "median box side", estimate.polarity
    if estimate.diameter_px is None:
        return 8.0, "no blob stood out: 8 px assumed", estimate.polarity
    return float(estimate.diameter_px), "estimated (nanoseg.infer.scale)", estimate.polarity


# -------------------------------------------------------------------------------------------- methods
def _binned(image: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return image
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def otsu_baseline(image: np.ndarray, diameter_px: float, polarity: str) -> np.ndarray:
    """Gaussian blur + Otsu threshold + connected components: detection centroids (x, y) in image px."""
    from skimage.filters import threshold_otsu

    factor = max(1, int(diameter_px // WORK_DIAMETER_PX))
    work = _binned(image, factor)
    d = diameter_px / factor
    smooth = ndimage.gaussian_filter(work, max(d / 8, 0.5))
    t = threshold_otsu(smooth)
    mask = smooth > t if polarity == "bright" else smooth < t
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    labels = _drop_small(labels, (d / 4) ** 2)
    return (centroids_of_labels(labels) + 0.5) * factor - 0.5


def auto_label_baseline(image: np.ndarray, diameter_px: float, polarity: str) -> np.ndarray:
    """nanoseg's auto_label (Horwath et al.) on the image binned to ≈ 14 px particles: centroids (x, y)."""
    from nanoseg.preprocess.labels import auto_label

    factor = max(1, int(diameter_px // WORK_DIAMETER_PX))
    work = _binned(image, factor)
    d = diameter_px / factor
    mask = auto_label(work, sigma_px=2.0, opening_radius_px=max(1, int(round(d / 4))),
                      particles_dark=polarity == "dark")
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    labels = _drop_small(labels, (d / 4) ** 2)
    return (centroids_of_labels(labels) + 0.5) * factor - 0.5


def _drop_small(labels: np.ndarray, min_area_px: float) -> np.ndarray:
    areas = np.bincount(labels.ravel())
    keep = areas >= max(min_area_px, 1.0)
    keep[0] = False
    relabel = np.zeros(areas.size, dtype=np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1)
    return relabel[labels]


def model_detections(image: np.ndarray, diameter_px: float, model_dir: Path) -> tuple[np.ndarray, dict]:
    """A nanoseg model's detections: predict at the assumed pixel size, label_particles, centroids (x, y)."""
    from nanoseg.infer import predict
    from nanoseg.infer.scale import assumed_pixel_size_nm
    from nanoseg.io import Micrograph
    from nanoseg.models import load_model
    from nanoseg.particles import label_particles

    loaded = load_model(model_dir)
    px, _notes = assumed_pixel_size_nm(diameter_px, loaded.card, image_shape=image.shape)
    result = predict(Micrograph(image.astype(np.float32), pixel_size_nm=px), loaded, device="cpu", ood=False)
    d_min_nm = 0.25 * diameter_px * px  # objects under a quarter of the typical diameter are noise
    labels = label_particles(result.mask, pixel_size_nm=px, min_diameter_nm=d_min_nm)
    return centroids_of_labels(labels), {"assumed_pixel_size_nm": px}


def available_methods() -> list[str]:
    """The baselines and every shipped nanoseg model folder of :data:`MODEL_METHODS` that exists."""
    return list(BASELINES) + [m for m in MODEL_METHODS if (MODELS / m / "card.json").is_file()]


# ------------------------------------------------------------------------------ realism of the simulations
def boxes_from_instances(instances: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) pixel boxes of labelled particles (the simulator's exact labels as YOLO-like boxes)."""
    out = []
    for sl in ndimage.find_objects(instances):
        if sl is None:
            continue
        ys, xs = sl
        out.append([(xs.start + xs.stop - 1) / 2, (ys.start + ys.stop - 1) / 2, xs.stop - xs.start,
                    ys.stop - ys.start])
    return np.asarray(out, dtype=float).reshape(-1, 4)


def _radial_profile(image: np.ndarray, box: np.ndarray, n_bins: int = 16) -> np.ndarray | None:
    """Mean grey level against r/d (d = the box side) in [0, 1.5), from the box centre."""
    cx, cy, w, h = box
    d = max(w, h)
    half = int(np.ceil(0.75 * d)) + 1
    x0, y0 = int(round(cx)) - half, int(round(cy)) - half
    if x0 < 0 or y0 < 0 or x0 + 2 * half >= image.shape[1] or y0 + 2 * half >= image.shape[0] or d < 3:
        return None
    crop = image[y0: y0 + 2 * half + 1, x0: x0 + 2 * half + 1]
    yy, xx = np.mgrid[: crop.shape[0], : crop.shape[1]]
    r = np.hypot(xx + x0 - cx, yy + y0 - cy) / d
    index = np.minimum((r / 1.5 * n_bins).astype(int), n_bins)
    sums = np.bincount(index.ravel(), weights=crop.ravel(), minlength=n_bins + 1)[:n_bins]
    counts = np.bincount(index.ravel(), minlength=n_bins + 1)[:n_bins]
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def image_statistics(image: np.ndarray, boxes: np.ndarray) -> dict[str, float]:
    """Scale-free statistics of one image and its particle boxes (the realism table's columns).

    - ``contrast``: (centre − surrounding ring) / (ring − dark level), medians over particles; centre r < 0.2 d,
      ring 0.75 d < r < 1.0 d (d the box side), dark level the image's 1st percentile;
    - ``edge_width_d``: 10–90 % rise of the mean radial profile, in particle diameters;
    - ``area_fraction``: Σ π d²/4 of the boxes / the image area (how dense the particles are);
    - ``noise_slope``: log-log slope of the radially averaged power spectrum between q = 1/d and q = 4/d
      (q in cycles per px) — the shape of the spectrum over the particle scales;
    - ``noise_floor``: power in 0.35–0.5 cycles/px over power at 0.5/d–1/d (pixel noise against particle
      structure).
    """
    dark = float(np.percentile(image, 1))
    d = float(np.median(np.maximum(boxes[:, 2], boxes[:, 3]))) if len(boxes) else float("nan")
    profiles = [p for p in (_radial_profile(image, b) for b in boxes) if p is not None and np.isfinite(p).all()]
    out: dict[str, float] = {"n_particles": float(len(boxes)), "diameter_px": d}
    if profiles:
        prof = np.asarray(profiles)
        bins = (np.arange(prof.shape[1]) + 0.5) * 1.5 / prof.shape[1]
        centre = prof[:, bins < 0.2].mean(axis=1)
        ring = prof[:, (bins > 0.75) & (bins < 1.0)].mean(axis=1)
        out["contrast"] = float(np.median((centre - ring) / np.maximum(ring - dark, 1e-6)))
        mean = prof.mean(axis=0)
        norm = (mean - mean[bins > 0.75].mean()) / max(mean[0] - mean[bins > 0.75].mean(), 1e-9)
        r90 = bins[np.argmax(norm < 0.9)] if (norm < 0.9).any() else np.nan
        r10 = bins[np.argmax(norm < 0.1)] if (norm < 0.1).any() else np.nan
        out["edge_width_d"] = float(r10 - r90)
    h, w = image.shape
    out["area_fraction"] = float(np.sum(np.pi / 4 * np.maximum(boxes[:, 2], boxes[:, 3]) ** 2) / (h * w))
    side = min(h, w, 1024)
    tile = image[(h - side) // 2: (h - side) // 2 + side, (w - side) // 2: (w - side) // 2 + side]
    window = np.hanning(side)[:, None] * np.hanning(side)[None, :]
    power = np.abs(np.fft.fft2((tile - tile.mean()) * window)) ** 2
    q = np.hypot(np.fft.fftfreq(side)[:, None], np.fft.fftfreq(side)[None, :])
    edges = np.linspace(0, 0.5, side // 2 + 1)
    index = np.digitize(q.ravel(), edges) - 1
    ok = (index >= 0) & (index < len(edges) - 1)
    radial = (np.bincount(index[ok], weights=power.ravel()[ok], minlength=len(edges) - 1)
              / np.maximum(np.bincount(index[ok], minlength=len(edges) - 1), 1))
    qc = 0.5 * (edges[1:] + edges[:-1])
    if np.isfinite(d) and d > 0:
        band = (qc >= 1 / d) & (qc <= min(4 / d, 0.5))
        if band.sum() >= 3:
            out["noise_slope"] = float(np.polyfit(np.log(qc[band]), np.log(radial[band] + 1e-12), 1)[0])
        low = (qc >= 0.5 / d) & (qc <= 1 / d)
        high = qc >= 0.35
        if low.any() and high.any():
            out["noise_floor"] = float(radial[high].mean() / radial[low].mean())
    return out


STAT_COLUMNS = ("contrast", "edge_width_d", "area_fraction", "noise_slope", "noise_floor", "diameter_px",
                "n_particles")


def realism_table(real: list[dict], simulated: list[dict]) -> str:
    """Median [25th–75th percentile] of each statistic, real HAADF images against the simulations."""
    def cell(rows, key):
        v = np.array([r[key] for r in rows if key in r and np.isfinite(r[key])])
        if not v.size:
            return "–"
        q25, q50, q75 = np.percentile(v, [25, 50, 75])
        return f"{q50:.3g} [{q25:.3g}–{q75:.3g}]"

    lines = [f"| statistic | real HAADF ({len(real)} images) | simulated ({len(simulated)} images) |",
             "|---|---|---|"]
    lines += [f"| {key} | {cell(real, key)} | {cell(simulated, key)} |" for key in STAT_COLUMNS]
    return "\n".join(lines)


def validate_simulations(root: Path, dataset: Path | None, n_images: int) -> str:
    """The realism table: the real HAADF images (polarity from their boxes) against HAADF simulations.

    ``dataset``: a folder written by ``nanoseg simulate`` with the HAADF preset (its first ``n_images``); None
    simulates ``n_images`` with examples/simulate/haadf_training.yaml (seed 11).
    """
    real = []
    for _stem, image_path, label_path in list_images(root):
        image = read_grey(image_path)
        boxes = load_boxes(label_path, image.shape)
        if polarity_from_boxes(image, boxes) == "bright":
            real.append(image_statistics(image, boxes))
    simulated = []
    if dataset is not None:
        from nanoseg.datasets import open_dataset

        ds = open_dataset(dataset)
        for image_id in list(ds.ids)[:n_images]:
            inst = ds.instances(image_id)
            simulated.append(image_statistics(np.asarray(ds.image(image_id), float), boxes_from_instances(inst)))
    else:
        from nanoseg.simulate import simulate_image

        for i in range(n_images):
            sim = simulate_image(ROOT / "examples" / "simulate" / "haadf_training.yaml", seed=11 + i)
            simulated.append(image_statistics(sim.micrograph.data.astype(float),
                                              boxes_from_instances(sim.instances)))
    return realism_table(real, simulated)


# ------------------------------------------------------------------------------------------------ run
@dataclass
class ImageResult:
    image: str
    modality: str
    method: str
    scale: str
    diameter_px: float
    n_boxes: int
    n_detections: int
    tp: int
    fp: int
    fn: int
    recall: float
    precision: float
    f1: float
    seconds: float


def run_image(stem: str, image_path: Path, label_path: Path, methods: list[str], scale: str) -> list[ImageResult]:
    """All methods on one image."""
    image = read_grey(image_path)
    boxes = load_boxes(label_path, image.shape)
    modality = "haadf_stem" if polarity_from_boxes(image, boxes) == "bright" else "bf_tem"
    diameter, how, polarity = particle_diameter_px(image, boxes, scale)
    out = []
    for method in methods:
        t0 = time.perf_counter()
        if method == "otsu":
            det = otsu_baseline(image, diameter, polarity)
        elif method == "auto_label":
            det = auto_label_baseline(image, diameter, polarity)
        else:
            det, _ = model_detections(image, diameter, MODELS / method)
        tp, fp, fn = match_detections(det, boxes)
        out.append(ImageResult(stem, modality, method, how, diameter, len(boxes), len(det), tp, fp, fn,
                               **scores(tp, fp, fn), seconds=time.perf_counter() - t0))
    return out


def summarize(results: list[ImageResult]) -> list[dict]:
    """Pooled (micro) recall/precision/F1 and the mean per-image F1, per modality × method."""
    rows = []
    for modality in sorted({r.modality for r in results}):
        for method in dict.fromkeys(r.method for r in results):
            group = [r for r in results if r.modality == modality and r.method == method]
            if not group:
                continue
            tp, fp, fn = (sum(getattr(r, k) for r in group) for k in ("tp", "fp", "fn"))
            rows.append({"modality": modality, "method": method, "n_images": len(group), "n_boxes": tp + fn,
                         **scores(tp, fp, fn), "mean_image_f1": float(np.mean([r.f1 for r in group]))})
    return rows


def format_table(rows: list[dict], scale: str) -> str:
    lines = [f"scale: {scale};  {CAVEAT}", "",
             "| modality | method | images | boxes | recall | precision | F1 | mean image F1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['modality']} | {r['method']} | {r['n_images']} | {r['n_boxes']} | {r['recall']:.3f} | "
                     f"{r['precision']:.3f} | {r['f1']:.3f} | {r['mean_image_f1']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DATA, help="folder with images/ and labels/ (YOLO)")
    parser.add_argument("--images", default=None, help="comma-separated image stems (default: all)")
    parser.add_argument("--methods", default=None, help=f"comma-separated, from {', '.join(BASELINES + MODEL_METHODS)}")
    parser.add_argument("--scale", choices=("estimate", "boxes"), default="estimate",
                        help="particle size from the image (estimate) or from the boxes (upper bound)")
    parser.add_argument("--json", type=Path, default=None, help="write per-image results and the summary here")
    parser.add_argument("--validate-sim", action="store_true",
                        help="print the realism table (real HAADF images against HAADF simulations) instead")
    parser.add_argument("--sim-dataset", type=Path, default=None,
                        help="with --validate-sim: a HAADF dataset folder (default: simulate --sim-images)")
    parser.add_argument("--sim-images", type=int, default=24, help="with --validate-sim: simulated images")
    args = parser.parse_args(argv)
    if args.validate_sim:
        try:
            print(validate_simulations(args.root, args.sim_dataset, args.sim_images))
        except BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        todo = list_images(args.root, args.images.split(",") if args.images else None)
        methods = args.methods.split(",") if args.methods else available_methods()
        unknown = [m for m in methods if m not in BASELINES + MODEL_METHODS]
        if unknown:
            raise BenchmarkError(f"unknown method(s) {', '.join(unknown)}")
        missing = [m for m in methods if m in MODEL_METHODS and not (MODELS / m / "card.json").is_file()]
        if missing:
            raise BenchmarkError(f"no shipped model {', '.join(missing)} under {MODELS}")
        results: list[ImageResult] = []
        for stem, image_path, label_path in todo:
            rows = run_image(stem, image_path, label_path, methods, args.scale)
            results += rows
            print(f"{stem:14s} {rows[0].modality:10s} d={rows[0].diameter_px:5.1f}px  " + "  ".join(
                f"{r.method}: R {r.recall:.2f} P {r.precision:.2f} F1 {r.f1:.2f}" for r in rows), flush=True)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(results)
    scale = ("particle diameter estimated from each image (nanoseg.infer.scale)" if args.scale == "estimate"
             else "particle diameter = median box side (uses the labels: an upper bound, not a result)")
    print()
    print(format_table(summary, scale))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"scale": scale, "caveat": CAVEAT, "summary": summary,
                                         "per_image": [asdict(r) for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
