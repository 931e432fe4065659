"""Microscope files in, calibrated :class:`Micrograph` / :class:`Series` out (and writers back).

Readers: :func:`read`, :func:`read_series`, :func:`describe`; masks: :func:`read_mask`,
:func:`read_circles`, :func:`masks_from_circles`; writers: :func:`write_tiff`, :func:`write_npy`,
:func:`write_png_preview`; the shipped example: :func:`example_micrograph`, :func:`example_mask`.
"""

from nanoseg.io.example import example_mask, example_micrograph
from nanoseg.io.masks import masks_from_circles, read_circles, read_mask
from nanoseg.io.micrograph import Micrograph, Series
from nanoseg.io.readers import FORMATS, describe, insitu_times, natural_key, read, read_series
from nanoseg.io.units import length_to_nm
from nanoseg.io.writers import to_uint8, write_npy, write_png_preview, write_tiff

__all__ = [
    "FORMATS", "Micrograph", "Series", "describe", "example_mask", "example_micrograph", "insitu_times",
    "length_to_nm", "masks_from_circles", "natural_key", "read", "read_circles", "read_mask", "read_series",
    "to_uint8", "write_npy", "write_png_preview", "write_tiff",
]
