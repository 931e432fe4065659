"""Generalization studies: train × test grids over datasets, folds, seeds and options, run on Dask.

Declare in a YAML spec which datasets to train and test on (existing folders or simulator presets), the model
and training config, folds, seeds and the options to sweep; :func:`run_study` runs every training and every
evaluation cell as Dask tasks, appends one row per cell to the results table as it finishes, resumes after an
interruption and records failures; :func:`write_study_report` draws the train × test matrices, the drops
relative to the in-distribution diagonal, sweep curves and drop vs dataset-descriptor distance.

Example
-------
>>> from nanoseg.study import load_spec, expand_grid
>>> spec = load_spec({"name": "s", "datasets": {"a": {"path": "a"}, "b": {"path": "b"}}, "folds": 3})
>>> [len(x) for x in expand_grid(spec)]
[6, 12]
"""

from nanoseg._lazy import lazy_attributes
from nanoseg.study.backends import get_backend
from nanoseg.study.descriptors import dataset_descriptors
from nanoseg.study.grid import expand_grid
from nanoseg.study.plan import study_plan
from nanoseg.study.report import summarize, write_study_report
from nanoseg.study.run import run_study
from nanoseg.study.spec import StudySpec, load_spec
from nanoseg.study.store import ResultsStore, load_results

__all__ = [
    "ResultsStore", "StudySpec", "dataset_descriptors", "expand_grid", "get_backend", "load_results",
    "load_spec", "run_study", "study_plan", "summarize", "write_study_report",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "NanosegBackend": "nanoseg.study.backends", "ThresholdBackend": "nanoseg.study.backends",
    "descriptor_distance": "nanoseg.study.descriptors", "image_descriptors": "nanoseg.study.descriptors",
    "EvalCell": "nanoseg.study.grid", "Option": "nanoseg.study.grid", "TrainTask": "nanoseg.study.grid",
    "expand_options": "nanoseg.study.grid", "drop_matrix": "nanoseg.study.report",
    "metric_matrix": "nanoseg.study.report",
}, submodules=["backends", "data", "descriptors", "grid", "plan", "report", "run", "spec", "store"])
