"""Make the tiny example micrograph shipped in ``src/nanoseg/data/`` (reproducible: fixed seed).

A 256×256 synthetic HRTEM-like image at 0.02 nm/px (5.12 nm field of view) of three Au particles
(diameters 2.0, 1.6 and 1.0 nm) on an amorphous-carbon-like background, recorded at 400 e/Å²:

- background: 1 + low-pass-filtered random phase (speckle of ~0.3 nm, like thin amorphous carbon);
- particles: amplitude contrast ∝ projected thickness of a sphere, plus Au {111} lattice fringes
  (d = 0.2355 nm, random in-plane orientation per particle) whose contrast grows with thickness;
- optics/detector: Gaussian blur (σ = 0.8 px, a detector MTF stand-in), a gentle uneven illumination
  (a linear ramp of ±6 % across x and a 4 % parabolic dip along y, for flat-field correction to remove),
  Poisson counting noise at the dose (400 e/Å² × (0.2 Å)² = 16 electrons per pixel on average), and
  10 single-pixel x-ray hits of +100…200 counts on the background (positions in the metadata).

Outputs ``example_micrograph.tif`` (float32 electron counts, ImageJ calibration, dose + metadata in the Info
field) and ``example_mask.png`` (0/255, the particles' true extent).

Run:  .venv/bin/python scripts/make_example_micrograph.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from nanoseg.io import Micrograph, write_tiff

SHAPE = (256, 256)
PIXEL_SIZE_NM = 0.02
DOSE_E_PER_A2 = 400.0
AU_111_NM = 0.2355
# (x px, y px, radius nm)
PARTICLES = [(80.0, 90.0, 1.0), (180.0, 170.0, 0.8), (190.0, 60.0, 0.5)]
OUT = Path(__file__).resolve().parents[1] / "src" / "nanoseg" / "data"


def make(seed: int = 20240611) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]].astype(np.float64)
    speckle = ndimage.gaussian_filter(rng.normal(size=SHAPE), sigma=0.15 / PIXEL_SIZE_NM)
    intensity = 1.0 + 0.08 * speckle / speckle.std()
    mask = np.zeros(SHAPE, dtype=bool)
    for x, y, radius_nm in PARTICLES:
        radius_px = radius_nm / PIXEL_SIZE_NM
        r2 = ((xx - x) ** 2 + (yy - y) ** 2) / radius_px**2
        inside = r2 <= 1.0
        mask |= inside
        thickness = np.sqrt(np.clip(1.0 - r2, 0.0, None))  # sphere's projected thickness, 0…1
        angle = rng.uniform(0, np.pi)
        k = 2 * np.pi / (AU_111_NM / PIXEL_SIZE_NM)
        phase = k * ((xx - x) * np.cos(angle) + (yy - y) * np.sin(angle)) + rng.uniform(0, 2 * np.pi)
        fringes = np.cos(phase)
        intensity = np.where(inside, intensity * (1.0 - 0.35 * thickness) + 0.18 * thickness * fringes, intensity)
    intensity = ndimage.gaussian_filter(intensity, sigma=0.8)
    u, v = (xx - SHAPE[1] / 2) / (SHAPE[1] / 2), (yy - SHAPE[0] / 2) / (SHAPE[0] / 2)
    intensity *= 1.0 + 0.06 * u - 0.04 * (1.0 - v**2)
    electrons_per_px = DOSE_E_PER_A2 * (PIXEL_SIZE_NM * 10) ** 2
    counts = rng.poisson(np.clip(intensity, 0, None) * electrons_per_px).astype(np.int64)
    background = np.flatnonzero(~ndimage.binary_dilation(mask, iterations=3))
    hits = np.sort(rng.choice(background, size=10, replace=False))
    counts.flat[hits] += rng.integers(100, 200, size=hits.size)
    xrays = [[int(i) // SHAPE[1], int(i) % SHAPE[1]] for i in hits]
    return counts.astype(np.uint16), mask.astype(np.uint8), xrays


def main() -> None:
    import imageio.v3 as iio

    counts, mask, xrays = make()
    micrograph = Micrograph(
        counts, pixel_size_nm=PIXEL_SIZE_NM, dose_e_per_A2=DOSE_E_PER_A2,
        metadata={"voltage_kV": 300.0, "material": "Au", "diameters_nm": [2 * p[2] for p in PARTICLES],
                  "description": "synthetic HRTEM-like example made by scripts/make_example_micrograph.py",
                  "xray_pixels_rc": xrays},
    )
    OUT.mkdir(parents=True, exist_ok=True)
    write_tiff(OUT / "example_micrograph.tif", micrograph)
    iio.imwrite(OUT / "example_mask.png", mask * 255)
    print(f"wrote {OUT / 'example_micrograph.tif'} and {OUT / 'example_mask.png'}: "
          f"{mask.mean():.3f} particle fraction, mean {counts.mean():.2f} e/px")


if __name__ == "__main__":
    main()
