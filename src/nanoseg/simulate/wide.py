"""Fast wide fields of many particles (in situ-like frames): multislice per particle, composited.

A full multislice of a 184 nm × 184 nm field (1024² camera pixels at 0.18 nm/px) with a 3 nm carbon film
needs ~10⁷ support atoms and a ~9000² wave grid — hours per frame. :func:`simulate_wide_field` instead:

1. **Particles**: each particle (with no support) is simulated by abTEM multislice on its own small periodic
   patch (particle + ``patch_margin_A`` on each side) at the fine sampling ``sampling_A``; the patch exit
   wave ``t_p`` (1 in vacuum) is band-limited onto the wide grid by Fourier cropping.
2. **Support**: amorphous films are weak phase objects whose projected potential is, over a wide field,
   a stationary (near-Gaussian) random field. Its power spectrum is measured once (per support kind and
   wide-grid sampling) from a random-sequential-addition film of 2 nm built with the same density and
   minimum distance, projected with abTEM, and scaled linearly to the drawn thickness; the wide-field
   support phase ``σ V(r)`` is a Gaussian random field with that spectrum.
3. **Exit wave** ``ψ = exp(i σ V(r)) · Π_p t_p(r)`` (particles sit on the film: projection approximation
   between the two layers), then the same objective-lens CTF, camera binning and detector model as the
   full multislice path (|ψ|² taken on a 2× finer grid so the intensity is not aliased on the coarse
   grid), and labels from the particles' own projected atoms.

The wide grid has sampling ``wide_sampling_A`` (default ≤ 0.5 Å, so the wave keeps scattering up to
1 Å⁻¹, i.e. a 20 mrad aperture at 300 kV) and an integer number of grid points per camera pixel.

Example
-------
>>> cfg = SimulationConfig(mode="composite", image_size_px=64, pixel_size_nm=0.18, diameter_nm=2.0,
...                        n_particles=3, support_thickness_nm=2.0)
>>> sim = simulate_wide_field(cfg, seed=0)
>>> sim.micrograph.shape, int(sim.instances.max())
((64, 64), 3)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from ase import Atoms
from scipy.fft import next_fast_len

from nanoseg.simulate.config import SimulationConfig, load_config
from nanoseg.simulate.optics import bin_image, configure_abtem, exit_wave, image_intensity
from nanoseg.simulate.support import SUPPORTS, make_support

REFERENCE_THICKNESS_A = 20.0
REFERENCE_EXTENT_A = 96.0


@lru_cache(maxsize=16)
def support_phase_spectrum(kind: str, sampling_A: float, density_g_cm3: float | None = None,
                           min_distance_A: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of the projected potential of a 2 nm film of ``kind``.

    Returns ``(q, S)`` with q in 1/Å and S the spectral density per unit area (periodogram |FFT|²/N times
    the sample area, (eV·Å)²·Å²), so that it can be resampled to any grid. The film is projected on a fine
    0.2 Å grid (as in the full multislice), not on the coarse wide grid, to avoid aliasing the atoms' sharp
    potentials. Deterministic (the reference film uses a fixed seed).
    """
    import abtem

    configure_abtem()
    sampling_A = min(float(sampling_A), 0.2)
    n = int(round(REFERENCE_EXTENT_A / sampling_A))
    extent = n * sampling_A
    film = make_support(kind, (extent, extent), REFERENCE_THICKNESS_A, rng=np.random.default_rng(20240601),
                        density_g_cm3=density_g_cm3, min_distance_A=min_distance_A)
    film.cell = [extent, extent, REFERENCE_THICKNESS_A + 2.0]
    film.positions[:, 2] += 1.0
    film.pbc = True
    potential = abtem.Potential(film, gpts=(n, n), slice_thickness=REFERENCE_THICKNESS_A + 2.0,
                                projection="infinite")
    projected = np.asarray(potential.build(lazy=False).array).sum(axis=0)
    power = np.abs(np.fft.fft2(projected - projected.mean())) ** 2 / projected.size
    q = np.sqrt(np.fft.fftfreq(n, sampling_A)[:, None] ** 2 + np.fft.fftfreq(n, sampling_A)[None, :] ** 2)
    edges = np.linspace(0, q.max() + 1e-9, n // 2 + 1)
    index = np.digitize(q.ravel(), edges) - 1
    sums = np.bincount(index, weights=power.ravel(), minlength=len(edges) - 1)
    counts = np.bincount(index, minlength=len(edges) - 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    keep = counts > 0
    return centres[keep], sums[keep] / counts[keep] * sampling_A ** 2


def _hermitian_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Fourier transform of real white noise with unit variance per sample (E|W|² = N), drawn directly."""
    g = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    flipped = np.roll(g[::-1, ::-1], 1, axis=(0, 1))  # G(−q)
    return (g + np.conj(flipped)) / np.sqrt(2) * np.sqrt(shape[0] * shape[1])


def fresnel_propagator(shape: tuple[int, int], sampling_A: float, energy_eV: float, distance_A: float) -> np.ndarray:
    """abTEM's Fresnel propagator exp(−iπλk²Δz) on the FFT grid of ``shape`` (free space, +z downstream)."""
    from nanoseg.simulate.optics import wavelength_A

    k2 = np.fft.fftfreq(shape[0], sampling_A)[:, None] ** 2 + np.fft.fftfreq(shape[1], sampling_A)[None, :] ** 2
    return np.exp(-1j * np.pi * wavelength_A(energy_eV) * distance_A * k2)


def support_phase_field(kind: str, thickness_A: float, *, shape: tuple[int, int], sampling_A: float,
                        energy_eV: float, rng: np.random.Generator, density_g_cm3: float | None = None,
                        min_distance_A: float | None = None, exit_distance_A: float | None = None,
                        layer_A: float = 5.0) -> np.ndarray:
    """Phase σ·V(r) (radians) of a support film over a wide field, as a Gaussian random field.

    With ``exit_distance_A`` (distance from the film's top to the exit plane) the film is built as
    independent layers of ``layer_A`` whose weak-phase perturbations are Fresnel-propagated to the exit plane
    (abTEM's propagator), so that the film's thickness blurs its transfer as in multislice; the returned
    phase is then complex (its imaginary part is the amplitude modulation) and ``exp(i·phase)`` is the
    film's exit wave. Without it, the projected phase (real) is returned.
    """
    from abtem.core.energy import energy2sigma

    if kind == "none" or thickness_A <= 0:
        return np.zeros(shape)
    q_ref, s_ref = support_phase_spectrum(kind, float(sampling_A), density_g_cm3, min_distance_A)
    q = np.sqrt(np.fft.fftfreq(shape[0], sampling_A)[:, None] ** 2 + np.fft.fftfreq(shape[1], sampling_A)[None, :] ** 2)
    density = np.interp(q, q_ref, s_ref) / sampling_A ** 2 / REFERENCE_THICKNESS_A  # per Å of film
    density[0, 0] = 0.0
    sigma = energy2sigma(energy_eV)
    if exit_distance_A is None:
        potential = np.fft.ifft2(_hermitian_noise(shape, rng) * np.sqrt(density * thickness_A)).real
        return sigma * potential
    n_layers = max(1, int(math.ceil(thickness_A / layer_A)))
    dz = thickness_A / n_layers
    total = np.zeros(shape, dtype=np.complex128)
    for layer in range(n_layers):
        to_exit = exit_distance_A + thickness_A - (layer + 0.5) * dz
        total += _hermitian_noise(shape, rng) * np.sqrt(density * dz) * fresnel_propagator(
            shape, sampling_A, energy_eV, to_exit)
    return sigma * np.fft.ifft2(total)


def _fourier_crop(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Band-limit a periodic complex array to a coarser grid of ``shape`` (same extent)."""
    spectrum = np.fft.fftshift(np.fft.fft2(array))
    cy, cx = array.shape[0] // 2, array.shape[1] // 2
    hy, hx = shape[0] // 2, shape[1] // 2
    cropped = spectrum[cy - hy: cy - hy + shape[0], cx - hx: cx - hx + shape[1]]
    return np.fft.ifft2(np.fft.ifftshift(cropped)) * (shape[0] * shape[1]) / array.size


def particle_transmission(particle: Atoms, origin_A: tuple[float, float], *, size_px: int, wide_sampling_A: float,
                          fine_factor: int, energy_eV: float, slice_thickness_A: float,
                          frozen_phonons: int = 0, seed: int = 0, exit_plane_A: float | None = None,
                          upsample: int = 2) -> np.ndarray:
    """Exit wave of one particle on a ``size_px``² patch of the wide grid starting at ``origin_A`` (x, y).

    The patch's own exit plane is 2 Å above the particle's top atom; with ``exit_plane_A`` (absolute z) the
    wave is propagated on to that common exit plane.
    """
    local = particle.copy()
    # wide-grid sample i stands for (i + ½/upsample)·s, so that the camera pixels binned from the
    # upsampled intensity cover exactly [jP, (j+1)P) (as in simulate_image)
    local.positions[:, 0] -= origin_A[0] + wide_sampling_A / (2 * upsample)
    local.positions[:, 1] -= origin_A[1] + wide_sampling_A / (2 * upsample)
    z_min, z_top = float(local.positions[:, 2].min()), float(local.positions[:, 2].max())
    local.positions[:, 2] += 1.0 - z_min  # no empty slices before the particle
    extent = size_px * wide_sampling_A
    fine = size_px * fine_factor
    wave = exit_wave(local, extent_A=(extent, extent), gpts=(fine, fine), energy_eV=energy_eV,
                     slice_thickness_A=slice_thickness_A, frozen_phonons=frozen_phonons, seed=seed)
    if wave.ndim == 3:  # frozen phonons: coherent mean (the incoherent part is small at these sizes)
        wave = wave.mean(axis=0)
    patch = 1.0 + _fourier_crop(wave - 1.0, (size_px, size_px))
    if exit_plane_A is not None and exit_plane_A > z_top + 2.0 + 1e-6:
        propagator = fresnel_propagator(patch.shape, wide_sampling_A, energy_eV, exit_plane_A - (z_top + 2.0))
        patch = np.fft.ifft2(np.fft.fft2(patch) * propagator)
    return patch


def simulate_wide_field(config: SimulationConfig | dict | str, seed: int, *, wide_sampling_A: float = 0.5,
                        patch_margin_A: float = 12.0):
    """Simulate a wide field of many particles by compositing per-particle multislice (see module doc).

    Same inputs and outputs as :func:`nanoseg.simulate.simulate_image` (which calls this when the spec
    has ``mode: composite``).
    """
    from nanoseg.simulate.stages import build_specimen, camera_stage

    config = load_config(config)
    rng = np.random.default_rng(int(seed))
    params = config.draw(rng)
    pixel_A = 10.0 * params["pixel_size_nm"]
    n_px = int(params["image_size_px"])
    k = max(1, int(math.ceil(pixel_A / wide_sampling_A - 1e-9)))
    s_w = pixel_A / k
    grid = (n_px * k, n_px * k)
    extent = (n_px * pixel_A, n_px * pixel_A)
    energy = 1e3 * params["voltage_kV"]
    # particles only (the support film is replaced by its statistical phase field)
    structure = dict(params, support="none")
    _, particles = build_specimen(structure, extent, rng)
    thickness_A = 10.0 * float(params["support_thickness_nm"]) if params["support"] != "none" else 0.0
    # common exit plane: 2 Å above the highest particle atom (as exit_wave does for the full specimen). Here
    # the film's top is z = 0 (the particles rest on it, built without a support) and the film lies below,
    # so the film's top is ``exit_plane`` below the exit plane, as in the full specimen
    exit_plane = max(float(p.positions[:, 2].max()) for p in particles) + 2.0
    phase = support_phase_field(params["support"], thickness_A, shape=grid, sampling_A=s_w, energy_eV=energy,
                                rng=rng, density_g_cm3=config.support_density_g_cm3,
                                min_distance_A=config.support_min_distance_A,
                                exit_distance_A=exit_plane)
    wave = np.exp(1j * phase).astype(np.complex64)
    # per-particle multislice at ≤ sampling_A, the rule of the full path (coarser grids lose less to abTEM's
    # anti-aliasing aperture and make particles too bright: docs/simulation.md)
    fine_factor = max(1, int(math.ceil(s_w / config.sampling_A - 1e-9)))
    for particle in particles:
        xy = particle.positions[:, :2]
        lo = np.floor((xy.min(axis=0) - patch_margin_A) / s_w).astype(int)
        hi = np.ceil((xy.max(axis=0) + patch_margin_A) / s_w).astype(int)
        size = int(max(hi - lo))
        size += size % 2
        while next_fast_len(size * fine_factor) != size * fine_factor:  # FFT-friendly patch grids
            size += 2
        t = particle_transmission(particle, (lo[0] * s_w, lo[1] * s_w), size_px=size, wide_sampling_A=s_w,
                                  fine_factor=fine_factor, energy_eV=energy,
                                  slice_thickness_A=config.slice_thickness_A,
                                  frozen_phonons=config.frozen_phonons, seed=int(rng.integers(2**31)),
                                  exit_plane_A=exit_plane)
        rows = (lo[1] + np.arange(size)) % grid[0]
        cols = (lo[0] + np.arange(size)) % grid[1]
        wave[np.ix_(rows, cols)] *= t.astype(np.complex64)
    # the intensity's band limit is twice the wave's: take |ψ|² on a 2× finer grid so that it is not
    # aliased on the coarse wide grid before the camera pixel integrates it
    intensity = image_intensity(
        wave, sampling_A=s_w, energy_eV=energy, upsample=2, defocus_nm=params["defocus_nm"], Cs_um=params["Cs_um"],
        C5_mm=params["C5_mm"], astigmatism_nm=params["astigmatism_nm"],
        astigmatism_angle_rad=float(rng.uniform(0, np.pi)), focal_spread_nm=params["focal_spread_nm"],
        convergence_mrad=params["convergence_mrad"], aperture_mrad=params["aperture_mrad"])
    intensity = np.clip(bin_image(intensity, 2 * k), 0, None)
    return camera_stage(intensity, params=params, config=config, particles=particles, seed=seed, rng=rng,
                        n_px=n_px, pixel_A=pixel_A,
                        extra_meta={"sampling_A": s_w, "particle_sampling_A": s_w / fine_factor,
                                    "slice_thickness_A": config.slice_thickness_A})


__all__ = ["SUPPORTS", "simulate_wide_field", "support_phase_field", "support_phase_spectrum"]
