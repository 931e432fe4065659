"""Resampling to a target pixel size: how a model trained at one magnification is applied at another.

The new shape is ``round(shape × from / to)``; because it is rounded, the pixel size actually reached
is ``field of view / new shape``, which :func:`resample_micrograph` records exactly. Pixel *centres*
are aligned (the field of view is kept), in both methods.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import resize

from nanoseg.errors import NanosegError
from nanoseg.preprocess._checks import as_image, choice, number

MAX_PIXELS = 1 << 28  # 16384² — beyond this a typo in a pixel size is far more likely than a real need


def resampled_shape(shape, *, from_pixel_size_nm, to_pixel_size_nm) -> tuple[int, int]:
    """The output shape for a pixel-size change: each side ``round(n × from / to)``, at least 1.

    >>> resampled_shape((100, 50), from_pixel_size_nm=0.02, to_pixel_size_nm=0.03)
    (67, 33)
    """
    step = "resample"
    src = number(from_pixel_size_nm, "from_pixel_size_nm", step=step, minimum=0, strict_min=True)
    dst = number(to_pixel_size_nm, "to_pixel_size_nm", step=step, minimum=0, strict_min=True)
    new = tuple(max(1, int(round(n * src / dst))) for n in shape)
    if new[0] * new[1] > MAX_PIXELS:
        raise NanosegError(f"resample: {shape} at {src} nm/px → {dst} nm/px would give {new} pixels",
                           hint="check the pixel sizes (both in nm)")
    return new  # type: ignore[return-value]


def _fourier_axis(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Band-limited resampling of one axis to ``m`` samples, centre-aligned, without wrap-around.

    The signal is extended by its mirror image (period 2n, continuous at the borders, so no ringing
    from a jump), its spectrum is shifted so that the new pixel centres ``(k + ½)·n/m − ½`` fall on
    the sampling grid, then cropped or zero-padded to ``m + 1`` frequencies.
    """
    n = x.shape[axis]
    if m == n:
        return x
    spectrum = np.fft.rfft(np.concatenate([x, np.flip(x, axis)], axis=axis), axis=axis)
    shift = 0.5 * n / m - 0.5  # first new centre, in old pixel units
    freqs = np.arange(n + 1)
    phase = np.exp(2j * np.pi * freqs * shift / (2 * n))
    shape = [1] * x.ndim
    shape[axis] = n + 1
    spectrum = spectrum * phase.reshape(shape)
    if m > n:  # the old Nyquist bin stands for +n and −n: split it
        index = [slice(None)] * x.ndim
        index[axis] = n
        spectrum[tuple(index)] *= 0.5
    out = np.fft.irfft(spectrum, 2 * m, axis=axis) * (m / n)
    return np.take(out, np.arange(m), axis=axis)


def resample(image, *, from_pixel_size_nm, to_pixel_size_nm, method="fourier"):
    """Resample an image from one pixel size to another (field of view kept, mean intensity kept).

    Parameters
    ----------
    image : 2-D array
    from_pixel_size_nm, to_pixel_size_nm : float
        Pixel size of the input and the wanted pixel size, in nm. ``to > from`` shrinks the image.
    method : {"fourier", "spatial"}
        ``"fourier"``: band-limited interpolation by cropping / zero-padding the spectrum (of the
        mirror-extended image, so borders do not ring); downsampling removes exactly the frequencies
        the new grid cannot hold. ``"spatial"``: :func:`skimage.transform.resize`, bilinear, with a
        Gaussian anti-aliasing filter when shrinking.

    Returns
    -------
    float32 array of shape :func:`resampled_shape`.

    Example
    -------
    >>> img = np.random.default_rng(0).random((64, 64))
    >>> out = resample(img, from_pixel_size_nm=0.02, to_pixel_size_nm=0.04)
    >>> out.shape, bool(abs(out.mean() - img.mean()) < 1e-6)
    ((32, 32), True)
    """
    array = as_image(image, step="resample")
    choice(method, "method", ("fourier", "spatial"), step="resample")
    new_shape = resampled_shape(array.shape, from_pixel_size_nm=from_pixel_size_nm,
                                to_pixel_size_nm=to_pixel_size_nm)
    return _to_shape(array, new_shape, method)


def _to_shape(array: np.ndarray, new_shape: tuple[int, int], method: str) -> np.ndarray:
    if new_shape == array.shape:
        return array.astype(np.float32)
    if method == "fourier":
        out = _fourier_axis(_fourier_axis(array, new_shape[0], 0), new_shape[1], 1)
    else:
        shrinking = any(m < n for m, n in zip(new_shape, array.shape, strict=True))
        out = resize(array, new_shape, order=1, mode="reflect", anti_aliasing=shrinking, preserve_range=True)
    return out.astype(np.float32)


def resample_to_shape(image, shape, *, method="fourier"):
    """Resample an image to an exact ``shape`` over the same field of view (e.g. to bring a probability
    map predicted at the model's pixel size back onto the original frame, whatever the rounding).

    >>> resample_to_shape(np.ones((67, 67)), (100, 100)).shape
    (100, 100)
    """
    array = as_image(image, step="resample")
    choice(method, "method", ("fourier", "spatial"), step="resample")
    try:
        new_shape = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        new_shape = ()
    if len(new_shape) != 2 or min(new_shape) < 1 or new_shape[0] * new_shape[1] > MAX_PIXELS:
        raise NanosegError(f"resample: shape must be two positive integers (rows, cols), got {shape!r}")
    return _to_shape(array, new_shape, method)  # type: ignore[arg-type]


def resample_mask(mask, *, from_pixel_size_nm, to_pixel_size_nm):
    """Resample a binary mask (nonzero = particle) without inventing labels: the 0/1 mask is resampled
    as a float image (bilinear, anti-aliased when shrinking) and thresholded at 0.5.

    Returns a uint8 mask of 0/1 with shape :func:`resampled_shape`.

    >>> m = np.zeros((8, 8), np.uint8); m[2:6, 2:6] = 255
    >>> resample_mask(m, from_pixel_size_nm=1, to_pixel_size_nm=2).tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    array = np.asarray(mask)
    if array.ndim != 2 or array.size == 0:
        raise NanosegError(f"resample_mask: expected a non-empty 2-D mask, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise NanosegError("resample_mask: the mask contains NaN/inf values")
    binary = (array > 0).astype(np.float64)
    new_shape = resampled_shape(binary.shape, from_pixel_size_nm=from_pixel_size_nm,
                                to_pixel_size_nm=to_pixel_size_nm)
    if new_shape == binary.shape:
        return binary.astype(np.uint8)
    shrinking = any(m < n for m, n in zip(new_shape, binary.shape, strict=True))
    out = resize(binary, new_shape, order=1, mode="edge", anti_aliasing=shrinking, preserve_range=True)
    return (out >= 0.5).astype(np.uint8)


def resample_micrograph(micrograph, pixel_size_nm, *, method="fourier"):
    """Resample a :class:`~nanoseg.io.Micrograph` to ``pixel_size_nm`` and recalibrate it.

    The output's ``pixel_size_nm`` is the size actually reached (field of view / new shape, averaged
    over the two axes, which differ by < 0.5 px / side); the per-axis values, the requested size and
    the original size are kept in ``metadata`` (``pixel_size_nm_yx``, ``requested_pixel_size_nm``,
    ``original_pixel_size_nm``, ``original_shape``).

    >>> from nanoseg.io import Micrograph
    >>> m = Micrograph(np.ones((100, 100)), pixel_size_nm=0.02)
    >>> out = resample_micrograph(m, 0.03)
    >>> out.shape, round(out.pixel_size_nm, 6)
    ((67, 67), 0.029851)
    """
    if micrograph.pixel_size_nm is None:
        raise NanosegError("resample: the image has no pixel size, so it cannot be resampled to "
                           f"{pixel_size_nm} nm/px", path=micrograph.source,
                           hint="give the pixel size (e.g. Micrograph(..., pixel_size_nm=0.02)) or drop the resample step")
    data = resample(micrograph.data, from_pixel_size_nm=micrograph.pixel_size_nm,
                    to_pixel_size_nm=pixel_size_nm, method=method)
    old_shape = micrograph.shape
    per_axis = [n * micrograph.pixel_size_nm / m for n, m in zip(old_shape, data.shape, strict=True)]
    out = micrograph.with_data(data, pixel_size_nm=float(np.mean(per_axis)))
    out.metadata.setdefault("original_pixel_size_nm", micrograph.pixel_size_nm)
    out.metadata.setdefault("original_shape", list(old_shape))
    out.metadata["requested_pixel_size_nm"] = float(pixel_size_nm)
    out.metadata["pixel_size_nm_yx"] = per_axis
    return out
