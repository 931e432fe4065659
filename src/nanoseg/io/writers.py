"""Writers: calibrated TIFF, NPY and 8-bit PNG previews. All writes are atomic.

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> from nanoseg.io import read
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.tif"
>>> write_tiff(p, np.ones((4, 4), np.float32), pixel_size_nm=0.18)
>>> read(p).pixel_size_nm
0.18
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np

from nanoseg._util import atomic_path
from nanoseg.errors import NanosegError
from nanoseg.io.micrograph import Micrograph


@contextlib.contextmanager
def _writing(path):
    """Atomic write; OS errors (read-only folder, full disk) become one clear NanosegError."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OSError as exc:
        raise NanosegError(f"cannot write the file ({exc.strerror or exc})", path=path,
                           hint="check that the folder is writable and the disk has space") from None


def _unpack(image, pixel_size_nm):
    if isinstance(image, Micrograph):
        px = image.pixel_size_nm if pixel_size_nm is None else pixel_size_nm
        return image.data, px, image.dose_e_per_A2, dict(image.metadata)
    return np.asarray(image), pixel_size_nm, None, {}


def write_tiff(path: str | os.PathLike, image, *, pixel_size_nm: float | None = None) -> None:
    """Write an image (or a stack of frames) as an ImageJ TIFF with its calibration.

    The pixel size is stored the ImageJ way (X/YResolution = pixels per nm, unit ``nm`` in the
    ImageJ description), so ImageJ/Fiji, tifffile and :func:`nanoseg.io.read` all see it. The dose
    and metadata of a :class:`Micrograph` go into the ImageJ ``Info`` field as JSON and are read
    back by :func:`nanoseg.io.read`.

    Parameters
    ----------
    path : output ``.tif`` file (written atomically).
    image : a :class:`Micrograph`, a 2-D array, or a 3-D stack (frames, rows, cols).
        uint8/uint16/float32 are kept; other dtypes are stored as float32.
    pixel_size_nm : overrides (or supplies) the calibration, in nm per pixel.

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> write_tiff(pathlib.Path(tempfile.mkdtemp()) / "x.tif", np.zeros((8, 8)), pixel_size_nm=0.05)
    """
    import tifffile

    data, px, dose, meta = _unpack(image, pixel_size_nm)
    if data.ndim not in (2, 3):
        raise NanosegError(f"write_tiff takes a 2-D image or a 3-D stack, got shape {data.shape}", path=path)
    if data.dtype not in (np.uint8, np.uint16, np.float32):
        data = data.astype(np.float32)
    info = {"nanoseg": {"dose_e_per_A2": dose,
                        "metadata": {k: v for k, v in meta.items() if k not in ("format", "file_dtype")}}}
    ij_meta = {"Info": json.dumps(info, default=str)}
    if data.ndim == 3:
        ij_meta["axes"] = "TYX"
    kwargs = {}
    if px is not None:
        if not px > 0:
            raise NanosegError(f"pixel_size_nm must be > 0, got {px}", path=path)
        kwargs["resolution"] = (1.0 / px, 1.0 / px)
        ij_meta["unit"] = "nm"
    with _writing(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, metadata=ij_meta, **kwargs)


def write_npy(path: str | os.PathLike, image) -> None:
    """Write the pixel array (of a :class:`Micrograph` or an array) as ``.npy`` (no calibration).

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> write_npy(p, np.arange(4).reshape(2, 2))
    >>> np.load(p).tolist()
    [[0, 1], [2, 3]]
    """
    data = image.data if isinstance(image, Micrograph) else np.asarray(image)
    with _writing(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, data, allow_pickle=False)


def to_uint8(array: np.ndarray, *, percentile_clip: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Scale an image to 0…255, clipping at the given percentiles (robust to hot pixels).

    >>> to_uint8(np.array([[0.0, 1.0], [2.0, 3.0]]), percentile_clip=(0, 100)).tolist()
    [[0, 85], [170, 255]]
    """
    data = np.asarray(array, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(data.shape, np.uint8)
    low, high = np.percentile(finite, percentile_clip)
    if high <= low:
        return np.zeros(data.shape, np.uint8) + (0 if low == 0 else 128)
    scaled = (np.nan_to_num(data, nan=low) - low) / (high - low)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def write_png_preview(path: str | os.PathLike, array, *, percentile_clip: tuple[float, float] = (0.5, 99.5),
                      overlay_mask: np.ndarray | None = None,
                      outline_color: tuple[int, int, int] = (255, 40, 40)) -> None:
    """Write an 8-bit PNG preview of an image, optionally with a mask's outline drawn in colour.

    Parameters
    ----------
    path : output ``.png`` file (written atomically).
    array : a 2-D image or :class:`Micrograph`.
    percentile_clip : (low, high) percentiles mapped to black and white.
    overlay_mask : optional 2-D mask (nonzero = particle) or integer label image of the same shape; its
        one-pixel outline is drawn in ``outline_color`` (RGB 0–255); for a label image also the line between
        touching particles, so a split is visible.

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> img = np.random.default_rng(0).normal(size=(32, 32))
    >>> mask = np.zeros((32, 32), np.uint8); mask[8:20, 8:20] = 1
    >>> write_png_preview(pathlib.Path(tempfile.mkdtemp()) / "p.png", img, overlay_mask=mask)
    """
    import imageio.v3 as iio

    data = array.data if isinstance(array, Micrograph) else np.asarray(array)
    if data.ndim != 2:
        raise NanosegError(f"a preview needs a 2-D image, got shape {data.shape}", path=path)
    grey = to_uint8(data, percentile_clip=percentile_clip)
    if overlay_mask is not None:
        from scipy import ndimage

        mask = np.asarray(overlay_mask) > 0
        if mask.shape != grey.shape:
            raise NanosegError(f"overlay mask shape {mask.shape} differs from the image shape {grey.shape}",
                               path=path)
        outline = mask & ~ndimage.binary_erosion(mask, border_value=0)
        labels = np.asarray(overlay_mask)
        if np.issubdtype(labels.dtype, np.integer):  # label image: also where two particles meet
            from skimage.segmentation import find_boundaries

            outline |= mask & find_boundaries(labels, mode="inner")
        rgb = np.repeat(grey[..., None], 3, axis=2)
        rgb[outline] = np.asarray(outline_color, dtype=np.uint8)
        out = rgb
    else:
        out = grey
    with _writing(path) as tmp:
        iio.imwrite(tmp, out, extension=".png")
