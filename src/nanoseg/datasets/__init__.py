"""On-disk datasets (zarr + parquet), patching with provenance, grouped splits, augmentation, torch Datasets.

The torch ``PatchDataset`` lives in :mod:`nanoseg.datasets.torchdata` (imported lazily, so reading a dataset
does not import torch).
"""

from nanoseg.datasets.augment import AugmentConfig, augment_pair
from nanoseg.datasets.patches import PatchSet, extract_patches, patches_from_array, prepare_image
from nanoseg.datasets.splits import Split, grouped_kfold, grouped_split
from nanoseg.datasets.store import Dataset, DatasetWriter, open_dataset

__all__ = ["AugmentConfig", "Dataset", "DatasetWriter", "PatchSet", "Split", "augment_pair", "extract_patches",
           "grouped_kfold", "grouped_split", "open_dataset", "patches_from_array", "prepare_image"]
