"""HAADF-STEM images at particle-resolving magnification (0.1–2 nm/px), with exact labels.

At these pixel sizes a high-angle annular dark-field (HAADF) image is, to a good approximation, an
*incoherent* image: each probe position records the electrons scattered to high angles, which is
(thermal-diffuse, Rutherford-like) scattering summed over the atoms under the probe, each atom
contributing a cross-section ``σ(Z) ∝ Z^γ`` with ``γ ≈ 1.6–1.9`` (screened Rutherford: 2; measured 1.7).
Channelling and the phase of the wave matter only to the contrast between atomic columns, which at
≥ 0.1 nm/px is at or below the pixel; so no multislice is run. The approximation (documented in
docs/simulation.md, "HAADF-STEM at particle-resolving magnification"):

1. **Object**: the scattered fraction ``f(r) = 1 − exp(−Σ_atoms σ(Z))`` per area, from the particles' own
   atoms (ASE structures from :mod:`nanoseg.simulate.structures`, histogrammed onto a ≤ 1 Å grid) and
   from a continuum support whose projected thickness ``t(r)`` varies: an aggregate of grains (silica,
   alumina, ceria: spheres or rods of 10–60 nm, the thick, bright grains of real catalyst images with vacuum
   between them) or a film (carbon), times a fine texture (mass-thickness fluctuation at ~1–2 nm).
2. **Probe**: a Gaussian of FWHM ``probe_fwhm_nm`` (a diffraction-limited 20–30 mrad probe is ~0.1 nm;
   defocus, source size and vibration widen it; set it directly), over a 0.5 Å atom smear; each image pixel
   averages the probe-convolved object over its area (instead of a point sample: no aliasing of lattice
   fringes, which at these pixel sizes would be moiré of no consequence to the particles' outline).
3. **Counts**: ``electrons_per_pixel`` (probe current × dwell) × f, Poisson; then the detector's gain and
   offset and a Gaussian read noise; a per-line gain (flyback/line intensity noise).
4. **Scan**: the beam position of each line is shifted by a random sub-pixel jitter and by a slow linear
   drift (x shear and y stretch over the frame); image and labels are resampled with the same map.
5. **Export**: optional 8-bit conversion (black/white levels at random clip fractions) and JPEG, as the
   real images users bring.

Labels: each particle's footprint on the pixel grid by :func:`nanoseg.simulate.labels.footprint_labels`
(the same rule as the HRTEM path), then moved with the scan distortion (nearest pixel).

Particles are built once per image for up to ``n_templates`` diameters drawn from the spec; each placed
particle is one of these atom sets turned by a random angle about the beam axis (and mirrored), so every
particle is a real atom configuration and its label is exact. They rest on the support (centres where
``t > 0``); a fraction ``overlap_fraction`` may overlap in projection (their signals add).

Example
-------
>>> from nanoseg.simulate.config import SimulationConfig
>>> cfg = SimulationConfig(modality="haadf_stem", image_size_px=64, pixel_size_nm=0.5, diameter_nm=3.0,
...                        n_particles=5, support="silica", stem={"jpeg_quality": None})
>>> sim = simulate_haadf(cfg, seed=0)
>>> sim.micrograph.shape, sim.meta["modality"], int(sim.instances.max()) >= 1
((64, 64), 'haadf_stem', True)
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
from ase.data import atomic_masses, atomic_numbers
from pydantic import BaseModel, ConfigDict
from scipy import ndimage

from nanoseg.errors import NanosegError
from nanoseg.simulate.config import (
    MODALITY_CHECKS,
    Choice,
    LogUniform,
    Param,
    SimulationConfig,
    Uniform,
    load_config,
)
from nanoseg.simulate.labels import footprint_labels
from nanoseg.simulate.structures import make_particle, projected_radius_A

#: HAADF supports: composition (atomic fractions), density g/cm³, and the default morphology
STEM_SUPPORTS: dict[str, dict[str, Any]] = {
    "silica": {"composition": {"Si": 1 / 3, "O": 2 / 3}, "density_g_cm3": 2.2, "morphology": "grains"},
    "alumina": {"composition": {"Al": 0.4, "O": 0.6}, "density_g_cm3": 3.6, "morphology": "grains"},
    "ceria": {"composition": {"Ce": 1 / 3, "O": 2 / 3}, "density_g_cm3": 7.2, "morphology": "grains"},
    "carbon": {"composition": {"C": 1.0}, "density_g_cm3": 2.0, "morphology": "film"},
    "none": {},
}

#: atom smear (Å, Gaussian σ) under the probe: thermal vibration and the atom's own potential width
ATOM_SIGMA_A = 0.5
#: the finest object grid (Å): atoms are histogrammed at pixel / k ≤ this
OBJECT_SAMPLING_A = 1.0

_DRAWN_STEM = [
    "z_exponent", "cross_section_Au_A2", "probe_fwhm_nm", "electrons_per_pixel", "detector_gain",
    "detector_offset", "read_noise", "line_gain_noise", "line_jitter_px", "drift_x_px", "drift_y_px",
    "support_morphology", "grain_diameter_nm", "grain_aspect_ratio", "support_coverage", "support_porosity", "texture_rms",
    "texture_length_nm", "overlap_fraction", "particle_area_fraction", "clip_low_fraction", "clip_high_fraction", "jpeg_quality",
]


class StemParams(BaseModel):
    """HAADF-STEM parameters (the ``stem:`` mapping of a spec; same value/distribution syntax)."""

    model_config = ConfigDict(extra="forbid")

    z_exponent: Param = Uniform(uniform=(1.6, 1.9))  # σ(Z) ∝ Z^γ
    cross_section_Au_A2: Param = LogUniform(loguniform=(1e-3, 6e-3))  # σ of one Au atom into the detector
    probe_fwhm_nm: Param = LogUniform(loguniform=(0.1, 1.0))  # effective probe (with defocus, vibration)
    electrons_per_pixel: Param = LogUniform(loguniform=(3e4, 1e6))  # probe current × dwell / e
    detector_gain: Param = LogUniform(loguniform=(0.5, 4.0))  # output units per detected electron
    detector_offset: Param = Uniform(uniform=(0.0, 30.0))  # output units (dark level)
    read_noise: Param = Uniform(uniform=(0.0, 2.0))  # output units, Gaussian σ
    line_gain_noise: Param = Uniform(uniform=(0.0, 0.03))  # relative σ of each scan line's gain
    line_jitter_px: Param = Uniform(uniform=(0.0, 0.3))  # σ of each line's x shift (px)
    drift_x_px: Param = Uniform(uniform=(-2.0, 2.0))  # x drift over the whole frame (px, a shear)
    drift_y_px: Param = Uniform(uniform=(-2.0, 2.0))  # y drift over the whole frame (px, a stretch)
    support_morphology: Param = None  # "grains" or "film"; None: per support kind
    grain_diameter_nm: Param = LogUniform(loguniform=(8.0, 30.0))  # support grains (primary particles)
    grain_aspect_ratio: Param = 1.0  # > 1: rods (γ-alumina)
    support_coverage: Param = Uniform(uniform=(0.4, 0.95))  # fraction of the field covered by grains
    support_porosity: Param = Uniform(uniform=(0.0, 0.7))  # void fraction of the grains (fumed/porous oxides)
    texture_rms: Param = Uniform(uniform=(0.02, 0.15))  # relative σ of the fine thickness texture
    texture_length_nm: Param = Uniform(uniform=(0.8, 3.0))  # its correlation length
    overlap_fraction: Param = Uniform(uniform=(0.0, 0.15))  # particles that may overlap another
    # projected particle area / supported area; sets the particle count (at most n_particles). None: n_particles
    particle_area_fraction: Param = None
    clip_low_fraction: Param = Uniform(uniform=(0.0, 0.05))  # 8-bit export: pixels clipped to 0
    clip_high_fraction: Param = Uniform(uniform=(0.0, 0.01))  # ... and to 255
    jpeg_quality: Param = Uniform(uniform=(75.0, 95.0))  # None: no JPEG (and with both clips None: no 8-bit)
    n_templates: int = 4  # distinct particle atom sets per image (fixed, not drawn)

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _DRAWN_STEM:
            value = getattr(self, name)
            if isinstance(value, (Uniform, LogUniform, Choice)):
                value = value.draw(rng)
            out[name] = value
        return out


def stem_params(config: SimulationConfig) -> StemParams:
    """The validated HAADF parameters of a spec (its ``stem`` mapping; defaults for what is not given)."""
    try:
        return StemParams.model_validate(config.stem or {})
    except Exception as exc:  # pydantic ValidationError: one clear message
        raise NanosegError(f"invalid stem: parameters ({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
                           hint="see docs/simulation.md, 'HAADF-STEM at particle-resolving magnification'") from exc


def check_stem_spec(config: SimulationConfig) -> None:
    """Validate the HAADF-only parts of a spec (called by :class:`SimulationConfig` when modality is HAADF)."""
    try:
        params = stem_params(config)
    except NanosegError as exc:
        raise ValueError(exc.message if hasattr(exc, "message") else str(exc)) from exc
    for v in (config.support.values() if hasattr(config.support, "values") else [config.support]):
        if v not in STEM_SUPPORTS:
            raise ValueError(f"unknown HAADF support {v!r} (choose from {', '.join(STEM_SUPPORTS)})")
    for v in (params.support_morphology.values() if hasattr(params.support_morphology, "values")
              else [params.support_morphology]):
        if v not in (None, "grains", "film"):
            raise ValueError(f"stem.support_morphology must be 'grains' or 'film', got {v!r}")


MODALITY_CHECKS["haadf_stem"] = check_stem_spec


def _scattering_per_atom(symbol_z: int, p: dict) -> float:
    """HAADF cross-section (Å²) of one atom of atomic number Z: σ_Au (Z/79)^γ."""
    return float(p["cross_section_Au_A2"]) * (symbol_z / 79.0) ** float(p["z_exponent"])


def support_sigma_per_A3(kind: str, p: dict) -> float:
    """HAADF scattering per Å³ of support (cross-section × number density, 1/Å) of a support kind.

    >>> p = {"cross_section_Au_A2": 2e-3, "z_exponent": 1.7}
    >>> support_sigma_per_A3("silica", p) < support_sigma_per_A3("ceria", p)
    True
    """
    spec = STEM_SUPPORTS[kind]
    if not spec:
        return 0.0
    comp = spec["composition"]
    mass = sum(frac * atomic_masses[atomic_numbers[s]] for s, frac in comp.items())
    n_per_A3 = spec["density_g_cm3"] / mass * 6.02214076e23 / 1e24
    return float(n_per_A3 * sum(frac * _scattering_per_atom(atomic_numbers[s], p) for s, frac in comp.items()))


def _smooth_noise(shape: tuple[int, int], length_px: float, rng: np.random.Generator) -> np.ndarray:
    """A zero-mean, unit-σ Gaussian random field of correlation length ``length_px`` (Gaussian filter)."""
    qy = np.fft.fftfreq(shape[0])[:, None]
    qx = np.fft.rfftfreq(shape[1])[None, :]
    sigma = max(length_px, 0.3)
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (qx ** 2 + qy ** 2))  # a Gaussian filter of σ = length, periodic
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * kernel, s=shape)
    return (field - field.mean()) / (field.std() + 1e-12)


def support_thickness_A(kind: str, shape: tuple[int, int], sampling_A: float, thickness_A: float, p: dict,
                        rng: np.random.Generator) -> np.ndarray:
    """Projected support thickness (Å) on a grid: grains (an aggregate) or a film, with fine texture."""
    if not STEM_SUPPORTS[kind]:
        return np.zeros(shape, np.float32)
    morphology = p["support_morphology"] or STEM_SUPPORTS[kind]["morphology"]
    ny, nx = shape
    if morphology == "film":
        t = thickness_A * (1 + 0.25 * _smooth_noise(shape, 200.0 / sampling_A, rng))
    else:
        t = np.zeros(shape, np.float64)
        radius_A = 5.0 * float(p["grain_diameter_nm"])
        aspect = max(1.0, float(p["grain_aspect_ratio"]))
        target = float(p["support_coverage"])
        centre = rng.uniform(0, [nx * sampling_A, ny * sampling_A])
        centres: list[np.ndarray] = []
        grain_r: list[float] = []
        for _ in range(400):
            if centres and (t > 0).mean() >= target:
                break
            r = radius_A * float(np.clip(1 + 0.3 * rng.standard_normal(), 0.4, 2.0))
            if centres:  # the aggregate grows by a grain touching a random one (a branched chain, little stacking)
                j = rng.integers(len(centres))
                angle = rng.uniform(0, 2 * np.pi)
                step = (grain_r[j] + r) * rng.uniform(0.75, 1.0)
                centre = centres[j] + step * np.array([np.cos(angle), np.sin(angle)])
                centre = np.clip(centre, 0, [nx * sampling_A, ny * sampling_A])
            centres.append(centre)
            grain_r.append(r)
            theta = rng.uniform(0, np.pi)
            a_u, a_v, a_z = r, r * aspect, r  # rods lie in the plane
            # only the grain's bounding box of the grid
            c0, c1 = (int(max(0, (centre[0] - a_v) // sampling_A)), int(min(nx, (centre[0] + a_v) // sampling_A + 2)))
            r0, r1 = (int(max(0, (centre[1] - a_v) // sampling_A)), int(min(ny, (centre[1] + a_v) // sampling_A + 2)))
            if c1 <= c0 or r1 <= r0:
                continue
            yy, xx = np.mgrid[r0:r1, c0:c1] * sampling_A
            du = (xx - centre[0]) * np.cos(theta) + (yy - centre[1]) * np.sin(theta)
            dv = -(xx - centre[0]) * np.sin(theta) + (yy - centre[1]) * np.cos(theta)
            inside = 1 - (du / a_u) ** 2 - (dv / a_v) ** 2
            t[r0:r1, c0:c1] += 2 * a_z * np.sqrt(np.clip(inside, 0, None))
    texture = 1 + float(p["texture_rms"]) * _smooth_noise(shape, 10.0 * float(p["texture_length_nm"]) / sampling_A,
                                                           rng)
    return np.clip(t * texture * (1 - float(p["support_porosity"])), 0, None).astype(np.float32)


def _particle_diameters(params: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    d = params["diameter_nm"] * np.clip(1 + params["diameter_spread"] * rng.standard_normal(n), 0.3, 3)
    return np.maximum(d, 0.8)


def _templates(params: dict, diameters: np.ndarray, n_templates: int, rng: np.random.Generator):
    """Up to ``n_templates`` particle atom sets at quantiles of the drawn diameters; index of each particle's."""
    k = int(min(n_templates, len(diameters)))
    levels = np.quantile(diameters, (np.arange(k) + 0.5) / k)
    templates = []
    for d in levels:
        shape = params["shape"]
        atoms = make_particle(params["material"], shape, float(d), rng,
                              aspect_ratio=float(params["aspect_ratio"]),
                              on_zone=bool(rng.random() < params["zone_axis_fraction"]))
        atoms.positions[:, :2] -= atoms.positions[:, :2].mean(axis=0)
        templates.append(atoms)
    which = np.abs(diameters[:, None] - levels[None, :]).argmin(axis=1)
    return templates, which


def _place_on_support(radii_A: np.ndarray, support_A: np.ndarray, sampling_A: float, overlap_fraction: float,
                      rng: np.random.Generator, margin_A: float) -> list[np.ndarray | None]:
    """Centres (Å) of the particles on the support (where t > 0), one-by-one random placement.

    A particle keeps clear of the others (centre distance ≥ r_i + r_j + 2 Å) unless it is one of the
    ``overlap_fraction`` allowed to overlap (distance ≥ 0.5 (r_i + r_j)). None: no room found.
    """
    ny, nx = support_A.shape
    candidates = np.flatnonzero(support_A.ravel() > 0)
    if candidates.size == 0:
        candidates = np.arange(support_A.size)
    placed_xy: list[np.ndarray] = []
    placed_r: list[float] = []
    out: list[np.ndarray | None] = []
    extent = np.array([nx, ny]) * sampling_A
    for r in radii_A:
        overlap_ok = rng.random() < overlap_fraction
        spot = None
        for _ in range(60):
            index = candidates[rng.integers(candidates.size)]
            xy = (np.array([index % nx, index // nx]) + rng.random(2)) * sampling_A
            if np.any(xy < margin_A) or np.any(xy > extent - margin_A):
                continue
            if placed_xy:
                d = np.hypot(*(np.asarray(placed_xy) - xy).T)
                need = 0.5 * (np.asarray(placed_r) + r) if overlap_ok else np.asarray(placed_r) + r + 2.0
                if np.any(d < need):
                    continue
            spot = xy
            break
        out.append(spot)
        if spot is not None:
            placed_xy.append(spot)
            placed_r.append(float(r))
    return out


def _particle_sigma_map(particles, shape: tuple[int, int], sampling_A: float, p: dict) -> np.ndarray:
    """Σ σ(Z) per Å² of the particles' atoms on the object grid (atoms histogrammed, not yet smeared)."""
    ny, nx = shape
    out = np.zeros(ny * nx, np.float64)
    for atoms in particles:
        xy = atoms.positions[:, :2] / sampling_A
        col = np.floor(xy[:, 0]).astype(int)
        row = np.floor(xy[:, 1]).astype(int)
        ok = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        z_values, z_index = np.unique(atoms.numbers, return_inverse=True)
        sigma = np.array([_scattering_per_atom(int(z), p) for z in z_values])[z_index]
        out += np.bincount(row[ok] * nx + col[ok], weights=sigma[ok], minlength=ny * nx)
    return (out / sampling_A ** 2).reshape(shape)


def scan_coordinates(n_px: int, p: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Where the beam really was for each image pixel (row, col), in pixels: jitter and linear drift."""
    rows = np.arange(n_px, dtype=float)
    frac = rows / max(n_px - 1, 1)
    x_shift = float(p["line_jitter_px"]) * rng.standard_normal(n_px) + float(p["drift_x_px"]) * frac
    y_pos = rows + float(p["drift_y_px"]) * frac
    yy = np.repeat(y_pos[:, None], n_px, axis=1)
    xx = np.arange(n_px, dtype=float)[None, :] + x_shift[:, None]
    return yy, xx


def to_8bit(image: np.ndarray, clip_low: float | None, clip_high: float | None,
            jpeg_quality: float | None) -> np.ndarray:
    """Export as the 8-bit (optionally JPEG) files users bring: levels at the clip fractions, round, encode."""
    if clip_low is None and clip_high is None and jpeg_quality is None:
        return image.astype(np.float32)
    lo = float(np.quantile(image, clip_low or 0.0))
    hi = float(np.quantile(image, 1 - (clip_high or 0.0)))
    scaled = np.clip(np.rint((image - lo) / max(hi - lo, 1e-9) * 255), 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(scaled).save(buf, format="JPEG", quality=int(round(jpeg_quality)))
        buf.seek(0)
        scaled = np.asarray(Image.open(buf).convert("L"))
    return scaled.astype(np.float32)


def simulate_haadf(config: SimulationConfig | dict | str, seed: int):
    """Simulate one labelled HAADF-STEM image (deterministic in ``seed``); see the module docstring.

    Uses the spec's image_size_px, pixel_size_nm, material, shape, diameter_nm, diameter_spread,
    aspect_ratio, zone_axis_fraction, n_particles, support and support_thickness_nm (the film thickness;
    grains have their own size), and its ``stem`` mapping (:class:`StemParams`). Returns a
    :class:`nanoseg.simulate.generate.SimulatedImage` whose micrograph is the detector output (8-bit
    grey levels when exported so).
    """
    from nanoseg.io.micrograph import Micrograph
    from nanoseg.simulate.stages import SimulatedImage

    config = load_config(config)
    rng = np.random.default_rng(int(seed))
    params = config.draw(rng)
    sp = stem_params(config)
    p = sp.draw(rng)
    n_px = int(params["image_size_px"])
    pixel_A = 10.0 * float(params["pixel_size_nm"])
    k = max(1, int(math.ceil(pixel_A / OBJECT_SAMPLING_A - 1e-9)))
    sampling = pixel_A / k
    grid = (n_px * k, n_px * k)
    support = str(params["support"])
    t_A = support_thickness_A(support, grid, sampling, 10.0 * float(params["support_thickness_nm"]), p, rng)
    n = int(params["n_particles"])
    if p["particle_area_fraction"] is not None:  # as many as cover that fraction of the supported area
        mean_area_nm2 = np.pi / 4 * params["diameter_nm"] ** 2 * (1 + params["diameter_spread"] ** 2)
        supported_nm2 = float((t_A > 0).mean() if (t_A > 0).any() else 1.0) * (n_px * pixel_A / 10) ** 2
        n = int(np.clip(round(float(p["particle_area_fraction"]) * supported_nm2 / mean_area_nm2), 1, n))
    diameters = _particle_diameters(params, n, rng)
    templates, which = _templates(params, diameters, sp.n_templates, rng)
    radii = np.array([projected_radius_A(templates[i]) for i in which])
    order = np.argsort(-radii, kind="stable")  # the large ones first, while there is room
    centres = _place_on_support(radii[order], t_A, sampling, float(p["overlap_fraction"]), rng, margin_A=2 * pixel_A)
    particles = []
    for j, centre in zip(order, centres, strict=True):
        if centre is None:
            continue
        atoms = templates[which[j]].copy()
        atoms.rotate(float(rng.uniform(0, 360)), "z")
        if rng.random() < 0.5:
            atoms.positions[:, 0] *= -1
        atoms.positions[:, :2] += centre
        particles.append(atoms)
    if not particles:
        raise NanosegError("no particle could be placed on the support",
                           hint="raise stem.support_coverage, or lower n_particles or diameter_nm")
    # scattered fraction: particles (atoms) + support (continuum), smeared by the probe, pixel-averaged
    sigma = _particle_sigma_map(particles, grid, sampling, p) + support_sigma_per_A3(support, p) * t_A
    probe_sigma_A = math.hypot(10.0 * float(p["probe_fwhm_nm"]) / 2.3548, ATOM_SIGMA_A)
    fraction = 1 - np.exp(-ndimage.gaussian_filter(sigma, probe_sigma_A / sampling, mode="nearest"))
    fraction = fraction.reshape(n_px, k, n_px, k).mean(axis=(1, 3))
    instances = footprint_labels(particles, shape=(n_px, n_px), pixel_size_A=pixel_A, origin_A=pixel_A / 2)
    yy, xx = scan_coordinates(n_px, p, rng)
    fraction = ndimage.map_coordinates(fraction, [yy, xx], order=1, mode="nearest")
    instances = ndimage.map_coordinates(instances, [yy, xx], order=0, mode="nearest").astype(np.int32)
    counts = rng.poisson(float(p["electrons_per_pixel"]) * np.clip(fraction, 0, 1)).astype(np.float64)
    line_gain = 1 + float(p["line_gain_noise"]) * rng.standard_normal((n_px, 1))
    image = (float(p["detector_offset"]) + float(p["detector_gain"]) * counts * line_gain
             + float(p["read_noise"]) * rng.standard_normal((n_px, n_px)))
    image = to_8bit(image, p["clip_low_fraction"], p["clip_high_fraction"], p["jpeg_quality"])
    mask = (instances > 0).astype(np.uint8)
    diam = [round(float(a.info["diameter_nm"]), 4) for a in particles]
    meta = {
        "source": "simulated", "session": config.name, "modality": "haadf_stem", "polarity": "bright",
        "material": params["material"], "shape": params["shape"],
        "diameter_nm": float(np.mean(diam)), "diameters_nm": json.dumps(diam),
        "n_particles": len(particles), "n_particles_drawn": n, "n_particles_max": int(params["n_particles"]),
        "n_atoms": int(sum(len(a) for a in particles)),
        "pixel_size_nm": float(params["pixel_size_nm"]), "image_size_px": n_px,
        "dose_e_per_A2": float(p["electrons_per_pixel"]) / pixel_A ** 2,
        "support": support, "support_thickness_nm": float(params["support_thickness_nm"]),
        "support_mean_thickness_nm": float(t_A.mean() / 10), "support_covered_fraction": float((t_A > 0).mean()),
        "object_sampling_A": sampling, "mask_fraction": float(mask.mean()), "mode": "haadf_stem", "seed": int(seed),
        **{f"stem_{k_}": (v if v is None or isinstance(v, str) else float(v)) for k_, v in p.items()},
    }
    micrograph = Micrograph(image, pixel_size_nm=params["pixel_size_nm"], dose_e_per_A2=meta["dose_e_per_A2"],
                            metadata=meta, source="simulated")
    return SimulatedImage(micrograph, mask, instances, meta)
