"""HRTEM preprocessing: x-ray removal, flat-field correction, normalization, resampling to a pixel
size, Gaussian blur, the Horwath automatic labeler, and a serializable :class:`Pipeline`.

Every step is a plain function on a 2-D array with explicit keyword parameters (units in the names)
returning float32; the same steps are available by name in a :class:`Pipeline` spec, which model
cards store so that inference repeats the preprocessing exactly.

Example
-------
>>> import numpy as np
>>> from nanoseg.preprocess import SYTWU_PIPELINE
>>> raw = 100 + np.random.default_rng(0).normal(0, 5, (64, 64))
>>> out = SYTWU_PIPELINE(raw)
>>> out.dtype, round(float(out.std()), 3)
(dtype('float32'), 1.0)
"""

from nanoseg._lazy import lazy_attributes
from nanoseg.preprocess.batch import process_files
from nanoseg.preprocess.filters import gaussian_blur
from nanoseg.preprocess.flatfield import flat_field
from nanoseg.preprocess.labels import auto_label
from nanoseg.preprocess.normalize import minmax, percentile_clip, standardize
from nanoseg.preprocess.pipeline import (
    BUILTIN,
    DEFAULT_PIPELINE,
    HORWATH_PIPELINE,
    STEPS,
    SYTWU_PIPELINE,
    Pipeline,
    Step,
)
from nanoseg.preprocess.resample import resample, resample_mask, resample_micrograph
from nanoseg.preprocess.xray import remove_xrays

__all__ = [
    "BUILTIN", "DEFAULT_PIPELINE", "HORWATH_PIPELINE", "Pipeline", "STEPS", "SYTWU_PIPELINE", "Step",
    "auto_label", "flat_field", "gaussian_blur", "minmax", "percentile_clip", "process_files", "remove_xrays",
    "resample", "resample_mask", "resample_micrograph", "standardize",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "output_path": "nanoseg.preprocess.batch", "demo_figure": "nanoseg.preprocess.figure",
    "bernstein_basis": "nanoseg.preprocess.flatfield", "fit_background": "nanoseg.preprocess.flatfield",
    "label_features": "nanoseg.preprocess.labels", "resample_to_shape": "nanoseg.preprocess.resample",
    "resampled_shape": "nanoseg.preprocess.resample", "robust_sigma": "nanoseg.preprocess.xray",
    # input checks that inference shares (the module stays private to preprocess)
    "as_image": "nanoseg.preprocess._checks", "choice": "nanoseg.preprocess._checks",
    "quantization_notes": "nanoseg.preprocess._checks",
}, submodules=["_checks", "batch", "figure", "filters", "flatfield", "labels", "normalize", "pipeline", "resample", "xray"])
