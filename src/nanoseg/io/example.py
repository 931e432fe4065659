"""The tiny example micrograph shipped with nanoseg (made by ``scripts/make_example_micrograph.py``).

Example
-------
>>> m = example_micrograph()
>>> m.shape, m.pixel_size_nm, m.dose_e_per_A2
((256, 256), 0.02, 400.0)
>>> int(example_mask().max())
1
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from nanoseg.io.masks import read_mask
from nanoseg.io.micrograph import Micrograph


def _data_file(name: str):
    return resources.files("nanoseg").joinpath("data", name)


def example_micrograph() -> Micrograph:
    """A 256×256 synthetic HRTEM-like image of three Au particles (2.0, 1.6, 1.0 nm) on an
    amorphous background: 0.02 nm/px, 400 e/Å², 300 kV, values in electrons per pixel."""
    from nanoseg.io.readers import read

    with resources.as_file(_data_file("example_micrograph.tif")) as path:
        micrograph = read(path)
    micrograph.source = "nanoseg example micrograph (synthetic)"
    return micrograph


def example_mask() -> np.ndarray:
    """The true particle mask of :func:`example_micrograph` (uint8, 1 = particle)."""
    with resources.as_file(_data_file("example_mask.png")) as path:
        return read_mask(path, shape=(256, 256))
