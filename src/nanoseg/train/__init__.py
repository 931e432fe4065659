"""Training: losses, the training loop with checkpoint selection and resume, grouped cross-validation.

Example
-------
>>> from nanoseg.train import TrainConfig
>>> TrainConfig(model="norm_unet", loss="ce+dice", schedule="cosine").optimizer
'adam'
>>> # train_model(["data/au5"], TrainConfig(model="norm_unet"), "runs/norm")      # → checkpoint dir
>>> # cross_validate(["data/au5"], TrainConfig(), "runs/cv", folds=5)            # → summary DataFrame
"""

from nanoseg.train.config import TrainConfig
from nanoseg.train.cv import cross_validate
from nanoseg.train.loop import TrainingData, evaluate_patches, plot_curves, resolve_device, train_model
from nanoseg.train.losses import SegmentationLoss, hard_dice, inverse_frequency_weights, soft_dice

__all__ = [
    "SegmentationLoss", "TrainConfig", "TrainingData", "cross_validate", "evaluate_patches", "hard_dice",
    "inverse_frequency_weights", "plot_curves", "resolve_device", "soft_dice", "train_model",
]
