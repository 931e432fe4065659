"""A serializable preprocessing pipeline: an ordered list of named steps with their parameters.

The spec format (stored in model cards, YAML files and study specs) is a list of dicts
``{"name": step_name, **parameters}``; a YAML file holds it under ``steps:``. Every spec is checked
when the pipeline is built (unknown step or parameter, missing or absurd values), so a bad spec fails
before a batch starts, with the valid names in the message.

Example
-------
>>> import numpy as np
>>> pipe = Pipeline.from_spec([{"name": "gaussian_blur", "sigma_px": 1.0}, {"name": "standardize"}])
>>> pipe.to_spec()
[{'name': 'gaussian_blur', 'sigma_px': 1.0}, {'name': 'standardize'}]
>>> out = pipe(np.random.default_rng(0).random((32, 32)))
>>> round(float(out.std()), 4)
1.0
"""

from __future__ import annotations

import inspect
import json
import numbers
import os
import warnings as _warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.preprocess._checks import as_image
from nanoseg.preprocess.filters import gaussian_blur
from nanoseg.preprocess.flatfield import flat_field, flat_field_or_subtract
from nanoseg.preprocess.normalize import minmax, percentile_clip, standardize
from nanoseg.preprocess.resample import resample, resample_micrograph
from nanoseg.preprocess.xray import remove_xrays

_REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class _StepKind:
    function: Callable
    returns_pair: bool = False  # (image, extra) → keep the image
    needs_pixel_size: bool = False  # resample: the input pixel size comes from the data, not the spec
    hidden: tuple[str, ...] = ()
    tolerant: Callable | None = None  # same parameters; returns (image, note or None) where ``function`` raises


    @property
    def parameters(self) -> dict[str, Any]:
        """Spec-settable keyword parameters → default (``inspect.Parameter.empty`` when required)."""
        sig = inspect.signature(self.function)
        return {name: p.default for name, p in sig.parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in self.hidden}


STEPS: dict[str, _StepKind] = {
    "remove_xrays": _StepKind(remove_xrays, returns_pair=True),
    "flat_field": _StepKind(flat_field, returns_pair=True, tolerant=flat_field_or_subtract),
    "standardize": _StepKind(standardize),
    "minmax": _StepKind(minmax),
    "percentile_clip": _StepKind(percentile_clip),
    "resample": _StepKind(resample, needs_pixel_size=True, hidden=("from_pixel_size_nm",)),
    "gaussian_blur": _StepKind(gaussian_blur),
}
"""The registry of step names usable in a spec."""

_PROBE = 1.0 + np.random.default_rng(0).random((16, 16))  # a tiny positive image to dry-run parameters


def _plain(value: Any, where: str) -> Any:
    """Convert a parameter value to JSON/YAML-safe Python (tuples → lists, NumPy scalars → Python)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v, where) for v in value]
    raise NanosegError(f"{where}: parameter values must be numbers, strings, booleans, null or lists, "
                       f"got {type(value).__name__}")


@dataclass(frozen=True)
class Step:
    """One named step of a :class:`Pipeline` with its (validated, JSON-safe) parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        valid = ", ".join(STEPS)
        if self.name not in STEPS:
            raise NanosegError(f"unknown preprocessing step {self.name!r}", hint=f"valid steps: {valid}")
        kind = STEPS[self.name]
        allowed = kind.parameters
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            listed = ", ".join(allowed) or "none"
            raise NanosegError(f"step {self.name!r} has no parameter(s) {', '.join(map(repr, unknown))}",
                               hint=f"valid parameters of {self.name}: {listed}")
        missing = [p for p, default in allowed.items() if default is _REQUIRED and p not in self.params]
        if missing:
            raise NanosegError(f"step {self.name!r} needs parameter(s) {', '.join(missing)}",
                               hint=f"e.g. {{name: {self.name}, {missing[0]}: ...}}")
        object.__setattr__(self, "params", {k: _plain(v, f"step {self.name!r}") for k, v in self.params.items()})
        target = self.params.get("to_pixel_size_nm")
        probe_px = target if isinstance(target, int | float) and not isinstance(target, bool) and target > 0 else 1.0
        self.run(_PROBE, pixel_size_nm=probe_px)  # dry run: bad values fail now, with the step's own message

    def run(self, image, *, pixel_size_nm: float | None = None, warnings: list[str] | None = None) -> np.ndarray:
        """Run the step; where it has a fallback (``flat_field`` that cannot divide), its note goes to
        ``warnings`` (a list), or, without one, out as a Python :class:`UserWarning`."""
        kind = STEPS[self.name]
        params = dict(self.params)
        if kind.needs_pixel_size:
            if pixel_size_nm is None:
                raise NanosegError(f"step {self.name!r} needs the image's pixel size, which is unknown",
                                   hint="call pipeline(array, pixel_size_nm=...) or use a calibrated Micrograph")
            params["from_pixel_size_nm"] = pixel_size_nm
        if kind.tolerant is not None:
            out, note = kind.tolerant(image, **params)
            _report(note, warnings)
            return out
        out = kind.function(image, **params)
        return out[0] if kind.returns_pair else out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **json.loads(json.dumps(self.params))}


class Pipeline:
    """An ordered, serializable list of preprocessing steps.

    Build it with :meth:`from_spec` (a list of ``{"name": ..., **params}`` dicts, a ``{"steps": [...]}``
    mapping, a YAML/JSON file path, or a built-in name: ``"sytwu"``, ``"horwath"``, ``"default"``).
    ``pipeline(array, pixel_size_nm=None)`` returns a float32 array; ``pipeline.apply(micrograph)``
    returns a new :class:`~nanoseg.io.Micrograph` (a ``resample`` step updates its pixel size).

    Example
    -------
    >>> from nanoseg.io import Micrograph
    >>> pipe = Pipeline.from_spec([{"name": "resample", "to_pixel_size_nm": 0.04}, {"name": "standardize"}])
    >>> out = pipe.apply(Micrograph(np.random.default_rng(0).random((64, 64)), pixel_size_nm=0.02))
    >>> out.shape, out.pixel_size_nm
    ((32, 32), 0.04)
    """

    def __init__(self, steps: Sequence[Step | Mapping[str, Any]] = ()):
        self.steps: tuple[Step, ...] = tuple(s if isinstance(s, Step) else _step_from_dict(s) for s in steps)

    # construction / serialization -------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Pipeline | Sequence[Mapping[str, Any]] | Mapping[str, Any] | str | os.PathLike
                  ) -> Pipeline:
        """Build a pipeline from a spec list, a ``{"steps": [...]}`` mapping, a file path or a built-in name."""
        if isinstance(spec, Pipeline):
            return spec
        if isinstance(spec, str | os.PathLike):
            if isinstance(spec, str) and spec.lower() in BUILTIN and not Path(spec).exists():
                return BUILTIN[spec.lower()]
            return cls.load(spec)
        if isinstance(spec, Mapping):
            if "steps" not in spec and "preprocessing" not in spec:
                raise NanosegError("a pipeline spec mapping needs a 'steps' list (or the 'preprocessing' list of a "
                                   "training spec)", hint="write steps: [{name: standardize}, ...]")
            spec = spec["steps"] if "steps" in spec else spec["preprocessing"]
        if spec is None:
            spec = []
        if isinstance(spec, str | bytes) or not isinstance(spec, Sequence):
            raise NanosegError(f"a pipeline spec must be a list of steps, got {type(spec).__name__}")
        return cls(spec)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Pipeline:
        """Read a YAML (or JSON) file holding ``steps: [...]``, the bare list, or a training spec whose
        ``preprocessing: [...]`` is the pipeline (e.g. ``examples/train/default_model.yaml``)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise NanosegError("pipeline spec file not found", path=path,
                               hint=f"give a YAML file or a built-in name ({', '.join(BUILTIN)})")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise NanosegError(f"not a valid YAML pipeline spec: {exc}".splitlines()[0], path=path) from None
        try:
            return cls.from_spec(data)
        except NanosegError as exc:
            raise NanosegError(exc.message, path=path, hint=exc.hint) from None

    def to_spec(self) -> list[dict[str, Any]]:
        """The JSON/YAML-safe spec; ``Pipeline.from_spec(p.to_spec())`` rebuilds an identical pipeline."""
        return [step.to_dict() for step in self.steps]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the spec as YAML (``steps: [...]``), atomically."""
        import yaml

        from nanoseg._util import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump({"steps": self.to_spec()}, sort_keys=False), encoding="utf-8")
        return Path(path)

    # running -------------------------------------------------------------------------------------
    def __call__(self, image, *, pixel_size_nm: float | None = None, warnings: list[str] | None = None
                 ) -> np.ndarray:
        """Run every step on a 2-D array; ``pixel_size_nm`` is needed only by a ``resample`` step.

        A step that had to fall back (a flat field that could not divide) appends its note to ``warnings``
        when a list is given, else issues a :class:`UserWarning`."""
        array = as_image(image, step="pipeline")
        for step in self.steps:
            array = step.run(array, pixel_size_nm=pixel_size_nm, warnings=warnings)
            if step.name == "resample":
                pixel_size_nm = step.params["to_pixel_size_nm"]
        return np.asarray(array, dtype=np.float32)

    def apply(self, micrograph, *, warnings: list[str] | None = None):
        """Run the pipeline on a :class:`~nanoseg.io.Micrograph`; return a new one.

        A ``resample`` step uses the micrograph's pixel size and sets the new (exact) one; errors
        name the micrograph's source file. The spec is recorded in ``metadata["preprocessing"]``, the notes
        of steps that fell back (see :meth:`__call__`), if any, in ``metadata["preprocessing_warnings"]`` (and are
        appended to ``warnings`` when a list is given).
        """
        notes: list[str] = []
        try:
            micrograph.check_finite()
            out = micrograph.with_data(micrograph.data)
            for step in self.steps:
                if step.name == "resample":
                    out = resample_micrograph(out, step.params["to_pixel_size_nm"],
                                              method=step.params.get("method", "fourier"))
                elif step.name == "remove_xrays":
                    cleaned, n_found = remove_xrays(out.data, **step.params)
                    out = out.with_data(cleaned)
                    out.metadata["n_xrays_found"] = out.metadata.get("n_xrays_found", 0) + n_found
                else:
                    out = out.with_data(step.run(out.data, warnings=notes))
        except NanosegError as exc:
            if exc.path is None and micrograph.source:
                raise NanosegError(exc.message, path=micrograph.source, hint=exc.hint) from None
            raise
        out.metadata["preprocessing"] = self.to_spec()
        if notes:
            out.metadata["preprocessing_warnings"] = notes
        for note in notes:
            _report(note, warnings)
        return out

    # container protocol ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_spec(), sort_keys=True))

    def __repr__(self) -> str:
        inner = ", ".join(f"{s.name}({', '.join(f'{k}={v!r}' for k, v in s.params.items())})" for s in self.steps)
        return f"Pipeline([{inner}])"


def _report(note: str | None, warnings: list[str] | None) -> None:
    """A step's fallback note → the caller's list, or a Python warning when nobody collects them."""
    if note is None:
        return
    if warnings is None:
        _warnings.warn(note, UserWarning, stacklevel=4)
    elif note not in warnings:
        warnings.append(note)


def _step_from_dict(item: Mapping[str, Any]) -> Step:
    if not isinstance(item, Mapping):
        raise NanosegError(f"each pipeline step must be a mapping like {{name: standardize}}, got {item!r}")
    if "name" not in item or not isinstance(item["name"], str):
        raise NanosegError(f"pipeline step {dict(item)!r} has no 'name'", hint=f"valid steps: {', '.join(STEPS)}")
    params = {k: v for k, v in item.items() if k != "name"}
    return Step(item["name"], params)


SYTWU_PIPELINE = Pipeline([
    {"name": "remove_xrays", "threshold": None, "n_sigma": 8.0, "max_passes": 2, "method": "neighbour_mean"},
    {"name": "flat_field", "order": [2, 2], "scale": 0.25, "n_reweight": 2},
    {"name": "standardize"},
])
"""Sytwu et al.'s protocol: x-ray removal (2 passes) → Bézier flat field (2, 2) at ¼ scale with 2
reweights → per-image standardization. Needs raw positive intensities (the flat field divides)."""

HORWATH_PIPELINE = Pipeline([{"name": "standardize"}, {"name": "gaussian_blur", "sigma_px": 0.0}])
"""Horwath et al.'s input: standardize, then the studied Gaussian blur (σ = 0, 1 or 2 px; 0 here)."""

DEFAULT_PIPELINE = SYTWU_PIPELINE
"""What nanoseg uses when nothing else is said: the Sytwu protocol, because removing session-dependent
uneven illumination was crucial for generalization between datasets."""

BUILTIN: dict[str, Pipeline] = {"sytwu": SYTWU_PIPELINE, "horwath": HORWATH_PIPELINE, "default": DEFAULT_PIPELINE}
