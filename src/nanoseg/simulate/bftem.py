"""Bright-field TEM at particle-resolving magnification (0.1–2 nm/px): labelled images without multislice.

At these pixel sizes a micrograph shows whole particles, not lattice fringes: the objective aperture
(typically 5–20 mrad) removes the electrons that the specimen scatters to large angles, so thick and heavy
regions look dark. A multislice of a 100–1000 nm field is neither affordable nor needed; the image is
formed from the specimen's projected thickness, in these steps (all lengths in nm unless the name says):

1. **Geometry.** Particles come from :func:`nanoseg.simulate.structures.make_particle` (same shapes, sizes
   as the HRTEM simulator). Each is built atomistically at the nearest of a grid of sizes (8 per octave, at
   most ``atomistic_max_nm``; built once per size and cached), turned at random (a spin about the beam for
   ``zone_axis_fraction`` of them) and scaled to its drawn diameter (the shape is self-similar; the atom
   radius of the label rule scales with it). Its projected thickness ``t(x, y)`` is the chord length along the beam through the
   convex hull of its atoms dilated by their covalent radius (the re-entrant notches of decahedra are
   ignored). Labels follow :mod:`nanoseg.simulate.labels` exactly (the footprint of the atoms' disks, a
   pixel to the nearer centre where two overlap).
2. **Mass-thickness contrast.** The fraction of electrons that stay inside the aperture after a thickness
   ``t`` is ``exp(−Σ_i n_i σ_i(>α) t)``: ``n_i`` the number density of element ``i`` and ``σ_i(>α)`` its
   elastic cross-section for scattering beyond the aperture semi-angle ``α``. The total elastic
   cross-section is Langmore's fit ``σ = 1.5·10⁻⁶ nm² · Z^1.5 / β² · (1 − Z / (596 β))``; the screened
   (Lenz) angular distribution puts the fraction ``1 / (1 + (α / θ₀)²)`` of it beyond ``α``, with the
   screening angle ``θ₀ = λ Z^⅓ / (2π · 0.885 a_H)``. Inelastic scattering (mostly inside the aperture) and
   plural-scattering corrections are left out; at 200 kV and 10 mrad this gives an effective mean free
   path of ≈ 10 nm for Au, 30 nm for Cu and 310 nm for amorphous carbon.
3. **Diffraction contrast.** A crystal near a Bragg condition sends a diffracted beam outside the aperture.
   With probability ``bragg_fraction`` a particle is near one: two-beam theory (``I_g =
   sin²(π t √(1 + w²) / ξ_g) / (1 + w²)``, ``ξ_g`` the extinction distance of the material's strongest
   reflection scaled with voltage, ``w`` the deviation parameter) makes it much darker, with thickness
   fringes where ``t`` exceeds ``ξ_g / 2`` and a bend contour where ``w`` changes across the particle
   (a random linear gradient of ``w``).
4. **Phase and defocus.** The exit wave is ``ψ = exp(−τ/2 + i C_E V₀ t)`` (``τ`` the optical depth of
   steps 2–3, ``V₀`` the mean inner potential of each material, ``C_E`` the interaction constant). The
   objective lens (defocus ``defocus_nm``, usually hundreds of nm at this magnification; positive =
   underfocus, as in the HRTEM simulator), the aperture cut-off and a spatial-coherence envelope are
   applied in Fourier space; ``|ψ|²`` then shows the Fresnel fringe (a bright halo outside an underfocused
   edge, width ≈ √(λ Δf)) and the phase granularity of the support.
5. **Support.** An amorphous film (carbon, SiN, silica) of ``support_thickness_nm``: its mass thickness, a
   granular phase texture (correlated noise of ``granularity_nm`` ≈ 0.5–1 nm, the projected-potential
   fluctuation of an amorphous solid, rms ∝ √t), plus lumps: smooth thickness hills (agglomerates of
   the support powder, of ``support_lump_nm`` lateral size and up to ``support_lump_height_nm``) covering
   ``support_lump_fraction`` of the field. Crystalline supports (alumina, ceria) also carry dark grains:
   small crystallites in a Bragg condition (soft, mottled, extra optical depth 0.03–0.25, 3–15 nm).
6. **Camera.** :func:`nanoseg.simulate.detector.apply_detector` (Poisson counts at the dose, the camera
   PSF, gain and read noise, uneven illumination), then optionally ``quantize_levels`` grey levels
   (256 = an 8-bit export; 17–19 levels occur in real in situ frames) over the 0.1–99.9 % range.

Example
-------
>>> cfg = SimulationConfig(modality="bf_tem", image_size_px=64, pixel_size_nm=0.5, diameter_nm=6.0,
...                        n_particles=4, support_thickness_nm=15, defocus_nm=500, aperture_mrad=10,
...                        dose_e_per_A2=20, bf_tem={"bragg_fraction": 0.5})
>>> sim = simulate_bf_image(cfg, seed=0)
>>> sim.micrograph.shape, int(sim.instances.max()) >= 1, sim.meta["modality"]
((64, 64), True, 'bf_tem')
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from pydantic import BaseModel, ConfigDict, ValidationError
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.transform import Rotation

from nanoseg.errors import NanosegError
from nanoseg.simulate.config import MODALITY_CHECKS, Choice, LogUniform, Param, SimulationConfig, Uniform
from nanoseg.simulate.labels import footprint_mask
from nanoseg.simulate.structures import get_material, make_particle

BOHR_NM = 0.0529177
MC2_EV = 510998.95

#: BF supports: atomic fractions, density (g/cm³), mean inner potential (V), crystalline (dark grains)
BF_SUPPORTS: dict[str, dict[str, Any]] = {
    "carbon": {"composition": {"C": 1.0}, "density_g_cm3": 2.0, "inner_potential_V": 9.0, "crystalline": False},
    "SiN": {"composition": {"Si": 3 / 7, "N": 4 / 7}, "density_g_cm3": 3.1, "inner_potential_V": 13.0,
            "crystalline": False},
    "silica": {"composition": {"Si": 1 / 3, "O": 2 / 3}, "density_g_cm3": 2.2, "inner_potential_V": 10.0,
               "crystalline": False},
    "alumina": {"composition": {"Al": 0.4, "O": 0.6}, "density_g_cm3": 3.6, "inner_potential_V": 15.0,
                "crystalline": True},
    "ceria": {"composition": {"Ce": 1 / 3, "O": 2 / 3}, "density_g_cm3": 7.2, "inner_potential_V": 20.0,
              "crystalline": True},
    "none": {"composition": {}, "density_g_cm3": 0.0, "inner_potential_V": 0.0, "crystalline": False},
}

#: particle materials: mean inner potential (V) and the extinction distance (nm) of the strongest low-index
#: reflection at 200 kV (two-beam values of the order of Hirsch et al.; scaled with 1/(λ·γ) to other voltages)
PARTICLE_OPTICS: dict[str, tuple[float, float]] = {
    "Au": (30.0, 18.0), "Ag": (24.0, 24.0), "Pt": (33.0, 17.0), "Pd": (27.0, 20.0), "Cu": (23.0, 28.0),
    "CdSe": (14.0, 45.0), "CdSe-zb": (14.0, 45.0), "ZnS": (13.0, 50.0), "ZnS-wz": (13.0, 50.0),
    "CeO2": (20.0, 30.0),
}

#: BF-only parameters, drawn after the shared ones (the HRTEM draw order is untouched)
BF_DRAWN = [
    "bragg_fraction", "granularity_nm", "granularity_phase_rad", "support_lump_fraction", "support_lump_nm",
    "support_lump_height_nm", "cluster_fraction", "quantize_levels", "min_diameter_px",
]


def _relativistic(voltage_kV: float) -> tuple[float, float, float]:
    """(λ in nm, β² = (v/c)², γ) of an electron accelerated by ``voltage_kV``."""
    e = 1e3 * voltage_kV
    gamma = 1 + e / MC2_EV
    beta2 = 1 - 1 / gamma ** 2
    wavelength_nm = 1239.84198 / math.sqrt(e * (2 * MC2_EV + e))
    return wavelength_nm, beta2, gamma


def interaction_constant_rad_per_V_nm(voltage_kV: float) -> float:
    """C_E = 2π / (λ V) · (mc² + eV) / (2mc² + eV), in rad / (V·nm) (0.00729 at 200 kV).

    >>> round(interaction_constant_rad_per_V_nm(200), 5)
    0.00729
    """
    e = 1e3 * voltage_kV
    wavelength_nm, _, _ = _relativistic(voltage_kV)
    return 2 * math.pi / (wavelength_nm * e) * (MC2_EV + e) / (2 * MC2_EV + e)


def cross_section_beyond_aperture_nm2(element: str | int, voltage_kV: float, aperture_mrad: float) -> float:
    """Elastic cross-section (nm²) of one atom for scattering outside an objective aperture of ``aperture_mrad``.

    Langmore's total elastic cross-section times the Lenz fraction beyond the aperture (module doc, step 2).

    >>> au = cross_section_beyond_aperture_nm2("Au", 200, 10)
    >>> c = cross_section_beyond_aperture_nm2("C", 200, 10)
    >>> 1e-3 < au < 3e-3 and 2e-5 < c < 6e-5
    True
    """
    z = atomic_numbers[element] if isinstance(element, str) else int(element)
    wavelength_nm, beta2, _ = _relativistic(voltage_kV)
    beta = math.sqrt(beta2)
    total_nm2 = 1.5e-6 * z ** 1.5 / beta2 * max(0.05, 1 - z / (596 * beta))
    theta0 = wavelength_nm * z ** (1 / 3) / (2 * math.pi * 0.885 * BOHR_NM)
    return total_nm2 / (1 + (1e-3 * aperture_mrad / theta0) ** 2)


def _number_density_per_nm3(composition: dict[str, float], density_g_cm3: float) -> dict[str, float]:
    from ase.data import atomic_masses

    if not composition:
        return {}
    mass_per_atom_g = sum(f * atomic_masses[atomic_numbers[s]] for s, f in composition.items()) / 6.02214076e23
    per_nm3 = density_g_cm3 / mass_per_atom_g * 1e-21
    return {s: f * per_nm3 for s, f in composition.items()}


def attenuation_per_nm(composition: dict[str, float], density_g_cm3: float, voltage_kV: float,
                       aperture_mrad: float) -> float:
    """Optical depth per nm of thickness, Σ n_i σ_i(>α) (1/nm): the inverse effective mean free path.

    >>> round(1 / attenuation_per_nm({"C": 1.0}, 2.0, 200, 10))   # amorphous carbon, nm
    314
    """
    return float(sum(n * cross_section_beyond_aperture_nm2(s, voltage_kV, aperture_mrad)
                     for s, n in _number_density_per_nm3(composition, density_g_cm3).items()))


def _particle_attenuation_per_nm(particle: Atoms, voltage_kV: float, aperture_mrad: float) -> float:
    material = get_material(particle.info["material"])
    atoms_per_nm3 = 1e3 / material.volume_per_atom_A3
    symbols = particle.get_chemical_symbols()
    fractions = {s: symbols.count(s) / len(symbols) for s in set(symbols)}
    return float(sum(f * atoms_per_nm3 * cross_section_beyond_aperture_nm2(s, voltage_kV, aperture_mrad)
                     for s, f in fractions.items()))


class BFParams(BaseModel):
    """The BF-only parameters: the ``bf_tem:`` mapping of a spec with ``modality: bf_tem``.

    The shared spec parameters keep their meaning; at this magnification typical values differ:
    ``pixel_size_nm`` 0.1–2, ``defocus_nm`` −500…2000, ``aperture_mrad`` (objective aperture) 5–20,
    ``dose_e_per_A2`` 1–100, ``support_thickness_nm`` 5–30 (see examples/simulate/bf_training.yaml).
    """

    model_config = ConfigDict(extra="forbid")

    bragg_fraction: Param = 0.3  # probability per particle of a near-Bragg orientation (diffraction contrast)
    granularity_nm: Param = 0.7  # correlation length of the amorphous support's phase texture
    granularity_phase_rad: Param = 0.05  # its rms phase per √nm of film thickness
    support_lump_fraction: Param = 0.0  # fraction of the field covered by thickness lumps (agglomerates)
    support_lump_nm: Param = 60.0  # lateral size of the lumps
    support_lump_height_nm: Param = 40.0  # their peak extra thickness
    cluster_fraction: Param = 0.2  # probability that a particle is put in contact with an earlier one
    quantize_levels: Param = None  # None: float counts; 256: 8-bit; 17–19: real in situ frames
    min_diameter_px: Param = 3.0  # particles below this many pixels are enlarged to it (recorded)
    atomistic_max_nm: float = 5.0  # larger particles are built at this size and scaled (module doc)

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """One value per BF parameter (fixed order, after the shared draw)."""
        out: dict[str, Any] = {}
        for name in BF_DRAWN:
            value = getattr(self, name)
            if isinstance(value, (Uniform, LogUniform, Choice)):
                value = value.draw(rng)
            if name == "quantize_levels" and value is not None:
                value = int(round(value))
            out[name] = value
        return out


def _values(value) -> list:
    return value.values() if isinstance(value, (Uniform, LogUniform, Choice)) else [value]


def check_bf_spec(config: SimulationConfig) -> BFParams:
    """Validate the BF part of a ``modality: bf_tem`` spec (raises ValueError, as pydantic validators do)."""
    try:
        bf = BFParams.model_validate(config.bf_tem or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"bf_tem.{where}: {err['msg']}") from None
    for v in _values(config.support):
        if v not in BF_SUPPORTS:
            raise ValueError(f"unknown bright-field support {v!r} (choose from {', '.join(BF_SUPPORTS)})")
    for name in ("bragg_fraction", "support_lump_fraction", "cluster_fraction"):
        for v in _values(getattr(bf, name)):
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"bf_tem.{name} must be a probability in [0, 1], got {v!r}")
    for name in ("granularity_nm", "granularity_phase_rad", "support_lump_nm", "support_lump_height_nm",
                 "min_diameter_px"):
        for v in _values(getattr(bf, name)):
            if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"bf_tem.{name} must be ≥ 0, got {v!r}")
    for v in _values(bf.quantize_levels):
        if v is not None and (not isinstance(v, (int, float)) or not 2 <= v <= 65536):
            raise ValueError(f"bf_tem.quantize_levels must be null or 2–65536 grey levels, got {v!r}")
    if not 0.6 <= bf.atomistic_max_nm <= 20:
        raise ValueError(f"bf_tem.atomistic_max_nm must be in 0.6–20 nm, got {bf.atomistic_max_nm}")
    return bf


MODALITY_CHECKS["bf_tem"] = check_bf_spec


def _hull_thickness_nm(points_nm: np.ndarray, radius_nm: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Chord length (nm) along z through the convex hull of ``points_nm`` dilated by ``radius_nm``.

    ``xs``, ``ys``: 1-D sample coordinates (nm) of the columns and rows of the grid; returns (len(ys), len(xs)).
    """
    try:
        hull = ConvexHull(points_nm)
        eq = hull.equations  # n·p + d ≤ 0 inside, |n| = 1
    except (QhullError, ValueError):  # flat or tiny particle: a sphere of its extent
        centre = points_nm.mean(axis=0)
        r = float(np.linalg.norm(points_nm - centre, axis=1).max()) + radius_nm
        d2 = (xs[None, :] - centre[0]) ** 2 + (ys[:, None] - centre[1]) ** 2
        return 2 * np.sqrt(np.clip(r ** 2 - d2, 0, None))
    n, d = eq[:, :3], eq[:, 3] - radius_nm  # dilated hull (offset planes; exact up to rounded corners)
    xx, yy = np.meshgrid(xs, ys)
    p = np.stack([xx.ravel(), yy.ravel()], axis=1)
    lateral = p @ n[:, :2].T + d[None, :]  # (pixels, facets)
    nz = n[:, 2]
    upper = nz > 1e-9
    lower = nz < -1e-9
    flat = ~(upper | lower)
    z_hi = np.min(-lateral[:, upper] / nz[upper], axis=1) if upper.any() else np.full(len(p), np.inf)
    z_lo = np.max(-lateral[:, lower] / nz[lower], axis=1) if lower.any() else np.full(len(p), -np.inf)
    t = np.clip(z_hi - z_lo, 0, None)
    if flat.any():
        t[(lateral[:, flat] > 0).any(axis=1)] = 0.0
    return t.reshape(len(ys), len(xs))


def _gaussian_field(shape: tuple[int, int], corr_px: float, rng: np.random.Generator) -> np.ndarray:
    """A stationary Gaussian random field (unit variance) with a Gaussian correlation of ``corr_px``."""
    white = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    field = np.fft.ifft2(np.fft.fft2(white) * np.exp(-2 * (np.pi * corr_px) ** 2 * (kx ** 2 + ky ** 2))).real
    std = field.std()
    return field / std if std > 0 else field


def _place_clustered(radii_nm: np.ndarray, extent_nm: float, rng: np.random.Generator, cluster_fraction: float,
                     gap_nm: float = 0.3, max_tries: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Centres (nm) without overlap of bounding disks; with ``cluster_fraction`` a particle touches an earlier one.

    Returns (centres of the placed particles, indices of those placed); particles that find no room are dropped.
    """
    centres: list[np.ndarray] = []
    placed: list[int] = []
    for i, r in enumerate(radii_nm):
        lo, hi = r + 0.5, extent_nm - r - 0.5
        if hi <= lo:
            continue
        cluster = bool(centres) and rng.random() < cluster_fraction
        for _ in range(max_tries):
            if cluster:
                j = int(rng.integers(len(centres)))
                angle = rng.uniform(0, 2 * np.pi)
                # bounding disks overlap a little: faceted footprints then touch or nearly touch
                dist = (r + radii_nm[placed[j]]) * rng.uniform(0.85, 1.0)
                c = centres[j] + dist * np.array([np.cos(angle), np.sin(angle)])
            else:
                c = rng.uniform(lo, hi, 2)
            if not (lo <= c[0] <= hi and lo <= c[1] <= hi):
                continue
            if centres:
                others = np.asarray(centres)
                need = radii_nm[placed] + r + (-0.15 * (radii_nm[placed] + r) if cluster else gap_nm)
                if np.any(np.hypot(*(others - c).T) < need):
                    continue
            centres.append(c)
            placed.append(i)
            break
    return np.asarray(centres).reshape(-1, 2), np.asarray(placed, dtype=int)


def _two_beam_dark(t_nm: np.ndarray, xi_nm: float, w: np.ndarray) -> np.ndarray:
    """Fraction of the beam diffracted out of the aperture (two-beam, no absorption)."""
    root = np.sqrt(1 + w ** 2)
    return np.sin(np.pi * t_nm * root / xi_nm) ** 2 / (1 + w ** 2)


@lru_cache(maxsize=512)
def _base_particle(material: str, shape: str, diameter_nm: float, aspect_ratio: float, on_zone: bool) -> Atoms:
    """One particle per (material, shape, size on the grid): built once, turned and scaled by the caller."""
    return make_particle(material, shape, diameter_nm, np.random.default_rng(0), aspect_ratio=aspect_ratio,
                         on_zone=on_zone)


def _build_particles(params: dict, config: SimulationConfig, pixel_nm: float, extent_nm: float,
                     rng: np.random.Generator) -> tuple[list[Atoms], list[float], dict]:
    """Particles (scaled where large), placed; returns them, their label atom radii (Å), and notes."""
    n = int(params["n_particles"])
    d = params["diameter_nm"] * np.clip(1 + params["diameter_spread"] * rng.standard_normal(n), 0.3, 3)
    min_nm = float(params["min_diameter_px"]) * pixel_nm
    cap_nm = 0.5 * extent_nm
    enlarged = int((d < min_nm).sum())
    d = np.clip(d, max(min_nm, 0.6), cap_nm)
    particles, radii_A = [], []
    for diameter in d:
        # built on a grid of sizes (8 per octave, cached), randomly turned, scaled to the drawn diameter
        built = float(np.exp(np.round(8 * np.log(min(float(diameter), float(params["atomistic_max_nm"])))) / 8))
        on_zone = bool(rng.random() < params["zone_axis_fraction"])
        p = _base_particle(params["material"], params["shape"], round(built, 4),
                           round(float(params["aspect_ratio"]), 1), on_zone).copy()
        turn = (Rotation.from_euler("z", rng.uniform(0, 2 * np.pi)) if on_zone
                else Rotation.random(random_state=np.random.RandomState(int(rng.integers(2**31)))))
        scale = float(diameter) / float(p.info["diameter_nm"])
        p.positions = turn.apply(p.positions) * scale
        p.info["diameter_nm"] = float(p.info["diameter_nm"]) * scale
        p.info["scale"] = scale
        particles.append(p)
        radii_A.append(float(max(covalent_radii[z] for z in set(p.numbers))) * scale)
    proj_nm = np.array([np.hypot(*p.positions[:, :2].T).max() / 10 + r / 10 for p, r in zip(particles, radii_A, strict=True)])
    order = np.argsort(-proj_nm)  # large first: they find room
    centres, placed = _place_clustered(proj_nm[order], extent_nm, rng, float(params["cluster_fraction"]))
    keep = order[placed]
    out, out_r = [], []
    for idx, c in zip(keep, centres, strict=True):
        p = particles[idx]
        p.positions[:, :2] += 10 * c
        out.append(p)
        out_r.append(radii_A[idx])
    if not out:
        raise NanosegError("no particle fits in the field", hint="use smaller particles or a larger image")
    return out, out_r, {"n_enlarged_to_min_px": enlarged}


def _labels(particles: list[Atoms], radii_A: list[float], n_px: int, pixel_A: float) -> np.ndarray:
    """Instance labels by the rule of :mod:`nanoseg.simulate.labels`, with per-particle (scaled) atom radii."""
    labels = np.zeros((n_px, n_px), dtype=np.int32)
    best = np.full((n_px, n_px), np.inf)
    yy, xx = np.mgrid[:n_px, :n_px]
    for index, (p, r) in enumerate(zip(particles, radii_A, strict=True), start=1):
        foot = footprint_mask(p, shape=(n_px, n_px), pixel_size_A=pixel_A, origin_A=pixel_A / 2, atom_radius_A=r)
        if not foot.any():
            continue
        cx, cy = (p.positions[:, :2].mean(axis=0) - pixel_A / 2) / pixel_A
        dist = (xx - cx) ** 2 + (yy - cy) ** 2
        take = foot & (dist < best)
        labels[take] = index
        best[take] = dist[take]
    return labels


def _specimen_maps(params: dict, config: SimulationConfig, particles: list[Atoms], radii_A: list[float],
                   grid: int, fine_nm: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Optical depth τ (aperture losses) and phase φ (rad) on the fine grid; per-particle notes."""
    kv, alpha = float(params["voltage_kV"]), float(params["aperture_mrad"])
    c_e = interaction_constant_rad_per_V_nm(kv)
    tau = np.zeros((grid, grid))
    phase = np.zeros((grid, grid))
    v0, xi_200 = PARTICLE_OPTICS.get(params["material"], (25.0, 25.0))
    wl, _, gamma = _relativistic(kv)
    wl200, _, g200 = _relativistic(200.0)
    xi = xi_200 * (wl200 * g200) / (wl * gamma)
    bragg = []
    for p, r in zip(particles, radii_A, strict=True):
        pts = p.positions / 10.0
        lo = np.floor((pts[:, :2].min(axis=0) - r / 10 - 1) / fine_nm).astype(int)
        hi = np.ceil((pts[:, :2].max(axis=0) + r / 10 + 1) / fine_nm).astype(int)
        lo, hi = np.maximum(lo, 0), np.minimum(hi, grid)
        if np.any(hi <= lo):
            bragg.append(False)
            continue
        xs = (np.arange(lo[0], hi[0]) + 0.5) * fine_nm
        ys = (np.arange(lo[1], hi[1]) + 0.5) * fine_nm
        t = _hull_thickness_nm(pts, r / 10, xs, ys)
        mu = _particle_attenuation_per_nm(p, kv, alpha)
        extra = np.zeros_like(t)
        near = bool(rng.random() < params["bragg_fraction"])
        if near:
            # deviation w with a random gradient across the particle: a bend contour
            centre = pts[:, :2].mean(axis=0)
            angle = rng.uniform(0, 2 * np.pi)
            size = max(float(np.ptp(pts[:, 0])), 1e-3)
            u = ((xs[None, :] - centre[0]) * np.cos(angle) + (ys[:, None] - centre[1]) * np.sin(angle)) / size
            w = rng.uniform(-0.8, 0.8) + rng.uniform(0, 3.0) * u
            dark = _two_beam_dark(t, xi, w)
            extra = -np.log(np.clip(1 - dark, 0.05, 1))
        bragg.append(near)
        tau[lo[1]:hi[1], lo[0]:hi[0]] += mu * t + extra
        phase[lo[1]:hi[1], lo[0]:hi[0]] += c_e * v0 * t
    support = BF_SUPPORTS[params["support"]]
    notes: dict[str, Any] = {"bragg": bragg, "extinction_distance_nm": round(float(xi), 2)}
    if params["support"] != "none" and params["support_thickness_nm"] > 0:
        t_s = np.full((grid, grid), float(params["support_thickness_nm"]))
        if params["support_lump_fraction"] > 0:
            field = _gaussian_field((grid, grid), float(params["support_lump_nm"]) / fine_nm / 2, rng)
            cut = np.quantile(field, 1 - float(params["support_lump_fraction"]))
            hills = np.clip(field - cut, 0, None)
            if hills.max() > 0:
                t_s += float(params["support_lump_height_nm"]) * np.sqrt(hills / hills.max())
        mu_s = attenuation_per_nm(support["composition"], support["density_g_cm3"], kv, alpha)
        tau += mu_s * t_s
        corr_px = max(float(params["granularity_nm"]) / fine_nm, 0.5)
        phase += c_e * support["inner_potential_V"] * t_s
        phase += float(params["granularity_phase_rad"]) * np.sqrt(t_s) * _gaussian_field((grid, grid), corr_px, rng)
        if support["crystalline"]:
            n_grains = rng.poisson(t_s.mean() / 20 * (grid * fine_nm / 40) ** 2)
            yy, xx = np.mgrid[:grid, :grid]
            for _ in range(int(min(n_grains, 400))):
                cx, cy = rng.uniform(0, grid, 2)
                a = rng.uniform(3, 15) / fine_nm / 2
                b = a * rng.uniform(0.3, 1.0)  # equiaxed to platelet-like
                ang = rng.uniform(0, np.pi)
                box = int(a + 3)
                y0, y1 = int(max(cy - box, 0)), int(min(cy + box + 1, grid))
                x0, x1 = int(max(cx - box, 0)), int(min(cx + box + 1, grid))
                if y1 <= y0 or x1 <= x0:
                    continue
                dx, dy = xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy
                u = (dx * np.cos(ang) + dy * np.sin(ang)) / a
                v = (-dx * np.sin(ang) + dy * np.cos(ang)) / b
                # a soft lens-shaped grain, mottled: weaker and less regular than a metal particle
                lens = np.clip(1 - (u ** 2 + v ** 2), 0, None) ** 0.5
                mottle = 0.6 + 0.4 * _gaussian_field(lens.shape, max(a / 3, 1.0), rng)
                tau[y0:y1, x0:x1] += rng.uniform(0.03, 0.25) * lens * np.clip(mottle, 0, None)
            notes["n_dark_grains"] = int(min(n_grains, 400))
    return tau, phase, notes


def bf_image_intensity(tau: np.ndarray, phase: np.ndarray, *, fine_nm: float, voltage_kV: float, defocus_nm: float,
                       Cs_um: float, aperture_mrad: float, convergence_mrad: float) -> np.ndarray:
    """|ψ|² after the objective lens: ψ = exp(−τ/2 + iφ), defocus (positive = underfocus), aperture, coherence."""
    wl, _, _ = _relativistic(voltage_kV)
    wave = np.exp(-tau / 2 + 1j * phase)
    qy = np.fft.fftfreq(tau.shape[0], fine_nm)[:, None]
    qx = np.fft.fftfreq(tau.shape[1], fine_nm)[None, :]
    q2 = qx ** 2 + qy ** 2
    cs_nm = 1e3 * Cs_um
    chi = np.pi * wl * (-defocus_nm) * q2 + 0.5 * np.pi * cs_nm * wl ** 3 * q2 ** 2
    # spatial-coherence envelope: Gaussian illumination spread of convergence_mrad (σ)
    grad = 2 * np.pi * np.sqrt(q2) * (-defocus_nm * wl + cs_nm * wl ** 3 * q2)
    envelope = np.exp(-0.5 * (1e-3 * convergence_mrad / wl * grad * wl) ** 2)
    aperture = np.sqrt(q2) * wl <= 1e-3 * aperture_mrad
    out = np.fft.ifft2(np.fft.fft2(wave) * np.exp(-1j * chi) * envelope * aperture)
    return np.abs(out) ** 2


def quantize(image: np.ndarray, levels: int) -> np.ndarray:
    """Map the 0.1–99.9 % range of ``image`` onto ``levels`` integer grey levels (0 … levels − 1), clipped.

    >>> levels = quantize(np.linspace(0, 1, 1000), 18)
    >>> float(levels.max()), len(np.unique(levels))
    (17.0, 18)
    """
    lo, hi = np.percentile(image, [0.1, 99.9])
    if hi <= lo:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip(np.rint((image - lo) / (hi - lo) * (levels - 1)), 0, levels - 1).astype(np.float32)


def simulate_bf_image(config: SimulationConfig | dict | str, seed: int):
    """Simulate one labelled bright-field TEM image (deterministic in ``seed``); see the module doc.

    Returns a :class:`nanoseg.simulate.generate.SimulatedImage`: electrons per pixel (or grey levels when
    ``quantize_levels`` is set), uint8 mask, int32 instances and metadata (``modality: bf_tem``).
    """
    from nanoseg.io.micrograph import Micrograph
    from nanoseg.simulate.config import load_config
    from nanoseg.simulate.detector import apply_detector
    from nanoseg.simulate.stages import SimulatedImage
    from nanoseg.simulate.stages import detector_for as _detector_for
    from nanoseg.simulate.stages import image_metadata as _metadata

    config = load_config(config)
    if config.modality != "bf_tem":
        raise NanosegError(f"simulate_bf_image needs a spec with modality: bf_tem, got {config.modality!r}")
    rng = np.random.default_rng(int(seed))
    params = config.draw(rng)
    bf = check_bf_spec(config)
    params.update(bf.draw(rng), atomistic_max_nm=bf.atomistic_max_nm)
    pixel_nm = float(params["pixel_size_nm"])
    n_px = int(params["image_size_px"])
    extent_nm = n_px * pixel_nm
    k = int(min(4, max(1, math.ceil(pixel_nm / 0.25 - 1e-9))))  # fine grid ≤ 0.25 nm, at most 4× the pixels
    fine_nm = pixel_nm / k
    particles, radii_A, notes = _build_particles(params, config, pixel_nm, extent_nm, rng)
    tau, phase, maps = _specimen_maps(params, config, particles, radii_A, n_px * k, fine_nm, rng)
    intensity = bf_image_intensity(tau, phase, fine_nm=fine_nm, voltage_kV=params["voltage_kV"],
                                   defocus_nm=params["defocus_nm"], Cs_um=params["Cs_um"],
                                   aperture_mrad=params["aperture_mrad"],
                                   convergence_mrad=params["convergence_mrad"])
    detector = _detector_for(params)
    image = apply_detector(np.clip(intensity, 0, None), dose_e_per_A2=params["dose_e_per_A2"],
                           pixel_size_A=10 * pixel_nm, detector=detector, rng=rng,
                           illumination_gradient=params["illumination_gradient"],
                           xray_spikes_per_Mpx=params["xray_spikes_per_Mpx"], oversampling=k)
    if params["quantize_levels"] is not None:
        image = quantize(image, int(params["quantize_levels"]))
    instances = _labels(particles, radii_A, n_px, 10 * pixel_nm)
    mask = (instances > 0).astype(np.uint8)
    for p in particles:
        p.info.setdefault("touching", False)
    extra = {
        "modality": "bf_tem", "polarity": "dark", "mask_fraction": float(mask.mean()),
        "fine_sampling_nm": fine_nm, "n_bragg": int(sum(maps["bragg"])), "bragg": json.dumps(maps["bragg"]),
        "extinction_distance_nm": maps["extinction_distance_nm"], "n_dark_grains": maps.get("n_dark_grains", 0),
        "quantize_levels": params["quantize_levels"] or 0, "scaled_particles": int(sum(p.info["scale"] > 1.1
                                                                                       for p in particles)),
        **notes, **{name: params[name] for name in BF_DRAWN if name != "quantize_levels"},
    }
    meta = _metadata(params, config, particles, seed, detector.name, extra)
    meta["mode"] = "bf_tem"
    micrograph = Micrograph(image, pixel_size_nm=pixel_nm, dose_e_per_A2=params["dose_e_per_A2"], metadata=meta,
                            source="simulated")
    return SimulatedImage(micrograph, mask, instances, meta)


__all__ = ["BF_SUPPORTS", "BFParams", "check_bf_spec", "attenuation_per_nm", "bf_image_intensity",
           "cross_section_beyond_aperture_nm2", "quantize", "simulate_bf_image"]
