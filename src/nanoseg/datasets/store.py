"""The on-disk dataset format: ``images.zarr``, ``masks.zarr`` (+ optional ``instances.zarr``), ``meta.parquet``.

One zarr array per image, keyed by the image id, so a dataset may mix frame sizes (wide in situ frames
next to 512² patches). ``meta.parquet`` has one row per image: ``id``, ``source``, ``session``,
``material``, ``diameter_nm``, ``pixel_size_nm``, ``dose_e_per_A2``, ``voltage_kV``, ``defocus_nm``,
``Cs_um``, ... (any extra columns are kept). Rows are written after the arrays, atomically, so an
interrupted writer leaves a dataset whose listed images are all complete; a new writer on the same
directory resumes (``writer.has(id)`` tells what is done).

Example
-------
>>> import numpy as np, tempfile
>>> root = tempfile.mkdtemp()
>>> with DatasetWriter(root) as w:
...     w.add("img0", np.zeros((8, 8)), np.ones((8, 8)), {"pixel_size_nm": 0.02, "material": "Au"})
>>> ds = open_dataset(root)
>>> len(ds), int(ds.mask("img0").sum()), ds.meta.loc[0, "material"]
(1, 64, 'Au')
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from nanoseg._util import atomic_path
from nanoseg.errors import NanosegError
from nanoseg.io.micrograph import Micrograph

FORMAT_VERSION = 1
IMAGES, MASKS, INSTANCES, META, INFO = "images.zarr", "masks.zarr", "instances.zarr", "meta.parquet", "dataset.json"


def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _store_array(group: zarr.Group, name: str, array: np.ndarray) -> None:
    stored = group.create_array(name, shape=array.shape, dtype=array.dtype, chunks=array.shape, overwrite=True)
    stored[...] = array


def _check_id(image_id: str) -> str:
    image_id = str(image_id)
    if not image_id or "/" in image_id or image_id.startswith("."):
        raise NanosegError(f"invalid image id {image_id!r}", hint="use letters, digits, '-', '_' and '.'")
    return image_id


class DatasetWriter:
    """Add images, masks and metadata rows to a dataset directory; resumes an existing one.

    ``flush_every`` rows are buffered before ``meta.parquet`` is rewritten (atomically).
    """

    def __init__(self, root: str | os.PathLike, *, overwrite: bool = False, flush_every: int = 1,
                 info: dict[str, Any] | None = None):
        self.root = Path(root)
        if overwrite and self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._images = zarr.open_group(self.root / IMAGES, mode="a")
        self._masks = zarr.open_group(self.root / MASKS, mode="a")
        self._instances: zarr.Group | None = None
        meta_path = self.root / META
        self._rows: list[dict[str, Any]] = (
            pd.read_parquet(meta_path).to_dict("records") if meta_path.exists() else []
        )
        self._ids = {row["id"] for row in self._rows}
        self._pending = 0
        self.flush_every = max(1, int(flush_every))
        info_path = self.root / INFO
        stored_info = json.loads(info_path.read_text()) if info_path.exists() else {}
        stored_info.setdefault("format_version", FORMAT_VERSION)
        stored_info.update(info or {})
        info_path.write_text(json.dumps(stored_info, indent=2, default=str))

    def has(self, image_id: str) -> bool:
        return str(image_id) in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, image_id: str, image: np.ndarray, mask: np.ndarray, meta: dict[str, Any] | None = None,
            instances: np.ndarray | None = None) -> None:
        """Store one image (float32), its binary mask (uint8 0/1), optional instance labels (int32)."""
        image_id = _check_id(image_id)
        image = np.asarray(image, dtype=np.float32)
        mask = np.asarray(mask)
        if image.ndim != 2 or mask.shape != image.shape:
            raise NanosegError(f"image {image_id}: image {image.shape} and mask {mask.shape} must be equal 2-D shapes")
        if not np.isfinite(image).all():
            raise NanosegError(f"image {image_id} contains NaN/inf pixels")
        _store_array(self._images, image_id, image)
        _store_array(self._masks, image_id, (mask > 0).astype(np.uint8))
        if instances is not None:
            if instances.shape != image.shape:
                raise NanosegError(f"image {image_id}: instance labels {instances.shape} ≠ image {image.shape}")
            if self._instances is None:
                self._instances = zarr.open_group(self.root / INSTANCES, mode="a")
            _store_array(self._instances, image_id, np.asarray(instances, dtype=np.int32))
        row = {k: _plain(v) for k, v in (meta or {}).items()}
        row["id"] = image_id
        row.setdefault("height_px", image.shape[0])
        row.setdefault("width_px", image.shape[1])
        self._rows = [r for r in self._rows if r["id"] != image_id] + [row]
        self._ids.add(image_id)
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            _write_parquet_atomic(pd.DataFrame(self._rows), self.root / META)
        self._pending = 0

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _plain(value: Any) -> Any:
    """Make a metadata value storable in Parquet (numpy scalars → Python, lists/dicts → JSON text)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return json.dumps(np.asarray(value).tolist() if isinstance(value, np.ndarray) else value, default=str)
    return value


class Dataset:
    """Read access to a dataset directory. ``meta`` is a DataFrame in the order images were added."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not (self.root / META).exists() or not (self.root / IMAGES).exists():
            raise NanosegError(
                "not a nanoseg dataset (missing meta.parquet or images.zarr)",
                path=self.root,
                hint="create one with `nanoseg simulate` or nanoseg.datasets.DatasetWriter",
            )
        try:
            self.meta = pd.read_parquet(self.root / META)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise NanosegError(f"cannot read meta.parquet ({exc})", path=self.root, hint="the dataset is damaged") from exc
        self._images = zarr.open_group(self.root / IMAGES, mode="r")
        self._masks = zarr.open_group(self.root / MASKS, mode="r")
        self._instances = (
            zarr.open_group(self.root / INSTANCES, mode="r") if (self.root / INSTANCES).exists() else None
        )
        info_path = self.root / INFO
        self.info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}

    @property
    def ids(self) -> list[str]:
        return list(self.meta["id"])

    def __len__(self) -> int:
        return len(self.meta)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def row(self, image_id: str) -> dict[str, Any]:
        rows = self.meta[self.meta["id"] == image_id]
        if rows.empty:
            raise NanosegError(f"no image {image_id!r} in the dataset", path=self.root)
        return rows.iloc[0].to_dict()

    def image(self, image_id: str) -> np.ndarray:
        return np.asarray(self._images[image_id][...], dtype=np.float32)

    def mask(self, image_id: str) -> np.ndarray:
        return np.asarray(self._masks[image_id][...], dtype=np.uint8)

    def instances(self, image_id: str) -> np.ndarray | None:
        if self._instances is None or image_id not in self._instances:
            return None
        return np.asarray(self._instances[image_id][...])

    def micrograph(self, image_id: str) -> Micrograph:
        row = self.row(image_id)
        pixel = row.get("pixel_size_nm")
        dose = row.get("dose_e_per_A2")
        return Micrograph(
            self.image(image_id),
            pixel_size_nm=None if pixel is None or pd.isna(pixel) else float(pixel),
            dose_e_per_A2=None if dose is None or pd.isna(dose) else float(dose),
            metadata=row,
            source=f"{self.root}#{image_id}",
        )

    def query(self, tolerance: float = 0.05, **criteria: Any) -> list[str]:
        """Ids whose metadata match every criterion; numbers match within a relative ``tolerance``.

        A criterion may be a value, a (low, high) range, or a list of allowed values.

        >>> # ds.query(material="Au", dose_e_per_A2=(300, 500), pixel_size_nm=0.02)
        """
        keep = np.ones(len(self.meta), dtype=bool)
        for column, wanted in criteria.items():
            if column not in self.meta:
                raise NanosegError(f"no metadata column {column!r}", path=self.root,
                                   hint=f"columns are: {', '.join(self.meta.columns)}")
            values = self.meta[column]
            if isinstance(wanted, tuple) and len(wanted) == 2:
                keep &= (values >= wanted[0]).to_numpy() & (values <= wanted[1]).to_numpy()
            elif isinstance(wanted, list):
                keep &= values.isin(wanted).to_numpy()
            elif isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
                keep &= np.isclose(values.astype(float), float(wanted), rtol=tolerance, atol=0)
            else:
                keep &= (values == wanted).to_numpy()
        return list(self.meta.loc[keep, "id"])


def open_dataset(root: str | os.PathLike) -> Dataset:
    """Open a dataset directory for reading (see module docstring for the layout)."""
    return Dataset(root)
