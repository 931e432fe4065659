"""Physics-based HRTEM simulation (abTEM multislice + ASE structures) with exact labels.

See docs/simulation.md. Main entry points: :class:`SimulationConfig`, :func:`simulate_image`,
:func:`generate_dataset`; building blocks: :func:`make_particle`, :func:`amorphous_carbon`,
:func:`exit_wave`, :func:`image_intensity`, :func:`apply_detector`, :func:`footprint_mask`. Calling the package,
``nanoseg.simulate(config, seed)``, is :func:`simulate_image`.
"""

from nanoseg._lazy import lazy_attributes, make_callable

# the particle-resolving modalities register their spec checks with simulate.config on import
from nanoseg.simulate import bftem as bftem
from nanoseg.simulate import stem as stem
from nanoseg.simulate.config import Choice, LogUniform, SimulationConfig, Uniform, load_config
from nanoseg.simulate.detector import DETECTORS, apply_detector
from nanoseg.simulate.generate import SimulatedImage, generate_dataset, simulate_image
from nanoseg.simulate.labels import footprint_mask
from nanoseg.simulate.optics import exit_wave, image_intensity
from nanoseg.simulate.structures import MATERIALS, SHAPES, make_particle
from nanoseg.simulate.support import SUPPORTS, amorphous_carbon
from nanoseg.simulate.wide import simulate_wide_field

__all__ = [
    "DETECTORS", "MATERIALS", "SHAPES", "SUPPORTS", "Choice", "LogUniform", "SimulatedImage", "SimulationConfig",
    "Uniform", "amorphous_carbon", "apply_detector", "exit_wave", "footprint_mask", "generate_dataset",
    "image_intensity", "load_config", "make_particle", "simulate_image", "simulate_wide_field",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "DetectorModel": "nanoseg.simulate.detector", "get_detector": "nanoseg.simulate.detector",
    "mtf": "nanoseg.simulate.detector", "build_specimen": "nanoseg.simulate.generate",
    "image_seed": "nanoseg.simulate.generate", "footprint_labels": "nanoseg.simulate.labels",
    "bin_image": "nanoseg.simulate.optics", "ctf": "nanoseg.simulate.optics", "wavelength_A": "nanoseg.simulate.optics",
    "get_material": "nanoseg.simulate.structures", "place_particles": "nanoseg.simulate.structures",
    "projected_radius_A": "nanoseg.simulate.structures", "amorphous_film": "nanoseg.simulate.support",
    "make_support": "nanoseg.simulate.support", "support_phase_field": "nanoseg.simulate.wide",
}, submodules=["config", "detector", "fftplans", "generate", "labels", "movie", "optics", "stats", "structures",
               "support", "wide"])

make_callable(__name__, simulate_image)  # ns.simulate(config, seed) is simulate_image
