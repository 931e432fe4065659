"""nanoseg — segment nanoparticles in HRTEM images with small, deliberate neural networks.

One face for users (imported lazily, so ``import nanoseg`` stays fast)::

    import nanoseg as ns
    m = ns.read("image.dm4")                                   # Micrograph (nm calibration, metadata)
    pred = ns.predict(m, "default")                            # probability, mask, warnings
    labels = ns.label_particles(pred, pixel_size_nm=m.pixel_size_nm)
    table = ns.particle_table(labels, pixel_size_nm=m.pixel_size_nm, image=m.data)
    result = ns.track("movie.tif", model="default", out_dir="track/")     # in situ movie → kinetics
    ev = ns.evaluate(ns.open_dataset("data/au5"), predictions)             # scores against ground truth
    run = ns.evaluate_folder("default", "data/au5", "eval/")                # ... as `nanoseg evaluate` does
    image = ns.simulate("examples/simulate/au_5nm.yaml", seed=0)           # one labelled simulation
    ns.train(["data/au5"], ns.TrainConfig(model="norm_unet"), "runs/au5")  # → checkpoint folder

``ns.evaluate``, ``ns.simulate`` and ``ns.train`` are also the sub-packages of those names (``ns.evaluate.dice``);
calling one runs its verb (:func:`nanoseg.evaluate.evaluate_dataset`, :func:`nanoseg.simulate.simulate_image`,
:func:`nanoseg.train.train_model`). Everything else is in the sub-packages, one per concern (see
docs/architecture.md): ``io``, ``preprocess``, ``datasets``, ``simulate``, ``models``, ``train``, ``infer``,
``evaluate``, ``particles``, ``insitu``, ``report``, ``study``, ``explain``; ``cli`` is a thin layer over them.
"""

from nanoseg.errors import NanosegError

__version__ = "0.1.0"

# name → the module that defines it ("module:attribute" when the name differs); one table, imported on use
_FACADE = {
    "read": "nanoseg.io", "read_series": "nanoseg.io", "describe": "nanoseg.io", "read_mask": "nanoseg.io",
    "Micrograph": "nanoseg.io", "Series": "nanoseg.io", "example_micrograph": "nanoseg.io",
    "Pipeline": "nanoseg.preprocess",
    "open_dataset": "nanoseg.datasets",
    "load_model": "nanoseg.models", "build_model": "nanoseg.models", "list_models": "nanoseg.models",
    "predict": "nanoseg.infer", "predict_files": "nanoseg.workflows.predict", "Prediction": "nanoseg.infer",
    "label_particles": "nanoseg.particles", "particle_table": "nanoseg.particles",
    "track": "nanoseg.insitu:track_movie", "read_track_result": "nanoseg.insitu",
    "SimulationConfig": "nanoseg.simulate", "generate_dataset": "nanoseg.simulate",
    "TrainConfig": "nanoseg.train",
    "write_report": "nanoseg.report",
    "evaluate_folder": "nanoseg.workflows.evaluate",
}
_SUBPACKAGES = ["cli", "datasets", "demo", "evaluate", "explain", "infer", "insitu", "io", "models", "particles",
                "preprocess", "report", "simulate", "study", "train", "workflows"]



def _facade():
    # imported on first use, not at `import nanoseg`: one more module file costs +30 % of the import time
    from nanoseg._lazy import lazy_attributes

    return lazy_attributes(__name__, _FACADE, submodules=_SUBPACKAGES)


def __getattr__(name: str):
    """Import a facade name (or a sub-package) on first use; see :func:`nanoseg._lazy.lazy_attributes`."""
    return _facade()[0](name)


def __dir__() -> list[str]:
    return _facade()[1]()


__all__ = ["NanosegError", "__version__", "evaluate", "simulate", "train", *sorted(_FACADE)]
