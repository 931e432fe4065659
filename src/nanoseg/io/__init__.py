"""Microscope files in, calibrated :class:`Micrograph` / :class:`Series` out (and writers back)."""

from nanoseg.io.micrograph import Micrograph, Series

__all__ = ["Micrograph", "Series"]
