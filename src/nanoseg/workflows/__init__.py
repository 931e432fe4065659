"""Workflows: the recipes users run, one call each, on top of every other package (``cli`` calls these).

:mod:`~nanoseg.workflows.report` (a report for any output folder), :mod:`~nanoseg.workflows.sizes` (the
size section of a predict report), :mod:`~nanoseg.workflows.evaluate` (score a model or a prediction folder
against a dataset and write the evaluation folder), :mod:`~nanoseg.workflows.horwath` (the Horwath et al.
reproduction recipe) and :mod:`~nanoseg.workflows.demo` (``nanoseg demo``). A workflow may import any package
below it; no package below imports a workflow (tests/test_architecture.py).
"""
