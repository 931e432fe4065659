"""What does a segmentation network look at? Feature-importance tools for HRTEM segmentation networks.

The question of Horwath et al. (2020): does a network segment nanoparticles by their **amplitude contrast**
(darker than the support over many pixels) or by their **lattice fringes** (high spatial frequencies), and
does it learn particle features at all or the noise of the support?

* :mod:`~nanoseg.explain.frequency` — exact Fourier band filters, power spectra, lattice-spacing peaks, Bragg
  filtering.
* :func:`frequency_ablation` — Dice per removed frequency band vs the unablated input.
* :func:`raw_output_maps` / :func:`raw_output_stats` — the two pre-softmax channels and the softmax.
* :func:`occlusion_map`, :func:`gradient_saliency` — which pixels the decision depends on.
* :func:`particle_line_profiles` — raw intensity vs probability across particles.
* :func:`receptive_field_study` — Dice vs receptive field at fixed parameters and vs parameters at fixed
  receptive field (Sytwu et al. 2022).
* :func:`explain_report` — all of it for one model and a set of images, as an HTML report
  (``nanoseg explain``).

Functions take a ``torch.nn.Module`` or a loaded checkpoint (``nanoseg.models.load_model``) and
**network-input** arrays (preprocessed); :func:`prepare_input` makes them from a raw micrograph.

Example
-------
>>> import numpy as np, torch
>>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
>>> image = np.random.default_rng(0).normal(size=(32, 32)).astype("float32")
>>> raw_output_maps(net, image).probability.shape
(32, 32)
"""

from nanoseg._lazy import lazy_attributes
from nanoseg.explain._network import prepare_input
from nanoseg.explain.ablation import Band, default_bands, frequency_ablation
from nanoseg.explain.frequency import bragg_filter, find_lattice_peaks, power_spectrum
from nanoseg.explain.maps import (
    RawOutput,
    gradient_saliency,
    occlusion_map,
    particle_line_profiles,
    raw_output_maps,
    raw_output_stats,
)

__all__ = [
    "Band", "RawOutput", "bragg_filter", "default_bands", "find_lattice_peaks", "frequency_ablation",
    "gradient_saliency", "occlusion_map", "particle_line_profiles", "power_spectrum", "prepare_input",
    "raw_output_maps", "raw_output_stats",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "network_logits": "nanoseg.explain._network", "particle_probability": "nanoseg.explain._network",
    "forward_logits": "nanoseg.explain._network",
    "ablate": "nanoseg.explain.ablation", "bandstop": "nanoseg.explain.frequency",
    "highpass": "nanoseg.explain.frequency", "lowpass": "nanoseg.explain.frequency",
    "radial_profile": "nanoseg.explain.frequency", "choose_particle_lines": "nanoseg.explain.maps",
}, submodules=["_network", "ablation", "figures", "frequency", "maps", "receptive", "report"])
