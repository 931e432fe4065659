"""Length units found in microscope files, converted to nm.

Calibrations come as (scale, unit) pairs; nanoseg speaks nm. Reciprocal units (``1/nm``) mean a
diffraction pattern or an FFT, which is not a real-space image and is refused.

Example
-------
>>> length_to_nm(1.8, "Å")
0.18
>>> length_to_nm(0.25, "µm")
250.0
>>> length_to_nm(1.0, "") is None
True
"""

from __future__ import annotations

import math
import re

from nanoseg.errors import NanosegError

# factor that turns one <unit> into nm
_NM_PER_UNIT = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "a": 0.1, "å": 0.1, "Å": 0.1, "angstrom": 0.1, "angstroms": 0.1, "ang": 0.1, "\\u00c5": 0.1,
    "pm": 1e-3, "picometer": 1e-3,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "\\u00b5m": 1e3,
    "mm": 1e6, "millimeter": 1e6,
    "cm": 1e7, "centimeter": 1e7,
    "m": 1e9, "meter": 1e9, "metre": 1e9,
}
# units that say "no physical calibration"
_UNCALIBRATED = {"", "px", "pixel", "pixels", "<undefined>", "undefined", "none", "unknown", "t", "a.u.", "au"}
# the range of real-space pixel sizes any microscope produces: 0.1 pm (sub-Å STEM sampling) … 1 mm
# (a stage navigation camera, ~0.26 mm/px); anything outside is a unit or reader mistake
PLAUSIBLE_PIXEL_NM = (1e-4, 1e6)


def is_reciprocal(unit: str | None) -> bool:
    """True for reciprocal-space units such as ``1/nm``, ``nm^-1``, ``1/Å``."""
    if not unit:
        return False
    text = str(unit).strip().replace(" ", "").lower()
    return text.startswith("1/") or "^-1" in text or "⁻¹" in text or text.endswith("-1")


def length_to_nm(scale: float, unit: str | None, *, path=None) -> float | None:
    """Convert a pixel size ``scale`` given in ``unit`` to nm.

    Returns None when the unit says the image is uncalibrated (empty, ``px``, ``<undefined>``).
    Raises :class:`NanosegError` for reciprocal units (diffraction patterns / FFTs) and for units
    that are not lengths.
    """
    text = "" if unit is None else str(unit).strip().strip("[]").strip()  # "[nm]"; "[]" = no unit (HyperSpy EMD)
    if is_reciprocal(text):
        raise NanosegError(
            f"the image is calibrated in reciprocal units ({text}): a diffraction pattern or FFT, not a "
            "real-space image",
            path=path,
            hint="nanoseg segments real-space HRTEM images; export the image itself",
        )
    key = text.lower()
    if key in _UNCALIBRATED:
        return None
    factor = _NM_PER_UNIT.get(text, _NM_PER_UNIT.get(key))
    if factor is None:
        key = re.sub(r"[^a-zµμå]", "", key)
        factor = _NM_PER_UNIT.get(key)
    if factor is None:
        raise NanosegError(
            f"unknown length unit {text!r} in the file's calibration", path=path,
            hint="expected nm, Å, pm, µm, mm or m; pass the pixel size yourself",
        )
    value = float(scale) * factor
    if not math.isfinite(value) or value <= 0:
        return None
    return float(f"{value:.12g}")


def check_plausible_pixel_nm(pixel_size_nm: float | None, *, path=None, source: str = "the file's calibration") -> None:
    """Raise :class:`NanosegError` unless ``pixel_size_nm`` lies in :data:`PLAUSIBLE_PIXEL_NM` (None passes).

    >>> check_plausible_pixel_nm(0.02)
    >>> check_plausible_pixel_nm(1e17)
    Traceback (most recent call last):
    ...
    nanoseg.errors.NanosegError: implausible pixel size 1e+17 nm from the file's calibration: a real-space pixel is 0.0001 to 1e+06 nm (pass the pixel size yourself, pixel_size_nm=NM, if you know it)
    """
    if pixel_size_nm is None:
        return
    low, high = PLAUSIBLE_PIXEL_NM
    if not low <= pixel_size_nm <= high:
        raise NanosegError(
            f"implausible pixel size {pixel_size_nm:.6g} nm from {source}: a real-space pixel is {low:g} to {high:g} nm",
            path=path, hint="pass the pixel size yourself, pixel_size_nm=NM, if you know it",
        )
