"""How big a study is before running it: trainings, cells, images to simulate, training work.

The training work is counted in **patch-passes of 256² pixels** (one forward + backward pass over 65,536
pixels), the unit that scales with the hardware: multiply by the seconds one such pass takes on your machine
(``seconds_per_patch``) to get an estimate. Patches per image follow the trainer's non-overlapping grid
(``floor(H / patch)²``), capped by ``max_patches``; images without a known size count as ``image_size_px``
of the simulation (512 by default).

Example
-------
>>> from nanoseg.study.spec import load_spec
>>> spec = load_spec({"name": "p", "datasets": {"a": {"preset": "au_5nm"}, "b": {"preset": "ag_5nm"}},
...                   "n_images": 20, "folds": 5, "training": {"epochs": 10, "patch_size": 256},
...                   "simulation": {"image_size_px": 512}})
>>> plan = study_plan(spec)
>>> plan["trainings"], plan["cells"], plan["images_to_simulate"], plan["patch_passes_256"]
(10, 20, 40, 5600)
"""

from __future__ import annotations

from typing import Any

from nanoseg.study.grid import expand_grid
from nanoseg.study.spec import StudySpec


def _image_px(spec: StudySpec, name: str) -> int:
    ds = spec.datasets[name]
    if ds.path is not None:
        try:
            from nanoseg.datasets import open_dataset

            meta = open_dataset(ds.path).meta
            return int(meta["height_px"].median()) if "height_px" in meta else 512
        except Exception:
            return 512
    size = ds.overrides.get("image_size_px", spec.simulation.get("image_size_px"))
    if size is None:
        from nanoseg.study.data import find_preset

        preset = find_preset(ds.preset, None)
        if not isinstance(preset, str):
            import yaml

            size = (yaml.safe_load(preset.read_text()) or {}).get("image_size_px")
    return int(size) if isinstance(size, (int, float)) else 512


def study_plan(spec: StudySpec, *, seconds_per_patch: float | None = None) -> dict[str, Any]:
    """Counts of a study (see the module docstring); ``hours`` when ``seconds_per_patch`` is given."""
    trainings, cells = expand_grid(spec)
    train_fraction = (1 - 1 / spec.folds) * (1 - spec.val_fraction)
    passes = 0.0
    for t in trainings:
        n_images = spec.dataset_n_images(t.train_set) * train_fraction
        patch = int(t.config.get("patch_size", 256))
        per_image = max(1, _image_px(spec, t.train_set) // patch) ** 2
        patches = n_images * per_image
        if t.config.get("max_patches"):
            patches = min(patches, int(t.config["max_patches"]))
        passes += int(t.config.get("epochs", 20)) * patches * (patch / 256) ** 2
    simulated = sum(spec.dataset_n_images(n) for n in dict.fromkeys(spec.train_sets + spec.test_sets)
                    if spec.datasets[n].preset is not None)
    plan: dict[str, Any] = {"trainings": len(trainings), "cells": len(cells), "images_to_simulate": simulated,
                            "patch_passes_256": int(round(passes))}
    if seconds_per_patch is not None:
        plan["training_hours"] = passes * seconds_per_patch / 3600
    return plan
