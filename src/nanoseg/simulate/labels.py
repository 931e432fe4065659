"""Exact labels from each particle's own projected footprint on the output pixel grid.

Rule (documented in docs/simulation.md): a pixel belongs to a particle when **at least half of its area**
is covered by the union of disks of radius ``atom_radius_A`` (default: the element's metallic/covalent
radius from ASE, ×1.0) centred on the projected (x, y) positions of that particle's atoms, after filling
holes. Coverage is computed on a grid ``supersample`` times finer than the output pixels and averaged, so
the mask area equals the projected area of the dilated atoms to within the pixel edge quantisation, at
any pixel size. Only the particle's atoms count (never the support), and each particle gets its own
instance id (1..n). Where two footprints overlap (touching particles), a pixel goes to the particle whose
centre is nearer.

Pixel convention: output pixel (row i, column j) covers ``[j·P, (j+1)·P) × [i·P, (i+1)·P)`` in the field's
(x, y) coordinates (P the pixel size), i.e. it is centred at ``((j + ½)·P, (i + ½)·P)``: ``origin_A = P/2``.
The simulators shift the specimen by half a simulation sample so that the image pixels cover exactly these
areas, whatever the simulation sampling.

Example
-------
>>> import numpy as np
>>> from ase import Atoms
>>> atoms = Atoms("Au", positions=[[10.0, 10.0, 0.0]])
>>> m = footprint_mask(atoms, shape=(20, 20), pixel_size_A=1.0, atom_radius_A=3.0)
>>> 24 <= int(m.sum()) <= 32   # π·3² ≈ 28 px
True
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from scipy import ndimage

from nanoseg.errors import NanosegError


def footprint_mask(atoms: Atoms, *, shape: tuple[int, int], pixel_size_A: float, origin_A: float = 0.0,
                   atom_radius_A: float | None = None, supersample: int | None = None) -> np.ndarray:
    """Binary footprint (bool, ``shape``) of one particle's projected atoms, holes filled.

    Parameters
    ----------
    atoms : the particle's atoms (Å, in the field's coordinates).
    shape : (rows, cols) of the output grid.
    pixel_size_A : output pixel size in Å.
    origin_A : x = y coordinate of the centre of pixel (0, 0) in Å.
    atom_radius_A : disk radius per atom; default the largest covalent radius of its elements.
    supersample : sub-pixels per pixel side for area coverage (default: enough for ≤ 0.25 Å sub-pixels).
    """
    if len(atoms) == 0:
        return np.zeros(shape, dtype=bool)
    if atom_radius_A is None:
        atom_radius_A = float(max(covalent_radii[z] for z in set(atoms.numbers)))
    if atom_radius_A <= 0 or pixel_size_A <= 0:
        raise NanosegError("atom_radius_A and pixel_size_A must be > 0")
    k = supersample or int(min(16, max(2, np.ceil(pixel_size_A / 0.25))))
    fine = pixel_size_A / k
    xy = atoms.positions[:, :2]
    # only rasterise the particle's bounding box (+ radius), on the fine grid
    lo = np.floor((xy.min(axis=0) - atom_radius_A - origin_A) / pixel_size_A).astype(int) - 1
    hi = np.ceil((xy.max(axis=0) + atom_radius_A - origin_A) / pixel_size_A).astype(int) + 2
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [shape[1], shape[0]])
    if np.any(hi <= lo):
        return np.zeros(shape, dtype=bool)
    nx, ny = (hi - lo) * k
    # fine sub-pixel centres: x = origin + (j - 0.5 + (q + 0.5)/k) * pixel for pixel j, sub-pixel q
    x0 = origin_A + (lo[0] - 0.5) * pixel_size_A + 0.5 * fine
    y0 = origin_A + (lo[1] - 0.5) * pixel_size_A + 0.5 * fine
    cols = np.rint((xy[:, 0] - x0) / fine).astype(int)
    rows = np.rint((xy[:, 1] - y0) / fine).astype(int)
    inside = (cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny)
    centres = np.zeros((ny, nx), dtype=bool)
    centres[rows[inside], cols[inside]] = True
    if not centres.any():
        return np.zeros(shape, dtype=bool)
    r = atom_radius_A / fine
    # union of disks of radius r (in sub-pixels) around the atom centres = sub-pixels whose distance to the
    # nearest centre is ≤ r: the same set as a dilation by the disk {dx² + dy² ≤ r²}, in linear time
    nearest = ndimage.distance_transform_edt(~centres)
    covered = nearest ** 2 <= r ** 2 + 1e-9
    covered = ndimage.binary_fill_holes(covered)
    coverage = covered.reshape(ny // k, k, nx // k, k).mean(axis=(1, 3))
    out = np.zeros(shape, dtype=bool)
    out[lo[1]: hi[1], lo[0]: hi[0]] = coverage >= 0.5
    return ndimage.binary_fill_holes(out)


def footprint_labels(particles: list[Atoms], *, shape: tuple[int, int], pixel_size_A: float,
                     origin_A: float = 0.0, atom_radius_A: float | None = None) -> np.ndarray:
    """Instance labels (int32; 0 = background, i = particle i) from each particle's footprint.

    (Named ``instance_labels`` before 0.2; :func:`nanoseg.evaluate.matching.instance_labels` labels a mask.)

    >>> import numpy as np
    >>> from ase import Atoms
    >>> a, b = Atoms("Au", positions=[[5, 5, 0]]), Atoms("Au", positions=[[14, 14, 0]])
    >>> lab = footprint_labels([a, b], shape=(20, 20), pixel_size_A=1.0, atom_radius_A=2.0)
    >>> sorted(np.unique(lab).tolist())
    [0, 1, 2]
    """
    labels = np.zeros(shape, dtype=np.int32)
    best = np.full(shape, np.inf)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for index, particle in enumerate(particles, start=1):
        footprint = footprint_mask(particle, shape=shape, pixel_size_A=pixel_size_A, origin_A=origin_A,
                                   atom_radius_A=atom_radius_A)
        if not footprint.any():
            continue
        cx, cy = (particle.positions[:, :2].mean(axis=0) - origin_A) / pixel_size_A
        dist = (xx - cx) ** 2 + (yy - cy) ** 2
        take = footprint & (dist < best)
        labels[take] = index
        best[take] = dist[take]
    return labels


def instance_labels(*args, **kwargs) -> np.ndarray:
    """Deprecated name of :func:`footprint_labels` (kept for one release)."""
    import warnings

    warnings.warn("nanoseg.simulate.labels.instance_labels is now footprint_labels", DeprecationWarning, stacklevel=2)
    return footprint_labels(*args, **kwargs)
