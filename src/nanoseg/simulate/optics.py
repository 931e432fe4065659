"""Electron optics with abTEM: multislice exit waves, the objective lens (CTF with partial coherence),
and the image intensity.

Conventions (abTEM 1.0, pinned by ``tests/test_simulate.py``):

- ``defocus`` is −C10; **positive defocus is underfocus** (``defocus_nm`` here, the same sign).
- ``focal_spread`` is the **1/e width** of the focal distribution (= √2 σ), in Å inside abTEM;
  nanoseg takes ``focal_spread_nm`` with the same 1/e meaning. The temporal envelope at scattering angle
  α is ``exp(−(π Δ α² / (2 λ))²)``.
- ``angular_spread`` (here ``convergence_mrad``) is the standard deviation of the illumination angles
  (spatial coherence envelope, quasi-coherent approximation).
- Cs (C30) is given in µm (``Cs_um``), C5 (C50) in mm, two-fold astigmatism C12 in nm.
- The objective aperture is a (slightly soft-edged) disk of semi-angle ``aperture_mrad``.

Example
-------
>>> import numpy as np
>>> wave = np.ones((64, 64), dtype=np.complex64)
>>> image = image_intensity(wave, sampling_A=0.2, energy_eV=300e3, defocus_nm=5.0)
>>> bool(np.allclose(image, 1.0, atol=1e-4))   # vacuum images as a flat 1
True
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from nanoseg.errors import NanosegError


def configure_abtem() -> None:
    """Eager computations, no progress bars (safe inside Dask workers and tests), FFTW with this machine's
    shared plans (:mod:`nanoseg.simulate.fftplans`; NumPy's FFT without pyFFTW)."""
    import abtem

    from nanoseg.simulate.fftplans import use_fftw

    abtem.config.set({"dask.lazy": False, "diagnostics.progress_bar": False,
                      "warnings.overspecified-grid": False})
    use_fftw()


def wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength in Å.

    >>> round(wavelength_A(300e3), 5)
    0.01969
    """
    from abtem.core.energy import energy2wavelength

    return float(energy2wavelength(energy_eV))


def exit_wave(atoms: Atoms, *, extent_A: tuple[float, float], gpts: tuple[int, int], energy_eV: float,
              slice_thickness_A: float = 2.0, frozen_phonons: int = 0, phonon_sigma_A: float = 0.08,
              seed: int = 0, parametrization: str = "lobato") -> np.ndarray:
    """Multislice exit wave(s) of a plane wave through ``atoms`` (abTEM, infinite projection).

    Parameters
    ----------
    atoms : the specimen; x/y positions in Å inside ``extent_A``, the beam travels along +z.
    extent_A : lateral size of the (periodic) simulation cell in Å.
    gpts : grid points (ny, nx) of the wave function.
    energy_eV : beam energy (e.g. 300e3).
    slice_thickness_A : multislice slice thickness in Å.
    frozen_phonons : number of frozen-phonon configurations (0 = static lattice).
    phonon_sigma_A : rms thermal displacement per axis (Å) for frozen phonons.

    Returns
    -------
    complex64 array of shape ``gpts`` (static) or ``(frozen_phonons, *gpts)``; vacuum has amplitude 1.
    """
    import abtem

    configure_abtem()
    if slice_thickness_A <= 0:
        raise NanosegError(f"slice_thickness_A must be > 0, got {slice_thickness_A}")
    specimen = atoms.copy()
    zmax = float(specimen.positions[:, 2].max()) + 2.0 if len(specimen) else 1.0
    if len(specimen):
        specimen.positions[:, 2] -= min(0.0, float(specimen.positions[:, 2].min()) - 1.0)
        zmax = float(specimen.positions[:, 2].max()) + 2.0
    specimen.cell = [extent_A[0], extent_A[1], zmax]
    specimen.pbc = True
    # abTEM's grid is (x, y); NumPy images here are (rows=y, cols=x): transpose at the end
    if frozen_phonons > 0:
        specimen = abtem.FrozenPhonons(specimen, num_configs=int(frozen_phonons), sigmas=phonon_sigma_A,
                                       seed=int(seed) % (2**31))
    potential = abtem.Potential(specimen, gpts=(int(gpts[1]), int(gpts[0])), slice_thickness=slice_thickness_A,
                                projection="infinite", parametrization=parametrization)
    waves = abtem.PlaneWave(energy=energy_eV).multislice(potential, lazy=False)
    array = np.asarray(waves.array, dtype=np.complex64)
    return np.swapaxes(array, -1, -2)


def ctf(*, energy_eV: float, defocus_nm: float = 0.0, Cs_um: float = 0.0, C5_mm: float = 0.0,
        astigmatism_nm: float = 0.0, astigmatism_angle_rad: float = 0.0, focal_spread_nm: float = 0.0,
        convergence_mrad: float = 0.0, aperture_mrad: float = float("inf")):
    """The abTEM :class:`abtem.CTF` for these optics (lengths converted to Å).

    >>> c = ctf(energy_eV=300e3, defocus_nm=10.0, Cs_um=-15.0)
    >>> round(c.defocus, 3), round(c.C10, 3)      # abTEM: defocus = −C10
    (100.0, -100.0)
    """
    import abtem

    if aperture_mrad is not None and aperture_mrad <= 0:
        raise NanosegError(f"aperture_mrad must be > 0, got {aperture_mrad}")
    if focal_spread_nm < 0 or convergence_mrad < 0:
        raise NanosegError("focal_spread_nm and convergence_mrad must be ≥ 0")
    return abtem.CTF(
        energy=energy_eV,
        semiangle_cutoff=float("inf") if aperture_mrad is None else float(aperture_mrad),
        focal_spread=focal_spread_nm * 10.0,
        angular_spread=convergence_mrad,
        defocus=defocus_nm * 10.0,
        Cs=Cs_um * 1e4,
        C50=C5_mm * 1e7,
        C12=astigmatism_nm * 10.0,
        phi12=astigmatism_angle_rad,
    )


def _upsample_wave(array: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited (Fourier zero-padding) interpolation of periodic waves onto a ``factor``× finer grid."""
    rows, cols = array.shape[-2:]
    spectrum = np.fft.fftshift(np.fft.fft2(array), axes=(-2, -1))
    padded = np.zeros(array.shape[:-2] + (rows * factor, cols * factor), dtype=np.complex64)
    r0, c0 = (rows * factor - rows) // 2, (cols * factor - cols) // 2
    padded[..., r0: r0 + rows, c0: c0 + cols] = spectrum
    return np.fft.ifft2(np.fft.ifftshift(padded, axes=(-2, -1))) * factor ** 2


def image_intensity(wave: np.ndarray, *, sampling_A: float, energy_eV: float, upsample: int = 1,
                    **optics) -> np.ndarray:
    """Image intensity of exit wave(s) after the objective lens (quasi-coherent CTF with envelopes).

    ``wave`` is a complex (rows, cols) array or a stack (configs, rows, cols) of frozen-phonon exit waves
    whose intensities are averaged (incoherently). ``optics`` are the keyword arguments of :func:`ctf`.
    ``upsample`` > 1 interpolates the lens-filtered wave onto a finer grid before taking |ψ|², so that
    the intensity (band limit: twice the wave's) is not aliased on a coarse grid; the result then has
    ``upsample`` × more pixels per side. Returns float32 intensity, 1 in vacuum.
    """
    import abtem

    configure_abtem()
    array = np.asarray(wave)
    if array.ndim not in (2, 3):
        raise NanosegError(f"exit wave must be 2-D or a 3-D stack, got shape {array.shape}")
    transfer = ctf(energy_eV=energy_eV, **optics)
    images = []
    for single in array.reshape((-1, *array.shape[-2:])):  # frozen-phonon configurations: incoherent sum
        waves = abtem.Waves(np.swapaxes(single, -1, -2).astype(np.complex64), energy=energy_eV,
                            sampling=sampling_A)
        filtered = waves.apply_ctf(transfer)
        if upsample > 1:
            lensed = _upsample_wave(np.asarray(filtered.array, dtype=np.complex64), int(upsample))
            images.append((lensed.real ** 2 + lensed.imag ** 2).astype(np.float32))
        else:
            images.append(np.asarray(filtered.intensity().array, dtype=np.float32))
    image = images[0] if len(images) == 1 else np.mean(images, axis=0, dtype=np.float32)
    return np.swapaxes(image, -1, -2)


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor × factor`` blocks (the camera pixel integrates the finer simulation grid).

    >>> bin_image(np.arange(16.0).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    if factor == 1:
        return image
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    return image[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor).mean(axis=(1, 3))
