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

from nanoseg.preprocess.batch import output_path, process_files
from nanoseg.preprocess.figure import demo_figure
from nanoseg.preprocess.filters import gaussian_blur
from nanoseg.preprocess.flatfield import bernstein_basis, fit_background, flat_field
from nanoseg.preprocess.labels import auto_label, label_features
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
from nanoseg.preprocess.resample import (
    resample,
    resample_mask,
    resample_micrograph,
    resample_to_shape,
    resampled_shape,
)
from nanoseg.preprocess.xray import remove_xrays, robust_sigma

__all__ = [
    "BUILTIN",
    "DEFAULT_PIPELINE",
    "HORWATH_PIPELINE",
    "STEPS",
    "SYTWU_PIPELINE",
    "Pipeline",
    "Step",
    "auto_label",
    "bernstein_basis",
    "demo_figure",
    "fit_background",
    "flat_field",
    "gaussian_blur",
    "label_features",
    "minmax",
    "output_path",
    "percentile_clip",
    "process_files",
    "remove_xrays",
    "resample",
    "resample_mask",
    "resample_micrograph",
    "resample_to_shape",
    "resampled_shape",
    "robust_sigma",
    "standardize",
]
