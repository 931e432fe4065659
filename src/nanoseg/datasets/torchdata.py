"""A torch ``Dataset`` of patches, preprocessed once and cached in memory, augmented per sample.

Augmentation randomness is derived from ``(seed, epoch, index)`` only, so a sample is the same whatever
the number of DataLoader workers or processes, and a resumed run sees the same data as an uninterrupted one.
When the augmentation re-doses raw counts, the cached patches are the raw (resampled) counts and the
preprocessing pipeline runs per patch after re-dosing.

Example
-------
>>> import numpy as np
>>> ds = PatchDataset(np.zeros((3, 8, 8), np.float32), np.zeros((3, 8, 8), np.uint8))
>>> image, mask = ds[0]
>>> tuple(image.shape), mask.dtype
((1, 8, 8), torch.int64)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as _TorchDataset

from nanoseg.datasets.augment import AugmentConfig, augment_pair, redose_sample
from nanoseg.errors import NanosegError


class PatchDataset(_TorchDataset):
    """Patches as ``(image (1, P, P) float32, mask (P, P) int64)`` samples.

    Parameters
    ----------
    images, masks : arrays (N, P, P); images already preprocessed unless ``pipeline`` is given.
    augment : an :class:`AugmentConfig` (None: no augmentation, e.g. for validation).
    seed : base seed of the augmentation randomness; call :meth:`set_epoch` every epoch.
    pipeline : run per patch after re-dosing (only when the images are raw counts).
    doses_e_per_A2 : the recorded dose of each patch (needed for re-dosing).
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, *, augment: AugmentConfig | None = None,
                 seed: int = 0, pipeline: Callable | None = None,
                 doses_e_per_A2: Sequence[float] | None = None):
        images = np.ascontiguousarray(images, dtype=np.float32)
        masks = np.ascontiguousarray(masks, dtype=np.uint8)
        if images.ndim != 3 or images.shape != masks.shape:
            raise NanosegError(f"patches must be (N, P, P) images and masks of equal shape, got "
                               f"{images.shape} and {masks.shape}")
        self.images, self.masks = images, masks
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.pipeline = pipeline
        self.doses = None if doses_e_per_A2 is None else np.asarray(doses_e_per_A2, dtype=float)
        if augment is not None and augment.needs_raw_counts and self.doses is None:
            raise NanosegError("re-dosing augmentation needs the dose of every patch (dose_e_per_A2 metadata)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, index: int, *, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The (possibly augmented) numpy image and mask of patch ``index``."""
        image, mask = self.images[index], self.masks[index]
        epoch = self.epoch if epoch is None else epoch
        if self.augment is None:
            if self.pipeline is not None:
                image = self.pipeline(image)
            return image, mask
        rng = np.random.default_rng([self.seed, epoch, int(index)])
        if self.augment.needs_raw_counts:
            image = redose_sample(image, self.augment, rng, float(self.doses[index]))
        if self.pipeline is not None:
            image = self.pipeline(image)
        return augment_pair(image, mask, self.augment, rng)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.sample(int(index))
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
                torch.from_numpy(np.ascontiguousarray(mask)).long())
