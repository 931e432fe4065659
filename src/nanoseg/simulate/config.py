"""The simulation spec: a pydantic model whose parameters are fixed values or distributions.

Every parameter may be written in YAML as

- a fixed value: ``dose_e_per_A2: 423``
- a uniform range: ``defocus_nm: {uniform: [-2, 15]}``
- a log-uniform range (positive): ``dose_e_per_A2: {loguniform: [50, 1000]}``
- a choice list (equal weights, or ``weights``): ``material: {choice: [Au, Ag], weights: [3, 1]}``

Integer parameters (``image_size_px``, ``n_particles``, ``frozen_phonons``) round uniform draws.
Draws happen in a fixed order from one ``numpy.random.Generator`` seeded per image, so the same spec and
seed give the same parameters (and, with the same code, bit-identical images).

Example
-------
>>> cfg = SimulationConfig(material={"choice": ["Au", "Ag"]}, dose_e_per_A2={"uniform": [80, 900]})
>>> import numpy as np
>>> p = cfg.draw(np.random.default_rng(0))
>>> p["material"] in ("Au", "Ag"), 80 <= p["dose_e_per_A2"] <= 900
(True, True)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nanoseg.errors import NanosegError
from nanoseg.simulate.detector import DETECTORS, MAX_GAIN_NONUNIFORMITY
from nanoseg.simulate.structures import MATERIALS, SHAPES
from nanoseg.simulate.support import SUPPORTS


class Uniform(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uniform: tuple[float, float]

    @field_validator("uniform")
    @classmethod
    def _ordered(cls, v):
        if not (np.isfinite(v[0]) and np.isfinite(v[1])) or v[0] > v[1]:
            raise ValueError(f"uniform range needs low ≤ high, got {list(v)}")
        return v

    def values(self) -> list:
        return list(self.uniform)

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(*self.uniform))


class LogUniform(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loguniform: tuple[float, float]

    @field_validator("loguniform")
    @classmethod
    def _positive(cls, v):
        if not (0 < v[0] <= v[1] < np.inf):
            raise ValueError(f"loguniform range needs 0 < low ≤ high, got {list(v)}")
        return v

    def values(self) -> list:
        return list(self.loguniform)

    def draw(self, rng: np.random.Generator) -> float:
        return float(np.exp(rng.uniform(np.log(self.loguniform[0]), np.log(self.loguniform[1]))))


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: list[Any] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self):
        if self.weights is not None and (len(self.weights) != len(self.choice) or min(self.weights) < 0
                                         or sum(self.weights) <= 0):
            raise ValueError("choice weights must be ≥ 0, not all 0, one per choice")
        return self

    def values(self) -> list:
        return list(self.choice)

    def draw(self, rng: np.random.Generator) -> Any:
        p = None if self.weights is None else np.asarray(self.weights, float) / sum(self.weights)
        value = self.choice[int(rng.choice(len(self.choice), p=p))]
        return value.item() if isinstance(value, np.generic) else value


Param = Uniform | LogUniform | Choice | float | int | str | bool | None

#: parameters drawn per image, in this (fixed) order
DRAWN = [
    "image_size_px", "pixel_size_nm", "material", "shape", "diameter_nm", "diameter_spread", "aspect_ratio",
    "n_particles", "touching_pair_fraction", "zone_axis_fraction", "support", "support_thickness_nm",
    "voltage_kV", "defocus_nm", "Cs_um", "C5_mm", "astigmatism_nm", "focal_spread_nm", "convergence_mrad",
    "aperture_mrad", "dose_e_per_A2", "detector", "mtf_core_sigma_px", "mtf_tail_fraction", "mtf_tail_sigma_px",
    "gain_noise_cv", "read_noise_e", "illumination_gradient", "xray_spikes_per_Mpx", "gain_nonuniformity",
]

_INTEGER = {"image_size_px", "n_particles"}

#: modality name → the check of its own part of a spec (raises ValueError). The modality modules register
#: themselves on import (``simulate.stem``: haadf_stem, ``simulate.bftem``: bf_tem; ``nanoseg.simulate`` imports
#: both), so this module does not import them: they build on its parameter types.
MODALITY_CHECKS: dict[str, Any] = {}


class SimulationConfig(BaseModel):
    """A simulation spec (units in the names; see docs/simulation.md for every parameter)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "sim"
    mode: str = "multislice"  # or "composite" (fast wide fields, see generate.simulate_wide_field)
    # imaging mode: "hrtem" (this spec's multislice/composite physics) or "haadf_stem" (simulate/stem.py)
    modality: str = "hrtem"
    stem: dict[str, Any] | None = None  # HAADF-STEM parameters (simulate.stem.StemParams), modality haadf_stem
    bf_tem: dict[str, Any] | None = None  # bright-field TEM parameters (simulate.bftem.BFParams), modality bf_tem
    # field of view
    image_size_px: Param = 512
    pixel_size_nm: Param = 0.02
    # specimen
    material: Param = "Au"
    shape: Param = Choice(choice=["truncated_octahedron", "cuboctahedron", "decahedron", "icosahedron",
                                  "sphere"])
    diameter_nm: Param = 5.0
    diameter_spread: Param = 0.1  # relative σ of the per-particle diameter around diameter_nm
    aspect_ratio: Param = 1.5  # long/short axis of "ellipsoid" particles
    n_particles: Param = 1
    touching_pair_fraction: Param = 0.0  # probability that particles 1 and 2 touch
    zone_axis_fraction: Param = 0.5  # probability per particle of a low-index zone axis along the beam
    support: Param = "carbon"
    support_thickness_nm: Param = 3.0
    # optics
    voltage_kV: Param = 300.0
    defocus_nm: Param = Uniform(uniform=(5.0, 20.0))  # abTEM sign: positive = underfocus (docs/simulation.md)
    Cs_um: Param = Uniform(uniform=(-20.0, 20.0))
    C5_mm: Param = 0.0
    astigmatism_nm: Param = Uniform(uniform=(0.0, 1.0))
    focal_spread_nm: Param = 3.0  # 1/e width
    convergence_mrad: Param = 0.2  # σ of illumination angles
    aperture_mrad: Param = Uniform(uniform=(18.0, 25.0))
    # detector
    dose_e_per_A2: Param = 423.0
    detector: Param = "scintillator"
    mtf_core_sigma_px: Param = None  # None: the detector preset's value
    mtf_tail_fraction: Param = None
    mtf_tail_sigma_px: Param = None
    gain_noise_cv: Param = None
    read_noise_e: Param = None
    gain_nonuniformity: Param = None  # relative spread of the per-pixel gains (None: the preset's)
    illumination_gradient: Param = 0.0
    xray_spikes_per_Mpx: Param = 0.0
    # numerics (fixed, not drawn)
    sampling_A: float = 0.2  # finest simulation sampling; the grid is the camera pixel / integer ≤ this
    slice_thickness_A: float = 2.0
    frozen_phonons: int = 0
    support_min_distance_A: float | None = None  # None: per support kind (carbon 1.35 Å)
    support_density_g_cm3: float | None = None  # None: per support kind (carbon 2.0 g/cm³)

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        def vals(name):
            v = getattr(self, name)
            return v.values() if isinstance(v, (Uniform, LogUniform, Choice)) else [v]

        def positive(name, allow_zero=False, allow_none=False):
            for v in vals(name):
                if v is None and allow_none:
                    continue
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or (
                        v < 0 if allow_zero else v <= 0):
                    raise ValueError(f"{name} must be {'≥' if allow_zero else '>'} 0, got {v!r}")

        for name in ("pixel_size_nm", "diameter_nm", "voltage_kV", "dose_e_per_A2", "image_size_px",
                     "n_particles", "aspect_ratio"):
            positive(name)
        for name in ("diameter_spread", "support_thickness_nm", "focal_spread_nm", "convergence_mrad",
                     "illumination_gradient", "xray_spikes_per_Mpx", "astigmatism_nm"):
            positive(name, allow_zero=True)
        for name in ("mtf_core_sigma_px", "mtf_tail_sigma_px", "gain_noise_cv", "read_noise_e",
                     "mtf_tail_fraction", "gain_nonuniformity"):
            positive(name, allow_zero=True, allow_none=True)
        for v in vals("gain_nonuniformity"):
            if v is not None and isinstance(v, (int, float)) and v > MAX_GAIN_NONUNIFORMITY:
                raise ValueError(f"gain_nonuniformity is a relative spread of the pixel gains; {v} is beyond any "
                                 f"camera (use 0–{MAX_GAIN_NONUNIFORMITY}, e.g. 0.05 = 5 %)")
        positive("aperture_mrad")
        for name in ("touching_pair_fraction", "zone_axis_fraction"):
            for v in vals(name):
                if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                    raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
        for v in vals("material"):
            if v not in MATERIALS:
                raise ValueError(f"unknown material {v!r} (choose from {', '.join(MATERIALS)})")
        for v in vals("shape"):
            if v not in SHAPES:
                raise ValueError(f"unknown shape {v!r} (choose from {', '.join(SHAPES)})")
        if self.modality in MODALITY_CHECKS:  # its own supports (silica, alumina, ...) and parameters
            MODALITY_CHECKS[self.modality](self)
        elif self.modality != "hrtem":
            known = ", ".join(repr(m) for m in ("hrtem", *sorted(MODALITY_CHECKS)))
            raise ValueError(f"modality must be one of {known}, got {self.modality!r}")
        elif self.stem is not None:
            raise ValueError("stem: parameters need modality: haadf_stem")
        if self.bf_tem is not None and self.modality != "bf_tem":
            raise ValueError("bf_tem: parameters need modality: bf_tem")
        for v in vals("support") if self.modality == "hrtem" else []:
            if v not in SUPPORTS:
                raise ValueError(f"unknown support {v!r} (choose from {', '.join(SUPPORTS)})")
        for v in vals("detector"):
            if v not in DETECTORS:
                raise ValueError(f"unknown detector {v!r} (choose from {', '.join(DETECTORS)})")
        for v in vals("voltage_kV"):
            if not 20 <= v <= 1000:
                raise ValueError(f"voltage_kV {v} is outside 20–1000 kV")
        for v in vals("image_size_px"):
            if v < 16 or v > 8192:
                raise ValueError(f"image_size_px {v} is outside 16–8192")
        if self.mode not in ("multislice", "composite"):
            raise ValueError(f"mode must be 'multislice' or 'composite', got {self.mode!r}")
        if self.sampling_A <= 0 or self.slice_thickness_A <= 0 or self.frozen_phonons < 0:
            raise ValueError("sampling_A and slice_thickness_A must be > 0, frozen_phonons ≥ 0")
        # a particle must fit in the field. Fixed values: the particle (with 2σ spread) must fit. With
        # distributions, at least the smallest particle must fit in the largest field; a drawn particle too
        # large for its drawn field is shrunk to fit (see generate.build_specimen, meta "diameter_capped").
        def fits(diameter_nm, field_nm):
            return diameter_nm < 0.9 * field_nm

        largest_field_nm = max(vals("image_size_px")) * max(vals("pixel_size_nm"))
        spread = max(vals("diameter_spread"))
        elong = max(vals("aspect_ratio")) ** (2 / 3) if "ellipsoid" in vals("shape") else 1.0
        if len(vals("diameter_nm")) == 1 and len(vals("image_size_px")) == 1 and len(vals("pixel_size_nm")) == 1:
            need = vals("diameter_nm")[0] * (1 + 2 * spread) * elong
        else:
            need = min(vals("diameter_nm")) * elong
        if not fits(need, largest_field_nm):
            raise ValueError(
                f"particles of {need:.1f} nm do not fit in a field of {largest_field_nm:.1f} nm "
                f"(image_size_px × pixel_size_nm); use a larger image or pixel size, or smaller particles")
        return self

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> SimulationConfig:
        """Load a spec from a YAML file (clear errors for unknown keys and impossible values)."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise NanosegError(f"cannot read simulation spec ({exc.strerror})", path=path) from exc
        except yaml.YAMLError as exc:
            raise NanosegError(f"not valid YAML ({exc})", path=path) from exc
        if not isinstance(data, dict):
            raise NanosegError("a simulation spec must be a mapping of parameter: value", path=path)
        data.setdefault("name", os.path.splitext(os.path.basename(os.fspath(path)))[0])
        return cls.parse(data, path=path)

    def __init__(self, /, **data: Any) -> None:
        """Validate the parameters; a bad value raises :class:`NanosegError` (as :meth:`parse` does)."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._invalid(exc) from exc

    @staticmethod
    def _invalid(exc: ValidationError, path=None) -> NanosegError:
        """One :class:`NanosegError` naming the first four bad parameters of a pydantic error."""
        seen: dict[str, str] = {}
        for err in exc.errors():
            where = str(err["loc"][0]) if err["loc"] else "spec"
            seen.setdefault(where, err["msg"].removeprefix("Value error, "))
        problems = "; ".join(f"{where}: {msg}" if where != "spec" else msg for where, msg in list(seen.items())[:4])
        return NanosegError(f"invalid simulation spec: {problems}", path=path,
                            hint="see docs/simulation.md for parameters and units")

    @classmethod
    def parse(cls, data: dict, *, path=None) -> SimulationConfig:
        """Validate a dict, turning pydantic errors into one :class:`NanosegError`."""
        try:
            return cls.model_validate(data)
        except NanosegError as exc:  # from __init__: pydantic validates through a custom __init__
            raise NanosegError(exc.message, path=path, hint=exc.hint) from exc.__cause__

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw one value per parameter (fixed order); returns a plain dict."""
        out: dict[str, Any] = {}
        for name in DRAWN:
            value = getattr(self, name)
            if isinstance(value, (Uniform, LogUniform, Choice)):
                value = value.draw(rng)
            if name in _INTEGER and value is not None:
                value = int(round(value))
            out[name] = value
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=False), sort_keys=False)


def load_config(config: SimulationConfig | dict | str | os.PathLike) -> SimulationConfig:
    """A :class:`SimulationConfig` from itself, a dict, or a YAML path."""
    if isinstance(config, SimulationConfig):
        return config
    if isinstance(config, dict):
        return SimulationConfig.parse(config)
    return SimulationConfig.from_yaml(config)
