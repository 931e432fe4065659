"""Simulated in situ coarsening movies with ground truth (particles, tracks, events, drift).

The particle system evolves by a known law; frames are rendered lazily, one at a time, so a movie of
thousands of 4k frames never sits in memory.

**The law.** Particles are spheres of radius r (projected as discs) on a support.

* *Ripening* (mean-field LSW with a free exponent n): ``dr/dt = A r^(2-n) (1/r_c - 1/r)``; n = 3 is
  diffusion-limited LSW, n = 4 the surface/grain-boundary-diffusion variant, n = 2 interface-limited.
  ``r_c`` is set at every step so that the total volume Σr³ is conserved (for n = 3, r_c = ⟨r⟩).
  For n = 3 the initial radii are drawn from the stationary LSW distribution, so the system is self-similar
  from t = 0 and ``⟨r⟩³ − ⟨r₀⟩³ = k t`` with ``k = 4A/9`` (``lsw_rate_nm3_per_s`` is k). Small particles
  shrink and vanish (a ``vanish`` event) once below ``dissolve_radius_nm`` (0.3 nm, ≈ 7 Au atoms), large
  ones grow. The law is integrated in ``w = r^n``
  (``dw/dt = nA(r/r_c − 1)`` stays finite as r → 0), and Σr³ is renormalized after each step.
* *Migration*: a 2-D random walk, ``D(r) = diffusion_nm2_per_s · (1 nm / max(r, r_m))^diffusion_size_exponent``
  with ``r_m = mobility_min_radius_nm`` (0.5 nm): the continuum law is not extrapolated to clusters of a few
  atoms, where it would send a dissolving particle flying nm per frame into its neighbours.
* *Coalescence*: two particles whose projected discs touch (edges closer than ``contact_distance_nm``, default
  0.3 nm, one Au–Au bond) merge into a new particle (a new id) at their volume-weighted centre with ``r³ = r₁³ + r₂³`` (a
  ``coalescence`` event with both parents).
* ``mode="ripening"`` (ripening, slow migration), ``"coalescence"`` (no ripening, fast migration,
  log-normal initial sizes), ``"mixed"`` (both).

**Rendering (a fast approximation for large fields).** Each frame is built from: an amorphous-support
texture (band-limited noise at 0.2–0.5 nm, fixed to the sample and drifting with it), particle amplitude
contrast ``exp(−t/λ)`` from the projected thickness t of each sphere, lattice fringes of spacing
``lattice_spacing_nm`` at a random orientation per particle (omitted when below the Nyquist period),
a CTF-like transfer (``cos χ(k)`` for an underfocus ``defocus_nm`` at 300 kV with a Gaussian envelope of a
~0.12 nm information limit), and the camera model of the multislice simulator
(:func:`nanoseg.simulate.detector.apply_detector`: Poisson counting at ``dose_e_per_A2``, gain noise, then the
scintillator MTF). ``absorption_length_nm`` and ``support_contrast`` defaults were tuned so that particle contrast
and Fourier roughness match multislice images of the same particles (see docs/insitu.md). The stage drifts by ``drift_nm_per_frame`` per frame plus a small random jitter.
Particle geometry is drawn only inside each particle's bounding box, so the cost is one FFT per frame
plus the particles' area.

Example
-------
>>> movie = simulate_coarsening_movie(n_frames=3, shape_px=(64, 64), pixel_size_nm=0.2, n_particles=4, seed=1)
>>> frame = movie.frame(0)
>>> frame.data.shape, frame.pixel_size_nm, sorted(movie.truth.columns)[:3]
((64, 64), 0.2, ['frame', 'inside', 'particle_id'])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy import ndimage as ndi

from nanoseg.errors import NanosegError
from nanoseg.io import Micrograph, Series
from nanoseg.simulate.lsw import lsw_distribution, sample_lsw_radii

__all__ = ["CoarseningMovie", "simulate_coarsening_movie", "ParticleLaw", "StageDrift", "MovieImaging", "write_movie",
           "sample_lsw_radii", "lsw_distribution", "image_statistics"]

_LAMBDA_300KV_NM = 0.001969  # electron wavelength at 300 kV


@dataclass
class CoarseningMovie:
    """A simulated coarsening movie: lazy frames plus the ground truth.

    Attributes
    ----------
    truth : DataFrame, one row per (frame, particle): ``frame, time_s, particle_id, y_nm, x_nm`` (image
        coordinates, drift included), ``y_sample_nm, x_sample_nm`` (drift removed), ``radius_nm``,
        ``inside`` (the disc lies fully inside the field).
    events : DataFrame ``time_s, frame, kind, parents, child`` (``kind`` is ``coalescence`` or ``vanish``;
        ``parents`` a tuple of ids; ``frame`` is the first frame after the event).
    drift : DataFrame ``frame, dy_nm, dx_nm``: where the sample's origin appears in the image at each frame.
    params : dict of the generating parameters (incl. ``exponent``, ``rate_nm_n_per_s`` = the k of
        ``⟨r⟩ⁿ − ⟨r₀⟩ⁿ = k t`` for n = 3; None when not known analytically).
    """

    truth: pd.DataFrame
    events: pd.DataFrame
    drift: pd.DataFrame
    times_s: np.ndarray
    shape_px: tuple[int, int]
    pixel_size_nm: float
    dose_e_per_A2: float | None
    params: dict = field(default_factory=dict)
    _support: np.ndarray | None = field(default=None, repr=False)
    _orient: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.times_s)

    @property
    def n_frames(self) -> int:
        return len(self.times_s)

    def _rows(self, index: int) -> pd.DataFrame:
        if not 0 <= index < len(self):
            raise IndexError(index)
        frames = self.truth["frame"].to_numpy()
        if len(frames) > 1 and np.all(frames[1:] >= frames[:-1]):  # built frame by frame: binary search
            lo, hi = np.searchsorted(frames, [index, index + 1])
            return self.truth.iloc[lo:hi]
        return self.truth[self.truth["frame"] == index]

    def labels(self, index: int) -> np.ndarray:
        """Ground-truth instance labels of frame ``index`` (value = particle_id, later ids drawn on top)."""
        h, w = self.shape_px
        out = np.zeros((h, w), dtype=np.int32)
        px = self.pixel_size_nm
        for row in self._rows(index).itertuples():
            cy, cx, r = row.y_nm / px, row.x_nm / px, row.radius_nm / px
            y0, y1 = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, h)
            x0, x1 = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, w)
            if y0 >= y1 or x0 >= x1:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1]
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            out[y0:y1, x0:x1][inside] = row.particle_id
        return out

    def mask(self, index: int) -> np.ndarray:
        """Ground-truth binary mask of frame ``index``."""
        return self.labels(index) > 0

    def frame(self, index: int) -> Micrograph:
        """Render frame ``index`` (deterministic: the same index always gives the same image)."""
        data = _render(self, index)
        return Micrograph(data, pixel_size_nm=self.pixel_size_nm, dose_e_per_A2=self.dose_e_per_A2,
                          metadata={"time_s": float(self.times_s[index]), "frame_index": index,
                                    "simulated": "coarsening movie"},
                          source="simulated coarsening movie")

    def frames(self) -> Iterator[Micrograph]:
        """Yield the frames one at a time (rendered on demand)."""
        for i in range(len(self)):
            yield self.frame(i)

    def series(self) -> Series:
        """The movie as a lazy :class:`nanoseg.io.Series`."""
        return Series(self.frame, self.times_s, source="simulated coarsening movie")

    def truth_table(self, index: int) -> pd.DataFrame:
        """Truth rows of one frame."""
        return self._rows(index).reset_index(drop=True)


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NanosegError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise NanosegError(f"{name} must be {'≥ 0' if allow_zero else '> 0'}, got {value!r}")
    return v


@dataclass(frozen=True)
class ParticleLaw:
    """How the particles evolve (the law of the module docstring).

    Attributes
    ----------
    mode : ``"ripening"``, ``"coalescence"`` or ``"mixed"``.
    mean_radius_nm : initial mean radius.
    lsw_rate_nm3_per_s : k of ``⟨r⟩³ − ⟨r₀⟩³ = k t`` (for ``exponent = 3``); for other exponents the same
        number sets the law's constant A = 9k/4 (the rate of ⟨r⟩ⁿ is then measured from the truth).
    exponent : n of the ripening law (2, 3 or 4).
    diffusion_nm2_per_s : migration diffusion coefficient of a 1 nm-radius particle; None: 0.002 for
        ripening, 0.05 for coalescence / mixed.
    diffusion_size_exponent : D ∝ r^-this.
    dissolve_radius_nm : a ripening particle whose radius falls below this has dissolved (a ``vanish`` event):
        0.3 nm is a cluster of ≈ 7 Au atoms (r = 0.159 nm · N^(1/3), the Wigner–Seitz radius), a few adatoms
        rather than a particle. Initial draws below it are not placed. Must lie below ``mean_radius_nm``.
    mobility_min_radius_nm : the migration law D ∝ r^-``diffusion_size_exponent`` (surface-diffusion-limited
        Brownian motion of a particle with a continuous surface) is evaluated at ``max(r, this)``, not
        extrapolated to clusters of a few tens of atoms (0.5 nm ≈ 30 Au atoms): without the clamp a particle
        dissolving through 0.05–0.3 nm took steps of several nm within one frame and "coalesced" with a
        distant neighbour in the truth.
    min_separation_nm : initial minimum gap between particle edges.
    contact_distance_nm : two particles coalesce once the gap between their edges is below this. The default
        0.3 nm, about one Au–Au bond length (0.288 nm), is the physical value: surface atoms closer than a bond
        bond to each other and a neck forms. 0 merges them only when the discs overlap, so a pair can sit a
        fraction of an ångström apart for frames: a state no metal pair holds, and no image can tell from contact
        (0.06 nm is 1.5 px at 0.04 nm/px, under the blur; docs/insitu.md, "Events from model masks").
        Must not exceed ``min_separation_nm``.
    substeps : integration steps per frame interval.
    """

    mode: str = "ripening"
    mean_radius_nm: float = 1.5
    lsw_rate_nm3_per_s: float = 0.1
    exponent: int = 3
    diffusion_nm2_per_s: float | None = None
    diffusion_size_exponent: float = 4.0
    dissolve_radius_nm: float = 0.3
    mobility_min_radius_nm: float = 0.5
    min_separation_nm: float = 0.3
    contact_distance_nm: float = 0.3
    substeps: int = 8


@dataclass(frozen=True)
class StageDrift:
    """The stage drift: ``drift_nm_per_frame`` (dy, dx) per frame (a scalar: (0, scalar)) plus a random walk of
    step std ``drift_jitter_nm``."""

    drift_nm_per_frame: float | tuple[float, float] = (0.05, 0.08)
    drift_jitter_nm: float = 0.01


@dataclass(frozen=True)
class MovieImaging:
    """How the frames are rendered (the rendering of the module docstring).

    Attributes
    ----------
    dose_e_per_A2 : electron dose per frame (None: noise-free).
    lattice_spacing_nm : fringe period (Au 111 = 0.235 nm); not drawn below the Nyquist period.
    absorption_length_nm : λ of the amplitude contrast exp(−t/λ).
    support_contrast : std of the amorphous-support texture (relative intensity).
    defocus_nm : underfocus of the CTF-like transfer.
    detector : camera preset of :mod:`nanoseg.simulate.detector` (``scintillator``, ``counting``, ``ideal``).
    """

    dose_e_per_A2: float | None = 300.0
    lattice_spacing_nm: float = 0.235
    absorption_length_nm: float = 25.0
    support_contrast: float = 0.1
    defocus_nm: float = 8.0
    detector: str = "scintillator"


_CONFIGS = {"law": ParticleLaw, "drift": StageDrift, "imaging": MovieImaging}


def _configs(law, drift, imaging, keywords: dict) -> tuple[ParticleLaw, StageDrift, MovieImaging]:
    """The three configs, each keyword (an old flat parameter name) overriding its field."""
    given = {"law": law or ParticleLaw(), "drift": drift or StageDrift(), "imaging": imaging or MovieImaging()}
    for name, cls in _CONFIGS.items():
        if not isinstance(given[name], cls):
            raise NanosegError(f"{name}= must be a {cls.__name__}, got {type(given[name]).__name__}")
    owner = {f.name: name for name, cls in _CONFIGS.items() for f in fields(cls)}
    unknown = sorted(set(keywords) - set(owner))
    if unknown:
        raise NanosegError(f"simulate_coarsening_movie got unknown parameters {unknown}",
                           hint="see help(simulate_coarsening_movie) for the parameters")
    for name in _CONFIGS:
        mine = {k: v for k, v in keywords.items() if owner[k] == name}
        if mine:
            given[name] = replace(given[name], **mine)
    return given["law"], given["drift"], given["imaging"]


def simulate_coarsening_movie(
    *,
    n_frames: int = 40,
    shape_px: tuple[int, int] = (256, 256),
    pixel_size_nm: float = 0.18,
    n_particles: int = 40,
    frame_interval_s: float = 1.0,
    seed: int = 0,
    law: ParticleLaw | None = None,
    drift: StageDrift | None = None,
    imaging: MovieImaging | None = None,
    **keywords,
) -> CoarseningMovie:
    """Simulate a coarsening movie with ground truth (see the module docstring for the law and rendering).

    Steps: check the parameters; the stage drift path; the initial particles (sizes, non-overlapping places);
    evolve them frame by frame (ripening, migration, coalescence at each substep), recording the truth; assemble
    the :class:`CoarseningMovie` (frames are rendered lazily from it).

    Parameters
    ----------
    n_frames : number of frames (≥ 1).
    shape_px : (rows, cols) of each frame.
    pixel_size_nm : nm per pixel.
    n_particles : particles at t = 0 (in the field plus a margin around it; the same areal density).
    frame_interval_s : time between frames.
    seed : random seed (the movie is fully determined by its parameters).
    law : the particle physics, a :class:`ParticleLaw` (default: its defaults).
    drift : the stage drift, a :class:`StageDrift`.
    imaging : the rendering, a :class:`MovieImaging`.
    **keywords : any field of the three configs by name (``mode=``, ``mean_radius_nm=``,
        ``lsw_rate_nm3_per_s=``, ``exponent=``, ``diffusion_nm2_per_s=``, ``diffusion_size_exponent=``,
        ``dissolve_radius_nm=``, ``mobility_min_radius_nm=``, ``min_separation_nm=``, ``substeps=``,
        ``drift_nm_per_frame=``, ``drift_jitter_nm=``, ``dose_e_per_A2=``, ``lattice_spacing_nm=``,
        ``absorption_length_nm=``, ``support_contrast=``, ``defocus_nm=``, ``detector=``); a keyword overrides
        the same field of a config given above.

    Returns
    -------
    CoarseningMovie

    Example
    -------
    >>> m = simulate_coarsening_movie(n_frames=5, shape_px=(64, 64), pixel_size_nm=0.2, n_particles=5,
    ...                               mode="coalescence", seed=3)
    >>> len(m), set(m.events["kind"]) <= {"coalescence", "vanish"}
    (5, True)
    >>> same = simulate_coarsening_movie(n_frames=5, shape_px=(64, 64), pixel_size_nm=0.2, n_particles=5,
    ...                                  law=ParticleLaw(mode="coalescence"), seed=3)
    >>> same.truth.equals(m.truth)
    True
    """
    law, stage, imaging = _configs(law, drift, imaging, keywords)
    shape, px, dt_frame, law = _checked(law, imaging, n_frames, n_particles, shape_px, pixel_size_nm,
                                        frame_interval_s)
    rng = np.random.default_rng(seed)
    n_frames = int(n_frames)
    times = np.arange(n_frames) * dt_frame
    drift_path = _drift_path(stage, n_frames, rng)
    lo, hi, field_nm = _domain(shape, px, drift_path, law.mean_radius_nm)
    n_total = max(1, int(round(n_particles * (hi - lo).prod() / field_nm.prod())))
    radii = _initial_radii(law, n_total, rng)
    system = _Particles(radii, _place(radii, lo, hi, law.min_separation_nm, rng), lo, hi)
    rows, events = _evolve(system, law, times, dt_frame, drift_path, field_nm, rng)
    return _assemble(rows, events, times, drift_path, system.total_volume, law, stage, imaging,
                     dict(n_frames=n_frames, shape_px=shape, pixel_size_nm=px, n_particles=n_particles,
                          frame_interval_s=dt_frame, seed=seed))


def _checked(law: ParticleLaw, imaging: MovieImaging, n_frames, n_particles, shape_px, pixel_size_nm,
             frame_interval_s) -> tuple[tuple[int, int], float, float, ParticleLaw]:
    """Validate the parameters (one clear error each); returns shape, pixel size, interval and the law with its
    numbers as floats and the default diffusion filled in."""
    if law.mode not in ("ripening", "coalescence", "mixed"):
        raise NanosegError(f"unknown mode {law.mode!r}", hint="use 'ripening', 'coalescence' or 'mixed'")
    if int(n_frames) < 1:
        raise NanosegError(f"n_frames must be ≥ 1, got {n_frames}")
    if int(n_particles) < 1:
        raise NanosegError(f"n_particles must be ≥ 1, got {n_particles}")
    if law.exponent not in (2, 3, 4):
        raise NanosegError(f"exponent must be 2, 3 or 4, got {law.exponent}")
    shape = tuple(int(s) for s in shape_px)
    if len(shape) != 2 or min(shape) < 16:
        raise NanosegError(f"shape_px must be two sizes ≥ 16 px, got {shape_px}")
    px = _check_positive("pixel_size_nm", pixel_size_nm)
    dt_frame = _check_positive("frame_interval_s", frame_interval_s)
    k = _check_positive("lsw_rate_nm3_per_s", law.lsw_rate_nm3_per_s, allow_zero=True)
    r0 = _check_positive("mean_radius_nm", law.mean_radius_nm)
    if imaging.dose_e_per_A2 is not None:
        _check_positive("dose_e_per_A2", imaging.dose_e_per_A2)
    diffusion = law.diffusion_nm2_per_s
    if diffusion is None:
        diffusion = 0.002 if law.mode == "ripening" else 0.05
    D1 = _check_positive("diffusion_nm2_per_s", diffusion, allow_zero=True)
    r_dissolve = _check_positive("dissolve_radius_nm", law.dissolve_radius_nm)
    if r_dissolve >= r0:
        raise NanosegError(f"dissolve_radius_nm ({r_dissolve:g}) must lie below mean_radius_nm ({r0:g})")
    r_mobile = _check_positive("mobility_min_radius_nm", law.mobility_min_radius_nm, allow_zero=True)
    contact = _check_positive("contact_distance_nm", law.contact_distance_nm, allow_zero=True)
    if contact > law.min_separation_nm:
        raise NanosegError(f"contact_distance_nm ({contact:g}) must not exceed min_separation_nm "
                           f"({law.min_separation_nm:g}): the initial particles would merge at once",
                           hint=f"pass contact_distance_nm={law.min_separation_nm:g} or less (0 merges only "
                                f"overlapping discs), or a larger min_separation_nm")
    law = replace(law, lsw_rate_nm3_per_s=k, mean_radius_nm=r0, diffusion_nm2_per_s=D1,
                  dissolve_radius_nm=r_dissolve, mobility_min_radius_nm=r_mobile, exponent=int(law.exponent),
                  substeps=max(int(law.substeps), 1), contact_distance_nm=contact)
    return shape, px, dt_frame, law


def _drift_path(stage: StageDrift, n_frames: int, rng) -> np.ndarray:
    """(n_frames, 2) where the sample's origin appears in the image: constant velocity plus a random walk."""
    drift = np.atleast_1d(np.asarray(stage.drift_nm_per_frame, dtype=float))
    drift = np.array([0.0, drift[0]]) if drift.size == 1 else drift[:2]
    steps = np.tile(drift, (n_frames, 1)) + rng.normal(0, stage.drift_jitter_nm, (n_frames, 2))
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def _domain(shape, px: float, drift_path: np.ndarray, r0: float):
    """(lo, hi) of the simulated domain: the field plus the drift and a margin; and the field size in nm."""
    margin = float(np.abs(drift_path).max()) + 4 * r0 + 2.0
    field_nm = np.array(shape, dtype=float) * px
    return -margin, field_nm + margin, field_nm


def _initial_radii(law: ParticleLaw, n_total: int, rng) -> np.ndarray:
    """Initial radii: log-normal (coalescence) or stationary LSW; draws below the dissolution radius dropped."""
    r0 = law.mean_radius_nm
    if law.mode == "coalescence":
        radii = r0 * rng.lognormal(0.0, 0.25, n_total) / np.exp(0.25**2 / 2)
    else:
        radii = sample_lsw_radii(n_total, r0, rng)
    radii = radii[radii > law.dissolve_radius_nm]  # a draw below the dissolution radius is no particle (LSW: ≈ 0.3 %)
    if not len(radii):
        raise NanosegError("no initial particle is larger than dissolve_radius_nm",
                           hint="raise mean_radius_nm or n_particles, or lower dissolve_radius_nm")
    return radii


@dataclass
class _Particles:
    """The evolving particle system: radii, sample positions, ids; the domain; the conserved total volume."""

    radii: np.ndarray
    pos: np.ndarray
    lo: float | np.ndarray
    hi: np.ndarray
    ids: np.ndarray = field(init=False)
    next_id: int = field(init=False)
    total_volume: float = field(init=False)

    def __post_init__(self):
        self.ids = np.arange(1, len(self.radii) + 1)
        self.next_id = len(self.radii) + 1
        self.total_volume = float(np.sum(self.radii**3))

    def ripen(self, law: ParticleLaw, dt: float, t: float, frame: int, events: list) -> None:
        """One step of dw/dt = nA(r/r_c − 1) in w = rⁿ; dissolved particles vanish; Σr³ renormalized."""
        n_exp, A = law.exponent, 9.0 * law.lsw_rate_nm3_per_s / 4.0
        radii = self.radii
        w = radii**n_exp
        inv_rc = np.sum(radii ** (3 - n_exp)) / np.sum(radii ** (4 - n_exp))
        w = w + dt * n_exp * A * (radii * inv_rc - 1.0)
        gone = w <= law.dissolve_radius_nm**n_exp
        radii = np.where(gone, 0.0, np.abs(w) ** (1.0 / n_exp))
        for j in np.flatnonzero(gone):
            events.append((t, frame, "vanish", (int(self.ids[j]),), 0))
        if gone.any():
            keep = ~gone
            radii, self.pos, self.ids = radii[keep], self.pos[keep], self.ids[keep]
        # exact volume conservation (Euler drift and dissolved remnants go back to the others)
        if len(radii):
            radii = radii * (self.total_volume / np.sum(radii**3)) ** (1 / 3)
        self.radii = radii

    def migrate(self, law: ParticleLaw, dt: float, rng) -> None:
        """One random-walk step with D(r) = D₁ (1 nm / max(r, r_m))^exponent, reflected at the domain edges."""
        r_eff = np.maximum(self.radii, max(law.mobility_min_radius_nm, 1e-3))
        sigma = np.sqrt(2 * law.diffusion_nm2_per_s * dt * (1.0 / r_eff) ** law.diffusion_size_exponent)
        pos = self.pos + rng.normal(0, 1, self.pos.shape) * sigma[:, None]
        pos = np.where(pos < self.lo, 2 * self.lo - pos, pos)
        self.pos = np.where(pos > self.hi, 2 * self.hi - pos, pos)

    def coalesce(self, t: float, frame: int, events: list, contact_nm: float = 0.0) -> None:
        self.radii, self.pos, self.ids, self.next_id = _coalesce(self.radii, self.pos, self.ids, self.next_id, t,
                                                                 frame, events, contact_nm)

    def record(self, frame: int, time_s: float, offset: np.ndarray, field_nm: np.ndarray, rows: list) -> None:
        """Append the truth rows of the particles visible in the field (image = sample + drift offset)."""
        radii, img = self.radii, self.pos + offset
        inside = ((img[:, 0] - radii >= 0) & (img[:, 1] - radii >= 0)
                  & (img[:, 0] + radii <= field_nm[0]) & (img[:, 1] + radii <= field_nm[1]))
        visible = ((img[:, 0] + radii > 0) & (img[:, 1] + radii > 0)
                   & (img[:, 0] - radii < field_nm[0]) & (img[:, 1] - radii < field_nm[1]))
        for j in np.flatnonzero(visible):
            rows.append((frame, time_s, int(self.ids[j]), img[j, 0], img[j, 1], self.pos[j, 0], self.pos[j, 1],
                         radii[j], bool(inside[j])))


def _evolve(system: _Particles, law: ParticleLaw, times: np.ndarray, dt_frame: float, drift_path: np.ndarray,
            field_nm, rng):
    """Run the law over the frames (``law.substeps`` per interval); returns the truth rows and the events."""
    rows: list[tuple] = []
    events: list[tuple] = []
    ripening = law.mode in ("ripening", "mixed") and law.lsw_rate_nm3_per_s > 0
    dt = dt_frame / law.substeps
    system.record(0, times[0], drift_path[0], field_nm, rows)
    t = 0.0
    for frame in range(1, len(times)):
        for _ in range(law.substeps):
            t += dt
            if ripening and len(system.radii) > 1:
                system.ripen(law, dt, t, frame, events)
            if law.diffusion_nm2_per_s > 0:
                system.migrate(law, dt, rng)
            system.coalesce(t, frame, events, law.contact_distance_nm)
        system.record(frame, times[frame], drift_path[frame], field_nm, rows)
    return rows, events


def _assemble(rows, events, times, drift_path, total_volume, law: ParticleLaw, stage: StageDrift,
              imaging: MovieImaging, basics: dict) -> CoarseningMovie:
    """The truth, events and drift tables and the generating parameters, as a :class:`CoarseningMovie`."""
    truth = pd.DataFrame(rows, columns=["frame", "time_s", "particle_id", "y_nm", "x_nm", "y_sample_nm",
                                        "x_sample_nm", "radius_nm", "inside"])
    ev = pd.DataFrame(events, columns=["time_s", "frame", "kind", "parents", "child"])
    drift_df = pd.DataFrame({"frame": np.arange(len(times)), "dy_nm": drift_path[:, 0], "dx_nm": drift_path[:, 1]})
    ripening = law.mode in ("ripening", "mixed") and law.lsw_rate_nm3_per_s > 0
    drift = np.atleast_1d(np.asarray(stage.drift_nm_per_frame, dtype=float))
    drift = np.array([0.0, drift[0]]) if drift.size == 1 else drift[:2]
    params = dict(mode=law.mode, n_frames=basics["n_frames"], shape_px=basics["shape_px"],
                  pixel_size_nm=basics["pixel_size_nm"], n_particles=basics["n_particles"],
                  mean_radius_nm=law.mean_radius_nm, frame_interval_s=basics["frame_interval_s"],
                  lsw_rate_nm3_per_s=law.lsw_rate_nm3_per_s, exponent=law.exponent,
                  rate_nm_n_per_s=(law.lsw_rate_nm3_per_s if (law.exponent == 3 and ripening) else None),
                  diffusion_nm2_per_s=law.diffusion_nm2_per_s, diffusion_size_exponent=law.diffusion_size_exponent,
                  drift_nm_per_frame=tuple(drift), drift_jitter_nm=stage.drift_jitter_nm,
                  dose_e_per_A2=imaging.dose_e_per_A2, lattice_spacing_nm=imaging.lattice_spacing_nm,
                  absorption_length_nm=imaging.absorption_length_nm, support_contrast=imaging.support_contrast,
                  defocus_nm=imaging.defocus_nm, detector=imaging.detector, seed=basics["seed"],
                  total_volume_nm3=total_volume, dissolve_radius_nm=law.dissolve_radius_nm,
                  mobility_min_radius_nm=law.mobility_min_radius_nm)
    return CoarseningMovie(truth=truth, events=ev, drift=drift_df, times_s=times, shape_px=basics["shape_px"],
                           pixel_size_nm=basics["pixel_size_nm"], dose_e_per_A2=imaging.dose_e_per_A2, params=params)


def _place(radii, lo, hi, gap, rng) -> np.ndarray:
    """Random non-overlapping positions (rejection sampling; large particles first)."""
    order = np.argsort(-radii)
    pos = np.full((len(radii), 2), np.nan)
    placed: list[int] = []
    for j in order:
        for _ in range(200):
            p = rng.uniform(lo, hi)
            if placed:
                tree_pts = pos[placed]
                d = np.hypot(*(tree_pts - p).T)
                if np.any(d < radii[placed] + radii[j] + gap):
                    continue
            pos[j] = p
            placed.append(j)
            break
        else:
            raise NanosegError("cannot place that many particles without overlap",
                               hint="lower n_particles or mean_radius_nm, or enlarge shape_px")
    return pos


def _coalesce(radii, pos, ids, next_id, t, frame, events, contact_nm: float = 0.0):
    """Merge touching particles (edges closer than ``contact_nm``; volume-conserving), repeatedly until none
    touch."""
    from scipy.spatial import cKDTree

    while len(radii) > 1:
        tree = cKDTree(pos)
        pairs = tree.query_pairs(2 * radii.max() + contact_nm, output_type="ndarray")
        if len(pairs) == 0:
            break
        d = np.hypot(*(pos[pairs[:, 0]] - pos[pairs[:, 1]]).T)
        touching = pairs[d < radii[pairs[:, 0]] + radii[pairs[:, 1]] + contact_nm]
        if len(touching) == 0:
            break
        used = np.zeros(len(radii), bool)
        new_r, new_p, new_id, drop = [], [], [], []
        for a, b in touching:
            if used[a] or used[b]:
                continue
            used[a] = used[b] = True
            va, vb = radii[a] ** 3, radii[b] ** 3
            new_r.append((va + vb) ** (1 / 3))
            new_p.append((pos[a] * va + pos[b] * vb) / (va + vb))
            new_id.append(next_id)
            events.append((t, frame, "coalescence", (int(ids[a]), int(ids[b])), next_id))
            next_id += 1
            drop += [a, b]
        keep = np.ones(len(radii), bool)
        keep[drop] = False
        radii = np.concatenate([radii[keep], new_r])
        pos = np.concatenate([pos[keep], np.asarray(new_p)])
        ids = np.concatenate([ids[keep], np.asarray(new_id, dtype=ids.dtype)])
    return radii, pos, ids, next_id


# ----------------------------------------------------------------------------------------------- rendering

def _support_texture(movie: CoarseningMovie) -> np.ndarray:
    """Amorphous-support-like texture: band-limited noise (0.2–0.5 nm), larger than the field by the drift."""
    if movie._support is not None:
        return movie._support
    px = movie.pixel_size_nm
    pad = int(np.ceil((np.abs(movie.drift[["dy_nm", "dx_nm"]].to_numpy()).max() + 1.0) / px)) + 4
    h, w = movie.shape_px[0] + 2 * pad, movie.shape_px[1] + 2 * pad
    rng = np.random.default_rng(movie.params["seed"] + 7919)
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    ky = sfft.fftfreq(h)[:, None] / px
    kx = sfft.rfftfreq(w)[None, :] / px
    k = np.hypot(ky, kx)  # cycles per nm
    # amorphous phase texture from ~1 nm down to ~0.12 nm (flat band), plus slow thickness variation
    band = (1 - np.exp(-(k / 1.0) ** 2)) * np.exp(-((k / 7.0) ** 4)) + 0.3 * np.exp(-(k / 0.8) ** 2)
    tex = sfft.irfft2(sfft.rfft2(noise) * band, s=(h, w), workers=-1).astype(np.float32)
    tex *= movie.params["support_contrast"] / max(float(tex.std()), 1e-12)
    movie._support = tex
    movie._support_pad = pad  # type: ignore[attr-defined]
    return tex


def _orientation(movie: CoarseningMovie, pid: int) -> tuple[float, float]:
    if pid not in movie._orient:
        r = np.random.default_rng([movie.params["seed"], pid])
        movie._orient[pid] = (float(r.uniform(0, np.pi)), float(r.uniform(0, 2 * np.pi)))
    return movie._orient[pid]


def _render(movie: CoarseningMovie, index: int) -> np.ndarray:
    p = movie.params
    px = movie.pixel_size_nm
    h, w = movie.shape_px
    d = movie.drift.iloc[index]
    # support: integer crop + Fourier sub-pixel shift so the texture moves with the sample
    tex = _support_texture(movie)
    pad = movie._support_pad  # type: ignore[attr-defined]
    sy, sx = d.dy_nm / px, d.dx_nm / px
    iy, ix = int(np.floor(sy)), int(np.floor(sx))
    crop = tex[pad - iy - 1: pad - iy - 1 + h + 2, pad - ix - 1: pad - ix - 1 + w + 2]
    crop = ndi.shift(crop, (sy - iy, sx - ix), order=3, mode="nearest")[1:-1, 1:-1]
    intensity = 1.0 + crop
    # particles: amplitude contrast from the projected sphere thickness, lattice fringes
    transmission = np.ones((h, w), dtype=np.float32)
    draw_fringes = p["lattice_spacing_nm"] > 2.2 * px
    lam = p["absorption_length_nm"]
    for row in movie._rows(index).itertuples():
        cy, cx, r = row.y_nm / px, row.x_nm / px, row.radius_nm / px
        y0, y1 = max(int(np.floor(cy - r)) - 1, 0), min(int(np.ceil(cy + r)) + 2, h)
        x0, x1 = max(int(np.floor(cx - r)) - 1, 0), min(int(np.ceil(cx + r)) + 2, w)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        rho2 = ((yy - cy) ** 2 + (xx - cx) ** 2) * px * px
        thick = 2.0 * np.sqrt(np.maximum(row.radius_nm**2 - rho2, 0.0))  # nm
        t_local = np.exp(-thick / lam)
        if draw_fringes:
            theta, phase = _orientation(movie, int(row.particle_id))
            g = 2 * np.pi / p["lattice_spacing_nm"]
            proj = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) * px
            fringe = 0.3 * (1 - np.exp(-thick / 1.0)) * np.cos(g * proj + phase)
            t_local = t_local * (1 + fringe)
        transmission[y0:y1, x0:x1] *= t_local.astype(np.float32)
    intensity = intensity * transmission
    # CTF-like transfer of the modulation: cos χ(k) with a Gaussian envelope
    ky = sfft.fftfreq(h)[:, None] / px
    kx = sfft.rfftfreq(w)[None, :] / px
    k2 = ky**2 + kx**2
    chi = np.pi * _LAMBDA_300KV_NM * p["defocus_nm"] * k2
    transfer = np.cos(chi) * np.exp(-k2 / (2 * 8.0**2))  # envelope: ~0.12 nm information limit
    mod = intensity - 1.0
    image = 1.0 + sfft.irfft2(sfft.rfft2(mod) * transfer, s=(h, w), workers=-1)
    image = np.clip(image, 0, None)
    # dose: the camera model shared with the multislice simulator (Poisson counting, gain noise, then the
    # scintillator MTF), in units of the mean count so vacuum ≈ 1
    if movie.dose_e_per_A2 is not None:
        from nanoseg.simulate.detector import apply_detector

        rng = np.random.default_rng([p["seed"], 104729, index])
        counts_per_px = movie.dose_e_per_A2 * (px * 10) ** 2
        # the white pixel-gain noise is drawn afresh per frame: its origin in the real frames is not
        # identified (docs/simulation.md), and a pattern fixed to the camera would need its own registration
        # model (DriftTracker's low-pass only halves the bias a 5 % fixed pattern puts on the drift)
        image = apply_detector(image, dose_e_per_A2=movie.dose_e_per_A2, pixel_size_A=px * 10,
                               detector=p.get("detector", "scintillator"), rng=rng) / counts_per_px
    return image.astype(np.float32)


# ------------------------------------------------------------------------------------------ statistics, I/O

def image_statistics(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Particle contrast and Fourier roughness after per-image standardization (the statistics of SCIENCE.md).

    ``contrast = median(background) − median(particle)``; ``roughness = Σ|F(k)|²k² / Σ|F(k)|²`` (k in cycles/px).

    >>> import numpy as np
    >>> img = np.ones((32, 32)); img[8:16, 8:16] = 0.5
    >>> s = image_statistics(img, img < 1)
    >>> s["contrast"] > 0
    True
    """
    from nanoseg.simulate.stats import fourier_roughness, particle_contrast

    # the one definition of both (nanoseg.simulate.stats; the same formulas as nanoseg.datasets.imagestats)
    return {"contrast": particle_contrast(image, mask), "roughness": fourier_roughness(image)}


def write_movie(movie: CoarseningMovie | Series, path: str | os.PathLike, *, progress: bool = False) -> None:
    """Write the movie as a multi-frame float32 ImageJ TIFF with calibration and timestamps.

    The pixel size goes into the resolution tags (pixels per µm... as ImageJ ``unit='nm'``) and
    ImageJ metadata ``spacing``/``unit``/``finterval``; the per-frame times into the ImageJ ``Info``
    (``times_s=...``) so readers can recover uneven intervals. Frames are written one at a time.

    Example
    -------
    >>> import tempfile, pathlib, tifffile
    >>> m = simulate_coarsening_movie(n_frames=2, shape_px=(32, 32), pixel_size_nm=0.2, n_particles=2)
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "movie.tif"
    >>> write_movie(m, p)
    >>> tifffile.TiffFile(p).imagej_metadata["finterval"]
    1.0
    """
    import tifffile

    from nanoseg._util import atomic_path, progress_iter

    n = len(movie)
    if n == 0:
        raise NanosegError("the movie has no frames")
    times = np.asarray(movie.times_s, dtype=float)
    first = movie.frame(0) if isinstance(movie, CoarseningMovie) else movie[0]
    px = first.pixel_size_nm
    if px is None:
        raise NanosegError("the movie has no pixel size", hint="set pixel_size_nm on the frames")
    interval = float(np.median(np.diff(times))) if n > 1 else 1.0

    def frames():
        yield first.data
        for i in range(1, n):
            yield (movie.frame(i) if isinstance(movie, CoarseningMovie) else movie[i]).data

    info = "times_s=" + ",".join(f"{t:.6g}" for t in times)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp, progress_iter(frames(), "writing frames", total=n, enabled=progress),
            shape=(n, *first.data.shape), dtype=np.float32, imagej=True,
            resolution=(1.0 / px, 1.0 / px),
            metadata={"axes": "TYX", "unit": "nm", "spacing": px, "finterval": interval, "Info": info,
                      "frames": n},
        )
