"""Preprocessing benchmark: accuracy and speed of the steps, measured side by side in one run.

Run:  .venv/bin/python benchmarks/preprocess.py [--size 2048]

Prints
- flat field: max relative error of the fitted illumination vs the truth on a synthetic particle image
  (12 % dark-particle coverage) for 0…3 reweighting rounds, and fit time at ¼ scale vs full scale;
- resampling: max error against the analytic band-limited image, and time, Fourier vs spatial;
- x-ray removal: injected vs found, and time;
- auto-label: Dice against the true disks at three noise levels, and time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nanoseg.preprocess import auto_label, flat_field, remove_xrays, resample


def timed(function, *args, repeat=1, **kwargs):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        out = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return out, best


def particle_image(size, rng):
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    while mask.mean() < 0.12:
        cy, cx = rng.integers(0, size, 2)
        r = rng.integers(size // 60, size // 20)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    return np.where(mask, 0.6, 1.0), mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels for the timings")
    size = parser.parse_args().size
    rng = np.random.default_rng(0)

    print(f"== flat field (synthetic {size}² particle image, illumination ±~30 %, noise 3 %)")
    image, _ = particle_image(size, rng)
    yy, xx = np.mgrid[:size, :size] / size
    illumination = 1000 * (1 + 0.3 * xx - 0.25 * yy**2 + 0.1 * xx * yy)
    raw = image * illumination + rng.normal(0, 30, image.shape)
    for n in range(4):
        (_, background), seconds = timed(flat_field, raw, n_reweight=n)
        print(f"  n_reweight={n}: max |background/truth - 1| = {np.abs(background / illumination - 1).max():.4f}"
              f"  ({seconds:.2f} s)")
    _, quarter = timed(flat_field, raw, scale=0.25)
    _, full = timed(flat_field, raw, scale=1.0)
    print(f"  fit at 1/4 scale {quarter:.2f} s vs full scale {full:.2f} s: {full / quarter:.1f}x faster")

    print(f"== resampling {size}² at 0.02 nm/px (a Gaussian blob of σ = 4 px, analytic truth)")
    for to_nm in (0.03, 0.013):
        c = (np.arange(size) + 0.5) * 0.02
        y, x = np.meshgrid(c, c, indexing="ij")
        fov = size * 0.02
        blob = np.exp(-((y - 0.4 * fov) ** 2 + (x - 0.55 * fov) ** 2) / (2 * (4 * 0.02) ** 2))
        results = {}
        for method in ("fourier", "spatial"):
            out, seconds = timed(resample, blob, from_pixel_size_nm=0.02, to_pixel_size_nm=to_nm, method=method)
            n = out.shape[0]
            cn = (np.arange(n) + 0.5) * fov / n
            yn, xn = np.meshgrid(cn, cn, indexing="ij")
            truth = np.exp(-((yn - 0.4 * fov) ** 2 + (xn - 0.55 * fov) ** 2) / (2 * (4 * 0.02) ** 2))
            results[method] = (np.abs(out - truth).max(), seconds, abs(out.mean() - blob.mean()))
        (ef, tf, mf), (es, ts, ms) = results["fourier"], results["spatial"]
        print(f"  → {to_nm} nm/px: max error fourier {ef:.1e} vs spatial {es:.1e} ({es / max(ef, 1e-12):.0f}x); "
              f"mean shift {mf:.1e} vs {ms:.1e}; time {tf:.2f} s vs {ts:.2f} s (fourier {tf / ts:.1f}x slower)")

    print(f"== x-ray removal {size}²")
    frame = 17 + rng.poisson(17, (size, size)).astype(float)
    hits = rng.choice(frame.size, 200, replace=False)
    frame.flat[hits] += rng.uniform(300, 3000, hits.size)
    for method in ("neighbour_mean", "median"):
        (_, found), seconds = timed(remove_xrays, frame, method=method)
        print(f"  {method}: injected 200, found {found} ({seconds:.2f} s)")

    print("== auto-label (256², six dark disks, contrast 0.4)")
    yy, xx = np.mgrid[:256, :256]
    truth = np.zeros((256, 256), bool)
    for cy, cx, r in [(50, 60, 12), (60, 180, 18), (150, 100, 15), (200, 200, 10), (190, 40, 20), (120, 220, 9)]:
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    for noise in (0.05, 0.1, 0.2):
        noisy = np.where(truth, 0.6, 1.0) + rng.normal(0, noise, truth.shape)
        mask, seconds = timed(auto_label, noisy)
        dice = 2 * (mask.astype(bool) & truth).sum() / (mask.sum() + truth.sum())
        print(f"  noise σ={noise}: Dice {dice:.3f} ({seconds * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
