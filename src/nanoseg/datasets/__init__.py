"""On-disk datasets (zarr + parquet), patching, grouped splits, augmentation and torch Datasets."""

from nanoseg.datasets.store import Dataset, DatasetWriter, open_dataset

__all__ = ["Dataset", "DatasetWriter", "open_dataset"]
