"""Physics-based HRTEM simulation (abTEM multislice + ASE structures) with exact labels.

See docs/simulation.md. Main entry points: :class:`SimulationConfig`, :func:`simulate_image`,
:func:`generate_dataset`; building blocks: :func:`make_particle`, :func:`amorphous_carbon`,
:func:`exit_wave`, :func:`image_intensity`, :func:`apply_detector`, :func:`footprint_mask`.
"""

from nanoseg.simulate.config import Choice, LogUniform, SimulationConfig, Uniform, load_config
from nanoseg.simulate.detector import DETECTORS, DetectorModel, apply_detector, get_detector, mtf
from nanoseg.simulate.generate import (
    SimulatedImage,
    build_specimen,
    generate_dataset,
    image_seed,
    simulate_image,
)
from nanoseg.simulate.labels import footprint_mask, instance_labels
from nanoseg.simulate.optics import bin_image, ctf, exit_wave, image_intensity, wavelength_A
from nanoseg.simulate.structures import (
    MATERIALS,
    SHAPES,
    get_material,
    make_particle,
    place_particles,
    projected_radius_A,
)
from nanoseg.simulate.support import SUPPORTS, amorphous_carbon, amorphous_film, make_support
from nanoseg.simulate.wide import simulate_wide_field, support_phase_field

__all__ = [
    "DETECTORS", "MATERIALS", "SHAPES", "SUPPORTS", "Choice", "DetectorModel", "LogUniform", "SimulatedImage",
    "SimulationConfig", "Uniform", "amorphous_carbon", "amorphous_film", "apply_detector", "bin_image",
    "build_specimen", "ctf", "exit_wave", "footprint_mask", "generate_dataset", "get_detector", "get_material",
    "image_intensity", "image_seed", "instance_labels", "load_config", "make_particle", "make_support", "mtf",
    "place_particles", "projected_radius_A", "simulate_image", "simulate_wide_field", "support_phase_field",
    "wavelength_A",
]
