"""Cut images and masks into patches with provenance (image id, y, x and the image's metadata).

Images are optionally resampled to a common pixel size and preprocessed *as whole images* first (the
Sytwu protocol standardizes the full frame, then cuts non-overlapping 512² patches and keeps those with
more than 400 particle pixels); then patches are cut on a regular grid (``stride`` = ``patch_size`` for
non-overlapping patches). An image smaller than a patch is reflect-padded up to one patch.

Example
-------
>>> import numpy as np, tempfile
>>> from nanoseg.datasets import DatasetWriter, open_dataset
>>> root = tempfile.mkdtemp()
>>> with DatasetWriter(root) as w:
...     mask = np.zeros((64, 64), np.uint8); mask[5:15, 5:15] = 1
...     w.add("a", np.random.default_rng(0).normal(size=(64, 64)), mask, {"material": "Au"})
>>> p = extract_patches(open_dataset(root), patch_size=32, min_particle_px=50)
>>> p.images.shape, p.table.loc[0, "image_id"], int(p.table.loc[0, "particle_px"]), p.table.loc[0, "material"]
((1, 32, 32), 'a', 100, 'Au')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError


@dataclass
class PatchSet:
    """Patches (``images`` float32 (N, P, P), ``masks`` uint8 (N, P, P)) and one ``table`` row per patch."""

    images: np.ndarray
    masks: np.ndarray
    table: pd.DataFrame

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep) -> PatchSet:
        keep = np.asarray(keep)
        return PatchSet(self.images[keep], self.masks[keep], self.table.iloc[keep].reset_index(drop=True))

    @staticmethod
    def concatenate(sets: Sequence[PatchSet]) -> PatchSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            raise NanosegError("no patches to concatenate")
        return PatchSet(np.concatenate([s.images for s in sets]), np.concatenate([s.masks for s in sets]),
                        pd.concat([s.table for s in sets], ignore_index=True))


def patch_origins(shape: tuple[int, int], patch_size: int, stride: int | None = None) -> list[tuple[int, int]]:
    """Top-left corners of the patches on a regular grid (the last row/column of patches may stop short
    of the border when the size is not a multiple of the stride, as in the Sytwu code).

    >>> patch_origins((100, 64), 32)
    [(0, 0), (0, 32), (32, 0), (32, 32), (64, 0), (64, 32)]
    """
    stride = patch_size if stride is None else int(stride)
    if patch_size < 1 or stride < 1:
        raise NanosegError(f"patch_size and stride must be positive, got {patch_size}, {stride}")
    h, w = shape
    ys = range(0, max(h - patch_size, 0) + 1, stride)
    xs = range(0, max(w - patch_size, 0) + 1, stride)
    return [(y, x) for y in ys for x in xs]


def patches_from_array(image: np.ndarray, mask: np.ndarray, *, patch_size: int, stride: int | None = None,
                       min_particle_px: int = 0) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    """Patches of one image/mask pair; returns images, masks and (y, x, particle_px) per kept patch.

    Patches with ``particle_px <= min_particle_px`` are dropped when ``min_particle_px > 0``
    (the "> N particle pixels" rule).
    """
    image = np.asarray(image, dtype=np.float32)
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    if image.shape != mask.shape or image.ndim != 2:
        raise NanosegError(f"image {image.shape} and mask {mask.shape} must be equal 2-D shapes")
    ph, pw = max(0, patch_size - image.shape[0]), max(0, patch_size - image.shape[1])
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw)), mode="reflect" if min(image.shape) > 1 else "edge")
        mask = np.pad(mask, ((0, ph), (0, pw)), mode="reflect" if min(mask.shape) > 1 else "edge")
    imgs, msks, where = [], [], []
    for y, x in patch_origins(image.shape, patch_size, stride):
        m = mask[y: y + patch_size, x: x + patch_size]
        n = int(m.sum())
        if min_particle_px > 0 and n <= min_particle_px:
            continue
        imgs.append(image[y: y + patch_size, x: x + patch_size])
        msks.append(m)
        where.append((y, x, n))
    shape = (0, patch_size, patch_size)
    return (np.stack(imgs) if imgs else np.zeros(shape, np.float32),
            np.stack(msks) if msks else np.zeros(shape, np.uint8), where)


def prepare_image(image: np.ndarray, mask: np.ndarray, *, pixel_size_nm: float | None,
                  to_pixel_size_nm: float | None, pipeline: Callable | None,
                  image_id: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Resample an image/mask pair to ``to_pixel_size_nm`` (if given) and run ``pipeline`` on the image."""
    if to_pixel_size_nm is not None:
        if pixel_size_nm is None or not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
            raise NanosegError(f"image {image_id!r} has no pixel size, so it cannot be resampled to "
                               f"{to_pixel_size_nm} nm/px", hint="add pixel_size_nm to the metadata or set "
                               "pixel_size_nm: null in the training config")
        if not np.isclose(pixel_size_nm, to_pixel_size_nm, rtol=1e-6):
            from nanoseg.preprocess import resample, resample_mask

            image = resample(image, from_pixel_size_nm=pixel_size_nm, to_pixel_size_nm=to_pixel_size_nm)
            mask = resample_mask(mask, from_pixel_size_nm=pixel_size_nm, to_pixel_size_nm=to_pixel_size_nm)
    if pipeline is not None:
        image = pipeline(image)
    return np.asarray(image, dtype=np.float32), (np.asarray(mask) > 0).astype(np.uint8)


def extract_patches(dataset, *, patch_size: int, stride: int | None = None, min_particle_px: int = 0,
                    ids: Sequence[str] | None = None, pixel_size_nm: float | None = None,
                    pipeline: Callable | None = None, progress: bool = False) -> PatchSet:
    """Patches of every image (or of ``ids``) of a :class:`~nanoseg.datasets.Dataset`, with provenance.

    Parameters
    ----------
    dataset : an open dataset.
    patch_size, stride : patch side and grid step in pixels (after resampling); ``stride=None`` = non-overlapping.
    min_particle_px : keep only patches with more particle pixels than this (0 keeps all).
    ids : image ids to use (default all).
    pixel_size_nm : resample every image to this pixel size first (None keeps each image's own).
    pipeline : a callable run on each whole (resampled) image, e.g. a ``nanoseg.preprocess.Pipeline``.

    The table has ``image_id``, ``y``, ``x``, ``particle_px``, ``patch_pixel_size_nm`` and every metadata column.
    """
    from nanoseg._util import progress_iter

    ids = list(dataset.ids if ids is None else ids)
    meta = dataset.meta.set_index(dataset.meta["id"].astype(str))
    imgs, msks, rows = [], [], []
    for image_id in progress_iter(ids, "cutting patches", enabled=progress):
        if image_id not in meta.index:
            raise NanosegError(f"no image {image_id!r} in the dataset", path=dataset.root)
        row = meta.loc[image_id].to_dict()
        px = row.get("pixel_size_nm")
        px = None if px is None or pd.isna(px) else float(px)
        image, mask = prepare_image(dataset.image(image_id), dataset.mask(image_id), pixel_size_nm=px,
                                    to_pixel_size_nm=pixel_size_nm, pipeline=pipeline, image_id=image_id)
        pi, pm, where = patches_from_array(image, mask, patch_size=patch_size, stride=stride,
                                           min_particle_px=min_particle_px)
        imgs.append(pi)
        msks.append(pm)
        for y, x, n in where:
            rows.append({"image_id": image_id, "y": y, "x": x, "particle_px": n,
                         "patch_pixel_size_nm": pixel_size_nm if pixel_size_nm is not None else px, **row})
    shape = (0, patch_size, patch_size)
    table = pd.DataFrame(rows)
    if not rows:
        table = pd.DataFrame(columns=["image_id", "y", "x", "particle_px", "patch_pixel_size_nm"])
    return PatchSet(np.concatenate(imgs) if imgs else np.zeros(shape, np.float32),
                    np.concatenate(msks) if msks else np.zeros(shape, np.uint8), table)
