"""Ground-truth masks: binary image files and circle lists, as ``uint8`` arrays of 0/1.

Example
-------
>>> import numpy as np
>>> m = masks_from_circles([(5, 5, 2)], (11, 11))
>>> int(m.sum())   # pixel centres within 2 px of (5, 5): 13
13
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nanoseg.errors import NanosegError

MASK_FORMATS = (".png", ".tif", ".tiff", ".npy")


def _load_mask_array(path: Path) -> np.ndarray:
    ext = path.suffix.lower()
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    if ext in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    import imageio.v3 as iio

    return iio.imread(path)


def read_mask(path: str | os.PathLike, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a binary mask file (PNG, TIFF or NPY) as a ``uint8`` array of 0 (background) / 1 (particle).

    Accepted encodings: bool, ``{0, 1}``, ``{0, 255}`` (and ``{0, 65535}`` for 16-bit files).
    An RGB(A) file is accepted when its colour channels are identical. Anything else (a greyscale
    photo, a JPEG with compression artefacts, a label image with several values) is an error.

    Parameters
    ----------
    path : the mask file.
    shape : expected (rows, cols), usually the image's shape; a mismatch is an error.

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.npy"
    >>> np.save(p, np.array([[0, 255], [255, 0]], np.uint8))
    >>> read_mask(p).tolist()
    [[0, 1], [1, 0]]
    """
    path = Path(path)
    if not path.exists():
        raise NanosegError("mask file not found", path=path, hint="check the path")
    if path.suffix.lower() not in MASK_FORMATS:
        raise NanosegError(f"unsupported mask format {path.suffix!r}", path=path,
                           hint="save masks as PNG, TIFF or NPY (JPEG compression breaks binary masks)")
    if path.stat().st_size == 0:
        raise NanosegError("the mask file is empty (0 bytes)", path=path)
    try:
        array = np.asarray(_load_mask_array(path))
    except Exception as exc:
        raise NanosegError(f"cannot read the mask ({type(exc).__name__}: {exc})"[:300], path=path,
                           hint="the file may be corrupt or truncated") from None
    if array.ndim == 3 and array.shape[-1] in (2, 3, 4):
        colours = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]
        if not np.all(colours == colours[..., :1]):
            raise NanosegError("the mask is a colour image, not a binary mask", path=path,
                               hint="save it as black (0) background and white (255) particles")
        array = colours[..., 0]
    if array.ndim != 2:
        raise NanosegError(f"a mask must be 2-D, got shape {array.shape}", path=path)
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise NanosegError(f"mask shape {array.shape} does not match the image shape {tuple(shape)}",
                           path=path, hint="masks must have exactly the image's pixels")
    if array.dtype == bool:
        return array.astype(np.uint8)
    values = np.unique(array)
    if not np.all(np.isfinite(values)):
        raise NanosegError("the mask contains NaN/inf values", path=path)
    allowed = [{0, 1}, {0, 255}, {0, 65535}]
    present = {float(v) for v in values}
    if not any(present <= s for s in allowed):
        shown = ", ".join(f"{v:g}" for v in sorted(present)[:6]) + (" …" if len(present) > 6 else "")
        raise NanosegError(
            f"not a binary mask: it holds {len(present)} different values ({shown})", path=path,
            hint="masks must be 0 = background and 1 or 255 = particle (no greyscale, no JPEG)",
        )
    return (array > 0).astype(np.uint8)


def read_circles(path: str | os.PathLike):
    """Read a circle list (CSV) as a pandas DataFrame.

    Columns: ``x, y, radius`` in pixels (x = column, y = row, origin at the centre of the top-left
    pixel), or ``x_nm, y_nm, radius_nm`` in nm (then :func:`masks_from_circles` needs
    ``pixel_size_nm``). Extra columns are kept.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.csv"
    >>> _ = p.write_text("x,y,radius\\n5,6,2.5\\n")
    >>> read_circles(p).to_dict("records")
    [{'x': 5.0, 'y': 6.0, 'radius': 2.5}]
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise NanosegError("circle list not found", path=path)
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except Exception as exc:
        raise NanosegError(f"cannot read the circle list ({type(exc).__name__}: {exc})"[:300], path=path,
                           hint="expected a CSV with columns x,y,radius (px) or x_nm,y_nm,radius_nm") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    _circle_columns(table, path)
    for column in ("x", "y", "radius", "x_nm", "y_nm", "radius_nm"):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
            if table[column].isna().any():
                raise NanosegError(f"column {column!r} has missing or non-numeric values", path=path)
    return table


def _circle_columns(table, path=None) -> str:
    if {"x", "y", "radius"} <= set(table.columns):
        return "px"
    if {"x_nm", "y_nm", "radius_nm"} <= set(table.columns):
        return "nm"
    raise NanosegError(f"circle list needs columns x,y,radius (px) or x_nm,y_nm,radius_nm; found {list(table.columns)}",
                       path=path)


def masks_from_circles(circles, shape: tuple[int, int], *, pixel_size_nm: float | None = None) -> np.ndarray:
    """Rasterize circles into a ``uint8`` 0/1 mask: a pixel is 1 when its centre lies within a circle.

    Parameters
    ----------
    circles : an (N, 3) array-like of (x, y, radius) in px, or a DataFrame from :func:`read_circles`
        (px columns ``x, y, radius`` or nm columns ``x_nm, y_nm, radius_nm``).
    shape : (rows, cols) of the mask.
    pixel_size_nm : needed when the circles are given in nm.

    Example
    -------
    >>> masks_from_circles([(2, 1, 1)], (3, 5)).tolist()
    [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
    """
    if len(tuple(shape)) != 2 or min(shape) <= 0:
        raise NanosegError(f"mask shape must be (rows, cols) > 0, got {shape}")
    if hasattr(circles, "columns"):
        table = circles.rename(columns=lambda c: str(c).strip().lower())
        if _circle_columns(table) == "px":
            xyr = table[["x", "y", "radius"]].to_numpy(float)
        else:
            if pixel_size_nm is None or not pixel_size_nm > 0:
                raise NanosegError("circles are given in nm but no pixel_size_nm was passed",
                                   hint="pass pixel_size_nm=, e.g. the image's Micrograph.pixel_size_nm")
            xyr = table[["x_nm", "y_nm", "radius_nm"]].to_numpy(float) / float(pixel_size_nm)
    else:
        xyr = np.asarray(circles, dtype=float)
        if xyr.size == 0:
            xyr = np.zeros((0, 3))
        if xyr.ndim != 2 or xyr.shape[1] != 3:
            raise NanosegError(f"circles must be rows of (x, y, radius), got an array of shape {xyr.shape}")
    if not np.all(np.isfinite(xyr)):
        raise NanosegError("circle list contains NaN/inf")
    if np.any(xyr[:, 2] < 0):
        raise NanosegError("circle radii must be ≥ 0")
    mask = np.zeros(shape, dtype=np.uint8)
    rows, cols = shape
    for x, y, r in xyr:
        r0, r1 = max(int(np.floor(y - r)), 0), min(int(np.ceil(y + r)) + 1, rows)
        c0, c1 = max(int(np.floor(x - r)), 0), min(int(np.ceil(x + r)) + 1, cols)
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        mask[r0:r1, c0:c1] |= ((yy - y) ** 2 + (xx - x) ** 2 <= r * r).astype(np.uint8)
    return mask
