"""The end-to-end demo (``nanoseg demo``): moved to :mod:`nanoseg.workflows.demo`; these names stay importable here."""

from nanoseg.workflows.demo import DemoSettings, kinetics_comment, run_demo

__all__ = ["DemoSettings", "kinetics_comment", "run_demo"]
