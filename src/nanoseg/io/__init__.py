"""Microscope files in, calibrated :class:`Micrograph` / :class:`Series` out (and writers back).

Readers: :func:`read`, :func:`read_series`, :func:`describe`; masks: :func:`read_mask`,
:func:`read_circles`, :func:`masks_from_circles`; writers: :func:`write_tiff`, :func:`write_npy`,
:func:`write_png_preview`; the shipped example: :func:`example_micrograph`, :func:`example_mask`.
"""

from nanoseg._lazy import lazy_attributes
from nanoseg.io.example import example_mask, example_micrograph
from nanoseg.io.masks import masks_from_circles, read_circles, read_mask
from nanoseg.io.micrograph import Micrograph, Series
from nanoseg.io.readers import FORMATS, describe, read, read_series
from nanoseg.io.writers import write_npy, write_png_preview, write_tiff

__all__ = [
    "FORMATS", "Micrograph", "Series", "describe", "example_mask", "example_micrograph", "masks_from_circles",
    "read", "read_circles", "read_mask", "read_series", "write_npy", "write_png_preview", "write_tiff",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "insitu_times": "nanoseg.io.readers", "natural_key": "nanoseg.io.readers",
    "length_to_nm": "nanoseg.io.units", "to_uint8": "nanoseg.io.writers",
}, submodules=["example", "masks", "micrograph", "readers", "units", "writers"])
