"""Flat-field correction: a robust 2-D Bézier (Bernstein-polynomial) background, divided out.

The protocol of Sytwu et al. (see SCIENCE.md): fit a smooth surface of order (2, 2) to the image at
¼ scale by least squares, reweight twice with ``w = exp(-3 e / 2⟨e⟩)`` (``e`` = |residual|) so that
particles and other strong features stop pulling the surface, evaluate it at full resolution and
divide it out. The fit uses the separable structure of the tensor-product basis, so memory stays at
a few image-sized arrays even for 4096² frames.
"""

from __future__ import annotations

from math import comb

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.preprocess._checks import as_image, choice, number


def bernstein_basis(n_samples, order: int) -> np.ndarray:
    """Bernstein polynomials ``B_{i,order}(u)``, ``i = 0…order``.

    ``n_samples`` is either a count (then ``u`` = pixel centres ``(k + ½) / n_samples``) or an array
    of positions ``u`` in [0, 1]. Returns an array of shape ``(len(u), order + 1)``; rows sum to 1.

    >>> bernstein_basis(4, 2).sum(axis=1)
    array([1., 1., 1., 1.])
    """
    if np.ndim(n_samples) == 0:
        u = (np.arange(n_samples) + 0.5) / n_samples
    else:
        u = np.asarray(n_samples, dtype=np.float64)
    i = np.arange(order + 1)
    coeff = np.array([comb(order, k) for k in i], dtype=np.float64)
    return coeff * u[:, None] ** i * (1.0 - u[:, None]) ** (order - i)


def _weighted_fit(image: np.ndarray, weights: np.ndarray, bu: np.ndarray, bv: np.ndarray) -> np.ndarray:
    """Control points C minimizing Σ w (image − Bu C Bvᵀ)², using the separable basis."""
    p, q = bu.shape[1], bv.shape[1]
    gu = (bu[:, :, None] * bu[:, None, :]).reshape(bu.shape[0], p * p)
    gv = (bv[:, :, None] * bv[:, None, :]).reshape(bv.shape[0], q * q)
    normal = (gu.T @ weights @ gv).reshape(p, p, q, q).transpose(0, 2, 1, 3).reshape(p * q, p * q)
    rhs = (bu.T @ (weights * image) @ bv).reshape(p * q)
    coeffs, *_ = np.linalg.lstsq(normal, rhs, rcond=None)
    return coeffs.reshape(p, q)


def fit_background(image, *, order=(2, 2), scale=0.25, n_reweight=2, exclude=None) -> np.ndarray:
    """The robust Bézier background surface alone (float64, full resolution); see :func:`flat_field`.

    ``exclude`` (a boolean array of the image's shape, True = not background) gives those pixels no weight
    in the fit: each reduced bin is the mean of its included pixels, weighted by their fraction.

    >>> yy, xx = np.mgrid[:64, :64] / 64
    >>> image = 100 * (1 + 0.3 * xx); image[16:48, 16:48] *= 0.5      # a big dark particle
    >>> particle = np.zeros((64, 64), bool); particle[16:48, 16:48] = True
    >>> plain = fit_background(image)
    >>> masked = fit_background(image, exclude=particle)
    >>> bool(np.allclose(masked, 100 * (1 + 0.3 * xx), rtol=1e-6)), bool(plain[32, 32] < 95)
    (True, True)
    """
    step = "flat_field"
    array = as_image(image, step=step)
    included = None
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != array.shape:
            raise NanosegError(f"flat_field: exclude mask {exclude.shape} differs from the image {array.shape}")
        if exclude.all():
            raise NanosegError("flat_field: the exclude mask covers the whole image; nothing is left to fit")
        included = (~exclude).astype(np.float64)
    order = _order(order)
    scale = number(scale, "scale", step=step, minimum=0, strict_min=True, maximum=1)
    n_reweight = number(n_reweight, "n_reweight", step=step, minimum=0, integer=True)
    small_shape = tuple(max(o + 1, round(n * scale)) for n, o in zip(array.shape, order, strict=True))
    if any(s > n for s, n in zip(small_shape, array.shape, strict=True)):
        raise NanosegError(f"flat_field: image {array.shape} is too small for a surface of order {order}",
                           hint="use a lower order")
    # reduce by exact area averaging over bins; the basis is evaluated at each bin's true centre
    edges = [np.linspace(0, n, m + 1).round().astype(int) for n, m in zip(array.shape, small_shape, strict=True)]
    def reduce(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(values, edges[0][:-1], axis=0), edges[1][:-1], axis=1)

    areas = np.outer(np.diff(edges[0]), np.diff(edges[1]))
    if included is None:
        small, prior = reduce(array) / areas, np.ones(small_shape)
    else:
        counts = reduce(included)
        small = reduce(array * included) / np.maximum(counts, 1.0)
        prior = counts / areas  # a bin's weight: the fraction of its pixels that are background
    bu, bv = ((bernstein_basis((e[:-1] + e[1:]) / 2 / n, o)) for e, n, o in zip(edges, array.shape, order, strict=True))
    weights = prior
    coeffs = _weighted_fit(small, weights, bu, bv)
    for _ in range(n_reweight):
        error = np.abs(small - bu @ coeffs @ bv.T)
        mean_error = float((error * prior).sum() / prior.sum())
        if mean_error == 0:  # the surface is exact: nothing left to reweight
            break
        weights = prior * np.exp(-3.0 * error / (2.0 * mean_error))
        coeffs = _weighted_fit(small, weights, bu, bv)
    return bernstein_basis(array.shape[0], order[0]) @ coeffs @ bernstein_basis(array.shape[1], order[1]).T


def flat_field(image, *, order=(2, 2), scale=0.25, n_reweight=2, mode="divide", exclude=None):
    """Remove uneven illumination with a robust 2-D Bézier surface.

    Parameters
    ----------
    image : 2-D array
        Raw intensities (counts); for ``mode="divide"`` the fitted background must stay positive.
    order : (int, int)
        Polynomial order of the surface along rows and columns (Sytwu: (2, 2)). Higher orders follow
        finer illumination structure but start to follow large particles too.
    scale : float in (0, 1]
        The fit runs on the image reduced by this factor (area-averaged bins); 0.25 = ¼ scale.
    n_reweight : int
        Rounds of reweighting ``w = exp(-3e / 2⟨e⟩)`` after the first unweighted fit (Sytwu: 2);
        0 gives a plain least-squares fit.
    mode : {"divide", "subtract"}
        ``"divide"`` (multiplicative illumination, the protocol) returns ``image / background``
        (≈ 1 on the support); ``"subtract"`` returns ``image − background + mean(background)``.
    exclude : boolean array, optional
        Pixels known not to be background (e.g. the true particle mask of a simulated crop) get no weight
        in the fit. On a small crop where particles cover a large fraction, the robust fit still bends
        into them and divides part of their contrast away; a real 4096² frame, with a few per cent of
        particles, does not have this problem.

    Returns
    -------
    corrected : float32 array
    background : float32 array, the fitted surface at full resolution

    Example
    -------
    >>> yy, xx = np.mgrid[:64, :64] / 64
    >>> image = 100 * (1 + 0.3 * xx - 0.2 * yy ** 2)
    >>> corrected, background = flat_field(image)
    >>> bool(np.allclose(corrected, 1.0, atol=1e-3))
    True
    """
    choice(mode, "mode", ("divide", "subtract"), step="flat_field")
    array = as_image(image, step="flat_field")
    background = fit_background(array, order=order, scale=scale, n_reweight=n_reweight, exclude=exclude)
    if mode == "divide" and not can_divide(background):
        raise NanosegError(
            "flat_field: the fitted background reaches zero or below, so dividing by it is meaningless",
            hint="apply flat_field to raw positive intensities (before standardize), or use mode='subtract'",
        )
    return _corrected(array, background, mode), background.astype(np.float32)


def can_divide(background: np.ndarray) -> bool:
    """True when a fitted background stays positive everywhere, so ``image / background`` means something."""
    return bool(np.min(background) > 0)


def _corrected(array: np.ndarray, background: np.ndarray, mode: str) -> np.ndarray:
    if mode == "divide":
        return (array / background).astype(np.float32)
    return (array - background + background.mean()).astype(np.float32)


def flat_field_or_subtract(image, *, order=(2, 2), scale=0.25, n_reweight=2, mode="divide", exclude=None
                           ) -> tuple[np.ndarray, str | None]:
    """:func:`flat_field` that never fails on a dark background: ``(corrected, note)``.

    When ``mode="divide"`` is impossible because the fitted background reaches zero or below (HAADF-STEM
    and dark-field images: a near-zero background with bright particles, or a detector offset), the
    background is subtracted instead (``mode="subtract"``) and ``note`` says so; otherwise ``note`` is None
    and the result is exactly :func:`flat_field`'s. Used by :class:`~nanoseg.preprocess.Pipeline`.

    >>> image = np.zeros((32, 32)); image[4:12, 4:12] = 100.0   # bright particle, zero background
    >>> corrected, note = flat_field_or_subtract(image)
    >>> corrected.shape, "subtracted" in note
    ((32, 32), True)
    """
    choice(mode, "mode", ("divide", "subtract"), step="flat_field")
    array = as_image(image, step="flat_field")
    background = fit_background(array, order=order, scale=scale, n_reweight=n_reweight, exclude=exclude)
    if mode == "subtract" or can_divide(background):
        return _corrected(array, background, mode), None
    note = (f"flat_field: the fitted background reaches {float(background.min()):.4g} (≤ 0; mean "
            f"{float(background.mean()):.4g}), as on a HAADF-STEM or dark-field image, so it was subtracted "
            "instead of divided (mode='subtract'); the network may see another contrast than in training "
            "(pipeline=SPEC with the step {name: flat_field, mode: subtract} makes this choice explicit)")
    return _corrected(array, background, "subtract"), note


def _order(order) -> tuple[int, int]:
    if isinstance(order, int | np.integer) and not isinstance(order, bool):
        order = (order, order)
    try:
        pair = tuple(order)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(o, int | np.integer) and not isinstance(o, bool) and 0 <= o <= 10
                                 for o in pair):
        raise NanosegError(f"flat_field: parameter order must be two integers 0…10 (rows, cols), got {order!r}")
    return int(pair[0]), int(pair[1])
