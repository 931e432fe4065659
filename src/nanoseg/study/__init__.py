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

from nanoseg.study.backends import NanosegBackend, ThresholdBackend, get_backend
from nanoseg.study.descriptors import dataset_descriptors, descriptor_distance, image_descriptors
from nanoseg.study.grid import EvalCell, Option, TrainTask, expand_grid, expand_options
from nanoseg.study.plan import study_plan
from nanoseg.study.report import drop_matrix, metric_matrix, summarize, write_study_report
from nanoseg.study.run import run_study
from nanoseg.study.spec import StudySpec, load_spec
from nanoseg.study.store import ResultsStore, load_results

__all__ = [
    "EvalCell", "NanosegBackend", "Option", "ResultsStore", "StudySpec", "ThresholdBackend", "TrainTask",
    "dataset_descriptors", "descriptor_distance", "drop_matrix", "expand_grid", "expand_options", "get_backend",
    "image_descriptors", "load_results", "load_spec", "metric_matrix", "run_study", "study_plan", "summarize",
    "write_study_report",
]
