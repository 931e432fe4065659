"""The stages of one simulated image that every imaging path shares: the specimen, the camera, the metadata.

:func:`build_specimen` places the particles on their support film; :func:`camera_stage` turns a noise-free image
intensity into a labelled :class:`SimulatedImage` (detector, exact labels, metadata). The full multislice path
(:func:`nanoseg.simulate.generate.simulate_image`), the wide-field composite (:mod:`nanoseg.simulate.wide`) and
the other modalities build on them, so none of those modules has to import another (no cycles).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from nanoseg.errors import NanosegError
from nanoseg.io.micrograph import Micrograph
from nanoseg.simulate.config import SimulationConfig
from nanoseg.simulate.detector import apply_detector, get_detector
from nanoseg.simulate.labels import footprint_labels
from nanoseg.simulate.structures import make_particle, place_particles, projected_radius_A
from nanoseg.simulate.support import make_support


@dataclass
class SimulatedImage:
    """One simulated image: the recorded micrograph (electrons per pixel), its labels and metadata."""

    micrograph: Micrograph
    mask: np.ndarray  # uint8 0/1
    instances: np.ndarray  # int32, 0 = background, 1..n
    meta: dict[str, Any]


def build_specimen(params: dict[str, Any], extent_A: tuple[float, float], rng: np.random.Generator, *,
                   support_density_g_cm3: float | None = None,
                   support_min_distance_A: float | None = None) -> tuple[Atoms, list[Atoms]]:
    """Particles placed on a support film: returns (support atoms, list of particle atoms), all in Å."""
    n = int(params["n_particles"])
    diameters = params["diameter_nm"] * np.clip(1 + params["diameter_spread"] * rng.standard_normal(n), 0.3, 3)
    diameters = np.maximum(diameters, 0.6)
    # a drawn particle too large for the drawn field is shrunk to fit (recorded as diameter_capped)
    elong = float(params["aspect_ratio"]) ** (2 / 3) if params["shape"] == "ellipsoid" else 1.0
    cap_nm = 0.6 * min(extent_A) / 10.0 / elong
    params["diameter_capped"] = bool((diameters > cap_nm).any())
    diameters = np.minimum(diameters, cap_nm)
    particles = []
    for d in diameters:
        on_zone = bool(rng.random() < params["zone_axis_fraction"])
        particles.append(make_particle(params["material"], params["shape"], float(d), rng,
                                       aspect_ratio=float(params["aspect_ratio"]), on_zone=on_zone))
    touching = n >= 2 and bool(rng.random() < params["touching_pair_fraction"])
    while True:  # drop particles that do not fit (recorded: n_particles < the drawn value)
        try:
            centres = place_particles([projected_radius_A(p) + 1.0 for p in particles], extent_A, rng,
                                      touching_pair=touching and len(particles) >= 2)
            break
        except NanosegError:
            if len(particles) == 1:
                raise
            particles.pop()
    thickness_A = 10.0 * float(params["support_thickness_nm"])
    support = make_support(params["support"], extent_A, thickness_A, rng=rng,
                           density_g_cm3=support_density_g_cm3, min_distance_A=support_min_distance_A)
    top = thickness_A if params["support"] != "none" else 0.0
    for particle, centre in zip(particles, centres, strict=True):
        pos = particle.positions
        pos[:, :2] += centre
        pos[:, 2] += top + 1.5 - pos[:, 2].min()  # resting on the film, ~1.5 Å above its top atoms
        particle.positions = pos
    for particle in particles:
        particle.info["touching"] = touching
    return support, particles


def image_metadata(params: dict, config: SimulationConfig, particles: list[Atoms], seed: int,
                   detector_name: str, extra: dict) -> dict[str, Any]:
    """The metadata row of one simulated image (the dataset's ``meta.parquet`` columns, docs/simulation.md)."""
    diam = [round(float(p.info["diameter_nm"]), 4) for p in particles]
    on_zone = [bool(p.info["on_zone"]) for p in particles]
    meta = {
        "source": "simulated",
        "session": config.name,
        "material": params["material"],
        "shape": particles[0].info["shape"] if len({p.info["shape"] for p in particles}) == 1 else "mixed",
        "shapes": json.dumps([p.info["shape"] for p in particles]),
        "diameter_nm": float(np.mean(diam)),
        "diameters_nm": json.dumps(diam),
        "n_particles": len(particles),
        "n_particles_drawn": int(params["n_particles"]),
        "diameter_capped": bool(params.get("diameter_capped", False)),
        "n_atoms": int(sum(len(p) for p in particles)),
        "pixel_size_nm": float(params["pixel_size_nm"]),
        "image_size_px": int(params["image_size_px"]),
        "dose_e_per_A2": float(params["dose_e_per_A2"]),
        "voltage_kV": float(params["voltage_kV"]),
        "defocus_nm": float(params["defocus_nm"]),
        "Cs_um": float(params["Cs_um"]),
        "C5_mm": float(params["C5_mm"]),
        "astigmatism_nm": float(params["astigmatism_nm"]),
        "focal_spread_nm": float(params["focal_spread_nm"]),
        "convergence_mrad": float(params["convergence_mrad"]),
        "aperture_mrad": float(params["aperture_mrad"]),
        "detector": detector_name,
        "support": params["support"],
        "support_thickness_nm": float(params["support_thickness_nm"]) if params["support"] != "none" else 0.0,
        "zone_axis_fraction": float(params["zone_axis_fraction"]),
        "on_zone": json.dumps(on_zone),
        "n_on_zone": int(sum(on_zone)),
        "zone_axes": json.dumps([p.info["zone_axis"] for p in particles]),
        "touching_pair": bool(particles[0].info.get("touching", False)),
        "aspect_ratio": float(params["aspect_ratio"]),
        "illumination_gradient": float(params["illumination_gradient"]),
        "xray_spikes_per_Mpx": float(params["xray_spikes_per_Mpx"]),
        "frozen_phonons": int(config.frozen_phonons),
        "mode": config.mode,
        "seed": int(seed),
    }
    meta.update(extra)
    return meta


def detector_for(params: dict):
    """The camera model the drawn parameters describe (:func:`nanoseg.simulate.detector.get_detector`)."""
    return get_detector(params["detector"], **{k: params[k] for k in (
        "mtf_core_sigma_px", "mtf_tail_fraction", "mtf_tail_sigma_px", "gain_noise_cv", "read_noise_e",
        "gain_nonuniformity") if k in params})


def camera_stage(intensity: np.ndarray, *, params: dict, config: SimulationConfig, particles, seed: int,
                 rng: np.random.Generator, n_px: int, pixel_A: float, extra_meta: dict,
                 oversampling: int = 1) -> SimulatedImage:
    """From the noise-free image intensity to a labelled :class:`SimulatedImage`.

    Shared by the full multislice path and the wide-field composite (:mod:`nanoseg.simulate.wide`): the
    detector (dose, MTF, noise, x-rays, illumination), the exact labels on the camera pixel grid, and the
    metadata. ``intensity`` lies on the camera grid, or ``oversampling`` × finer (the detector integrates it).
    """
    from nanoseg.simulate.fftplans import save_wisdom

    save_wisdom()  # new FFT plans of this image go to the machine's wisdom, for every later process
    detector = detector_for(params)
    image = apply_detector(intensity, dose_e_per_A2=params["dose_e_per_A2"], pixel_size_A=pixel_A,
                           detector=detector, rng=rng, illumination_gradient=params["illumination_gradient"],
                           xray_spikes_per_Mpx=params["xray_spikes_per_Mpx"], oversampling=oversampling)
    instances = footprint_labels(particles, shape=(n_px, n_px), pixel_size_A=pixel_A, origin_A=pixel_A / 2)
    mask = (instances > 0).astype(np.uint8)
    camera = {f"camera_{k}": float(v) for k, v in detector.as_dict().items() if k != "name"}
    meta = image_metadata(params, config, particles, seed, detector.name,
                     {**extra_meta, **camera, "mask_fraction": float(mask.mean())})
    micrograph = Micrograph(image, pixel_size_nm=params["pixel_size_nm"], dose_e_per_A2=params["dose_e_per_A2"],
                            metadata=meta, source="simulated")
    return SimulatedImage(micrograph, mask, instances, meta)
