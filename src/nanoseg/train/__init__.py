"""Training: losses, the training loop with checkpoint selection and resume, grouped cross-validation.

Example
-------
>>> from nanoseg.train import TrainConfig
>>> TrainConfig(model="norm_unet", loss="ce+dice", schedule="cosine").optimizer
'adam'
>>> # train_model(["data/au5"], TrainConfig(model="norm_unet"), "runs/norm")      # → checkpoint dir
>>> # cross_validate(["data/au5"], TrainConfig(), "runs/cv", folds=5)            # → summary DataFrame

Calling the package, ``nanoseg.train(dataset_dirs, config, out_dir)``, is :func:`train_model`.
"""

from nanoseg._lazy import lazy_attributes, make_callable
from nanoseg.train.config import TrainConfig
from nanoseg.train.cv import cross_validate
from nanoseg.train.loop import TrainingData, plot_curves, train_model
from nanoseg.train.losses import SegmentationLoss, hard_dice, soft_dice

__all__ = ["SegmentationLoss", "TrainConfig", "TrainingData", "cross_validate", "hard_dice", "plot_curves",
           "soft_dice", "train_model"]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "evaluate_patches": "nanoseg.train.loop", "resolve_device": "nanoseg.train.loop",
    "inverse_frequency_weights": "nanoseg.train.losses",
}, submodules=["config", "cv", "loop", "losses"])

make_callable(__name__, train_model)  # ns.train(dataset_dirs, config, out_dir) is train_model
