"""On-disk datasets (zarr + parquet), patching with provenance, grouped splits, augmentation, torch Datasets.

The torch ``PatchDataset`` lives in :mod:`nanoseg.datasets.torchdata` (imported lazily, so reading a dataset
does not import torch).
"""

from nanoseg._lazy import lazy_attributes
from nanoseg.datasets.augment import AugmentConfig
from nanoseg.datasets.patches import PatchSet, extract_patches
from nanoseg.datasets.splits import Split, grouped_kfold, grouped_split
from nanoseg.datasets.store import Dataset, DatasetWriter, open_dataset

__all__ = [
    "AugmentConfig", "Dataset", "DatasetWriter", "PatchSet", "Split", "extract_patches", "grouped_kfold",
    "grouped_split", "open_dataset",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "augment_pair": "nanoseg.datasets.augment", "patches_from_array": "nanoseg.datasets.patches",
    "prepare_image": "nanoseg.datasets.patches",
}, submodules=["augment", "patches", "splits", "store", "torchdata"])
