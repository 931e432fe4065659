"""Atomic structures of nanoparticles (ASE), their orientation and their placement in a field of view.

Materials are crystals from :data:`MATERIALS` (fcc metals Au, Ag, Pt, Pd, Cu; CdSe and ZnS in the wurtzite
or zinc-blende form; the oxide CeO2 in the fluorite form). Shapes:

``truncated_octahedron``
    Wulff-like fcc shape: {111} facets truncated by {100} facets (cut from the lattice by planes).
``cuboctahedron``
    {111} and {100} facets meeting at the cuboctahedral ratio (cut by planes).
``decahedron`` / ``icosahedron``
    Multiply twinned particles from :mod:`ase.cluster` (fcc metals only; a compound asked for one of
    these is cut as a ``truncated_octahedron`` and the metadata records the shape actually built).
``sphere`` / ``ellipsoid``
    Cut from the bulk lattice; the ellipsoid has axes ``(a, a·e, a/e)`` scaled to the requested
    volume, with the elongation ``e = aspect_ratio`` (oblong particles such as CdSe rods).

The *diameter* of a particle is the diameter of the sphere with the same volume, i.e. with the same
number of atoms: ``d = (6 N Ω / π)^(1/3)`` with Ω the volume per atom of the bulk crystal. It is
what ``diameter_nm`` means everywhere in nanoseg's simulator (the metadata stores the built value).

Example
-------
>>> import numpy as np
>>> p = make_particle("Au", "truncated_octahedron", 3.0, np.random.default_rng(0))
>>> p.info["material"], abs(p.info["diameter_nm"] - 3.0) < 0.2
('Au', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

from nanoseg.errors import NanosegError


@dataclass(frozen=True)
class Material:
    """A crystal: ASE bulk parameters (lengths in Å) and its volume per atom (Å³)."""

    name: str
    symbol: str  # ASE bulk name ("Au", "CdSe")
    structure: str  # fcc, wurtzite, zincblende, fluorite
    a_A: float
    c_A: float | None = None

    def bulk(self) -> Atoms:
        if self.structure == "fcc":
            return bulk(self.symbol, "fcc", a=self.a_A, cubic=True)
        if self.structure in ("zincblende", "fluorite"):
            return bulk(self.symbol, self.structure, a=self.a_A, cubic=True)
        return bulk(self.symbol, "wurtzite", a=self.a_A, c=self.c_A, orthorhombic=True)

    @property
    def volume_per_atom_A3(self) -> float:
        return _volume_per_atom(self)

    @property
    def is_fcc_metal(self) -> bool:
        return self.structure == "fcc"


@lru_cache(maxsize=32)
def _volume_per_atom(material: Material) -> float:
    cell = material.bulk()
    return float(cell.get_volume() / len(cell))


#: lattice constants at room temperature (Å)
MATERIALS: dict[str, Material] = {
    "Au": Material("Au", "Au", "fcc", 4.078),
    "Ag": Material("Ag", "Ag", "fcc", 4.086),
    "Pt": Material("Pt", "Pt", "fcc", 3.924),
    "Pd": Material("Pd", "Pd", "fcc", 3.891),
    "Cu": Material("Cu", "Cu", "fcc", 3.615),
    "CdSe": Material("CdSe", "CdSe", "wurtzite", 4.299, 7.010),
    "CdSe-zb": Material("CdSe-zb", "CdSe", "zincblende", 6.077),
    "ZnS": Material("ZnS", "ZnS", "zincblende", 5.409),
    "ZnS-wz": Material("ZnS-wz", "ZnS", "wurtzite", 3.821, 6.257),
    "CeO2": Material("CeO2", "CeO2", "fluorite", 5.411),  # an oxide support-catalyst material (weak O columns)
}

SHAPES = ("truncated_octahedron", "cuboctahedron", "decahedron", "icosahedron", "sphere", "ellipsoid")

#: low-index zone axes (crystal directions) per lattice type; one is put along the beam when "on zone"
ZONE_AXES = {
    "fcc": [(0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 1, 2)],
    "zincblende": [(0, 0, 1), (0, 1, 1), (1, 1, 1)],
    "fluorite": [(0, 0, 1), (0, 1, 1), (1, 1, 1)],
    # orthorhombic wurtzite cell: x = [2-1-10], y = [01-10], z = [0001] (Cartesian directions)
    "wurtzite": [(0, 0, 1), (1, 0, 0), (0, 1, 0)],
    "twinned": [(0, 0, 1)],
}


def get_material(name: str) -> Material:
    """Look up a material by name; a clear error lists the known ones."""
    if name not in MATERIALS:
        raise NanosegError(f"unknown material {name!r}", hint=f"choose one of: {', '.join(MATERIALS)}")
    return MATERIALS[name]


@lru_cache(maxsize=32)
def _lattice_block(material: Material, radius_A: float) -> tuple[np.ndarray, tuple[int, ...]]:
    """Positions (Å) and atomic numbers of a bulk block centred on an atom, covering ``radius_A``."""
    unit = material.bulk()
    lengths = unit.cell.lengths()
    reps = [int(np.ceil(2 * radius_A / length)) + 2 for length in lengths]
    block = unit.repeat(reps)
    positions = block.get_positions()
    centre = np.array([reps[i] * lengths[i] / 2 for i in range(3)])
    nearest = positions[np.argmin(np.linalg.norm(positions - centre, axis=1))]
    return positions - nearest, tuple(block.get_atomic_numbers())


def _cut_mask(pos: np.ndarray, shape: str, scale_A: float, aspect_ratio: float) -> np.ndarray:
    """Which lattice sites lie inside ``shape`` at linear size ``scale_A`` (≈ radius)."""
    if shape == "sphere":
        return np.einsum("ij,ij->i", pos, pos) <= scale_A ** 2
    if shape == "ellipsoid":
        # elongated along the crystal's z (the c axis of wurtzite: CdSe rods grow along [0001])
        axes = np.array([scale_A / aspect_ratio ** 0.5, scale_A / aspect_ratio ** 0.5, scale_A * aspect_ratio])
        return np.sum((pos / axes) ** 2, axis=1) <= 1.0
    # octahedral family: {111} planes at distance d111, {100} planes at distance d100.
    # Wulff construction with γ100/γ111 ≈ 1.1 (Au) gives d100 = 1.1 d111; the cuboctahedron has
    # its {100} planes through the midpoints of the octahedron's edges (d100 = √3/2 d111).
    d111 = scale_A
    d100 = d111 * (np.sqrt(3) / 2 if shape == "cuboctahedron" else 1.1)
    keep = np.all(np.abs(pos) <= d100 + 1e-6, axis=1)
    return keep & (np.abs(pos).sum(axis=1) <= np.sqrt(3) * d111 + 1e-6)


def _twinned(material: Material, shape: str, target_atoms: float) -> Atoms:
    from ase.cluster import Decahedron, Icosahedron

    def build(n: int) -> Atoms:
        if shape == "icosahedron":
            return Icosahedron(material.symbol, noshells=n + 1, latticeconstant=material.a_A)
        # Marks decahedron: p atoms along the {100} facet, q along the 5-fold axis, r re-entrant notch
        return Decahedron(material.symbol, p=n, q=max(1, n // 2), r=1 if n > 2 else 0,
                          latticeconstant=material.a_A)

    # atom counts grow ~ n³: start from an estimate, walk until the target is bracketed (few builds)
    pilot = len(build(4))
    n = max(1, int(round(4 * (target_atoms / pilot) ** (1 / 3))))
    built = {n: build(n)}
    step = 1 if len(built[n]) < target_atoms else -1
    while n + step >= 1:
        nxt = n + step
        built[nxt] = build(nxt)
        n = nxt
        if (len(built[n]) - target_atoms) * step >= 0:
            break
    best = min(built.values(), key=lambda c: abs(len(c) - target_atoms))
    assert best is not None
    best.set_positions(best.get_positions() - best.get_positions().mean(axis=0))
    best.set_cell(None)
    best.pbc = False
    return best


def volume_equivalent_diameter_nm(atoms: Atoms, material: Material) -> float:
    """Diameter (nm) of the sphere holding as many atoms as ``atoms`` at bulk density."""
    return float((6 * len(atoms) * material.volume_per_atom_A3 / np.pi) ** (1 / 3) / 10)


def make_particle(material: str, shape: str, diameter_nm: float, rng: np.random.Generator, *,
                  aspect_ratio: float = 1.6, on_zone: bool = False) -> Atoms:
    """Build one nanoparticle centred on the origin (Å), randomly oriented.

    Parameters
    ----------
    material : key of :data:`MATERIALS` ("Au", "Ag", "Pt", "Pd", "Cu", "CdSe", "ZnS", ...).
    shape : one of :data:`SHAPES`.
    diameter_nm : target volume-equivalent diameter in nm (the built particle is within one atomic
        shell of it; ``atoms.info["diameter_nm"]`` is the built value).
    rng : NumPy random generator (orientation, zone axis choice).
    aspect_ratio : elongation of ``ellipsoid`` particles (long / short axis).
    on_zone : put a low-index zone axis along the beam (z), with a random in-plane rotation; otherwise
        the orientation is uniformly random.

    Returns
    -------
    ase.Atoms with ``info`` keys material, shape, diameter_nm, on_zone, zone_axis, n_atoms.

    Example
    -------
    >>> import numpy as np
    >>> p = make_particle("CdSe", "ellipsoid", 4.0, np.random.default_rng(1), aspect_ratio=1.5)
    >>> sorted(set(p.get_chemical_symbols()))
    ['Cd', 'Se']
    """
    mat = get_material(material)
    if shape not in SHAPES:
        raise NanosegError(f"unknown particle shape {shape!r}", hint=f"choose one of: {', '.join(SHAPES)}")
    if not np.isfinite(diameter_nm) or diameter_nm <= 0.3:
        raise NanosegError(f"particle diameter must be > 0.3 nm, got {diameter_nm}")
    if diameter_nm > 60:
        raise NanosegError(f"particle diameter {diameter_nm} nm is too large to simulate (limit 60 nm)")
    if not aspect_ratio >= 1.0:
        raise NanosegError(f"aspect_ratio must be ≥ 1, got {aspect_ratio}")
    built_shape = shape
    if shape in ("decahedron", "icosahedron") and not mat.is_fcc_metal:
        built_shape = "truncated_octahedron"
    target_atoms = np.pi / 6 * (diameter_nm * 10) ** 3 / mat.volume_per_atom_A3
    if built_shape in ("decahedron", "icosahedron"):
        atoms = _twinned(mat, built_shape, target_atoms)
        lattice = "twinned"
    else:
        lattice = mat.structure
        # bisection on the linear scale so the atom count matches the target volume
        radius = 0.5 * diameter_nm * 10
        reach = radius * (1.7 * aspect_ratio if built_shape == "ellipsoid" else 1.9)
        pos, numbers = _lattice_block(mat, float(np.ceil(reach / 5) * 5))
        lo, hi = 0.3 * radius, 2.0 * radius
        keep = _cut_mask(pos, built_shape, hi, aspect_ratio)
        below = _cut_mask(pos, built_shape, lo, aspect_ratio)
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            trial = _cut_mask(pos, built_shape, mid, aspect_ratio)
            if trial.sum() < target_atoms:
                lo, below = mid, trial
            else:
                hi, keep = mid, trial
            if hi - lo < 0.02:
                break
        # facetted shapes grow a whole shell at a time: keep the size nearer the target volume
        if below.sum() >= 4 and abs(below.sum() - target_atoms) < abs(keep.sum() - target_atoms):
            keep = below
        atoms = Atoms(numbers=np.asarray(numbers)[keep], positions=pos[keep])
        atoms.set_positions(atoms.get_positions() - atoms.get_positions().mean(axis=0))
    if len(atoms) < 4:
        raise NanosegError(f"a {diameter_nm} nm {material} {shape} has fewer than 4 atoms",
                           hint="use a larger diameter")
    # orientation
    if on_zone:
        axes = ZONE_AXES[lattice]
        axis = np.asarray(axes[rng.integers(len(axes))], dtype=float)
        zone = "".join(str(int(v)) for v in axis)
        direction = axis / np.linalg.norm(axis)  # cubic cells and the orthorhombic wurtzite cell: Cartesian
        align, _ = Rotation.align_vectors([[0, 0, 1]], [direction])
        spin = Rotation.from_euler("z", rng.uniform(0, 2 * np.pi))
        rotation = spin * align
    else:
        rotation = Rotation.random(random_state=np.random.RandomState(rng.integers(2**31)))
        zone = "random"
    atoms.set_positions(rotation.apply(atoms.get_positions()))
    atoms.info.update(material=material, shape=built_shape, requested_shape=shape,
                      diameter_nm=volume_equivalent_diameter_nm(atoms, mat), on_zone=bool(on_zone),
                      zone_axis=zone, n_atoms=len(atoms))
    return atoms


def projected_radius_A(atoms: Atoms) -> float:
    """Radius (Å) of the smallest origin-centred disk holding the particle's projection along z."""
    xy = atoms.get_positions()[:, :2]
    return float(np.sqrt((xy ** 2).sum(axis=1)).max())


def place_particles(radii_A: list[float], extent_A: tuple[float, float], rng: np.random.Generator, *,
                    margin_A: float = 4.0, gap_A: float = 3.0, touching_pair: bool = False,
                    max_tries: int = 2000) -> np.ndarray:
    """Centres (x, y) in Å for particles of projected radii ``radii_A`` without overlap.

    With ``touching_pair`` the second particle is put in contact with the first (their bounding disks
    touch). Raises :class:`NanosegError` when they cannot all fit in the field.

    >>> import numpy as np
    >>> c = place_particles([20.0, 20.0], (200.0, 200.0), np.random.default_rng(0))
    >>> bool(np.hypot(*(c[0] - c[1])) >= 40.0)
    True
    """
    centres: list[np.ndarray] = []
    ex, ey = extent_A
    for i, radius in enumerate(radii_A):
        lo = radius + margin_A
        if 2 * lo > min(ex, ey):
            raise NanosegError(
                f"a particle of {2 * radius / 10:.1f} nm (projected) does not fit in a field of "
                f"{ex / 10:.1f} × {ey / 10:.1f} nm",
                hint="use smaller particles, a larger image (image_size_px) or a larger pixel size",
            )
        for _ in range(max_tries):
            if touching_pair and i == 1:
                angle = rng.uniform(0, 2 * np.pi)
                candidate = centres[0] + (radii_A[0] + radius + 1.0) * np.array([np.cos(angle), np.sin(angle)])
            else:
                candidate = np.array([rng.uniform(lo, ex - lo), rng.uniform(lo, ey - lo)])
            if not (lo <= candidate[0] <= ex - lo and lo <= candidate[1] <= ey - lo):
                continue
            ok = all(
                np.hypot(*(candidate - c)) >= radius + radii_A[j] + (0.5 if touching_pair and i == 1 else gap_A)
                for j, c in enumerate(centres)
            )
            if ok:
                centres.append(candidate)
                break
        else:
            raise NanosegError(
                f"cannot place {len(radii_A)} particles without overlap in a {ex / 10:.1f} × {ey / 10:.1f} nm field",
                hint="lower n_particles or the diameter, or enlarge the field",
            )
    return np.array(centres).reshape(-1, 2)
