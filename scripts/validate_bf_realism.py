"""Compare simulated bright-field TEM images with the real bright-field images of ../shared/real/ardagen.

The six real BF images (dark particles, found by polarity: PtC1, PtC2, PtCo1, PtCo3, Pt_carbon1, Pt_carbon2) carry YOLO boxes and no pixel size, so every statistic is scale-free or in pixels and is measured
the same way on both sides, from boxes (for simulations, the boxes of the exact instance labels):

* ``contrast`` = 1 − median(core) / median(local background): core = within 0.25 d of the box centre,
  background = the annulus 0.75–1.25 d outside every box (d = √(w h), particles with d ≥ 6 px, away from the
  border). 8-bit exports have an unknown black level, so real contrasts are upper or lower bounds.
* ``edge_10_90`` = the radial distance over which the mean azimuthal profile goes from 10 % to 90 % of the
  way from the core to the background level, in units of d (scale-free).
* ``noise_lag1`` = lag-1 autocorrelation of the high-passed background (image − Gaussian σ 3 px, outside the
  dilated boxes): ≈ 0 for white noise, higher for a camera PSF, JPEG smoothing or support texture.
* ``noise_cv`` = std of that high-passed background / the median background level.

Usage: python scripts/validate_bf_realism.py [--sim data/bf/train] [--n-sim 40]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "ardagen"
BF_REAL = ["PtC1", "PtC2", "PtCo1", "PtCo3", "Pt_carbon1", "Pt_carbon2"]


def boxes_from_labels(instances: np.ndarray) -> list[tuple[float, float, float, float]]:
    """(cx, cy, w, h) in px of every instance."""
    out = []
    for sl in ndimage.find_objects(instances):
        if sl is None:
            continue
        h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        out.append(((sl[1].start + sl[1].stop) / 2, (sl[0].start + sl[0].stop) / 2, w, h))
    return out


def measure(image: np.ndarray, boxes) -> dict[str, list[float]]:
    image = np.asarray(image, dtype=np.float64)
    hgt, wid = image.shape
    inside = np.zeros(image.shape, bool)
    for cx, cy, w, h in boxes:
        inside[max(0, int(cy - h / 2)):int(cy + h / 2) + 1, max(0, int(cx - w / 2)):int(cx + w / 2) + 1] = True
    outside = ~ndimage.binary_dilation(inside, iterations=2)
    stats: dict[str, list[float]] = {"contrast": [], "edge_10_90": []}
    for cx, cy, w, h in boxes:
        d = float(np.sqrt(w * h))
        r_out = 1.25 * d
        if d < 6 or cx < r_out + 1 or cy < r_out + 1 or cx + r_out + 2 > wid or cy + r_out + 2 > hgt:
            continue
        y0, y1, x0, x1 = int(cy - r_out), int(cy + r_out) + 1, int(cx - r_out), int(cx + r_out) + 1
        patch = image[y0:y1, x0:x1]
        yy, xx = np.mgrid[y0:y1, x0:x1]
        r = np.hypot(xx - cx, yy - cy)
        core = patch[r <= 0.25 * d]
        ring = patch[(r >= 0.75 * d) & (r <= r_out) & outside[y0:y1, x0:x1]]
        if core.size < 4 or ring.size < 20:
            continue
        i_core, i_bg = np.median(core), np.median(ring)
        if i_bg <= 0:
            continue
        stats["contrast"].append(1 - i_core / i_bg)
        edges = np.arange(0, 1.0 * d + 1e-9, 0.05 * d)
        prof = np.array([patch[(r >= a) & (r < a + 0.05 * d)].mean() if ((r >= a) & (r < a + 0.05 * d)).any()
                         else np.nan for a in edges])
        if i_bg - i_core <= 0 or np.isnan(prof).any():
            continue
        frac = (prof - i_core) / (i_bg - i_core)
        above10 = np.nonzero(frac >= 0.1)[0]
        above90 = np.nonzero(frac >= 0.9)[0]
        if len(above10) and len(above90):
            stats["edge_10_90"].append(max(0.0, (edges[above90[0]] - edges[above10[0]]) / d))
    high = image - ndimage.gaussian_filter(image, 3)
    a, b = high[:, :-1], high[:, 1:]
    m = outside[:, :-1] & outside[:, 1:]
    if m.sum() > 100:
        av, bv = a[m] - a[m].mean(), b[m] - b[m].mean()
        stats["noise_lag1"] = [float((av * bv).mean() / np.sqrt((av ** 2).mean() * (bv ** 2).mean()))]
        stats["noise_cv"] = [float(high[outside].std() / np.median(image[outside]))]
    return stats


def summary(name: str, rows: list[dict[str, list[float]]]) -> None:
    cells = []
    for key in ("contrast", "edge_10_90", "noise_lag1", "noise_cv"):
        values = np.concatenate([np.asarray(r.get(key, []), float) for r in rows])
        q = np.percentile(values, [25, 50, 75]) if len(values) else [np.nan] * 3
        cells.append(f"{key} {q[1]:.3f} [{q[0]:.3f}–{q[2]:.3f}] (n={len(values)})")
    print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", type=Path, default=Path("data/bf/train"))
    parser.add_argument("--n-sim", type=int, default=40)
    args = parser.parse_args()
    rows = []
    if REAL.exists():
        for name in BF_REAL:
            data = np.asarray(Image.open(REAL / "images" / f"{name}.jpg").convert("L"), dtype=np.float64)
            h, w = data.shape
            lab = np.loadtxt(REAL / "labels" / f"{name}.txt", ndmin=2)
            boxes = [(x * w, y * h, bw * w, bh * h) for _, x, y, bw, bh in lab]
            row = measure(data, boxes)
            rows.append(row)
            summary(f"real {name}", [row])
        summary("real BF, all 6", rows)
    from nanoseg.datasets import open_dataset

    ds = open_dataset(args.sim)
    sims = []
    for image_id in ds.ids[: args.n_sim]:
        sims.append(measure(np.asarray(ds.image(image_id)), boxes_from_labels(np.asarray(ds.instances(image_id)))))
    summary(f"simulated ({len(sims)} of {args.sim})", sims)


if __name__ == "__main__":
    main()
