"""Tiled forward passes whose blended output equals one whole-image forward pass.

Why it is exact. A convolutional network's output pixel depends only on the input pixels within its
receptive field, and on *where the pooling grid falls*. So a tile whose start is a multiple of the
network's ``size_multiple`` computes, at every pixel farther than the network's context (half receptive
field, measured per side) from an interior tile edge, exactly what the whole-image pass computes. The blend
weights are zero within ``margin_px`` ≥ the context of an interior tile edge, rise with a raised-cosine ramp
over ``ramp_px`` and are 1 inside; pixels on the image border keep weight 1 (there the whole-image pass sees
the same zero padding). The weighted mean over tiles therefore reproduces the whole-image output (to float
rounding, ~1e-6), while the ramp keeps seams invisible even if a network's context were underestimated.

The image is padded once (reflect) to a multiple of ``size_multiple``; :func:`tile_layout` picks the
fewest tiles of at most ``tile_px`` per axis, shrinks them to the smallest size that still covers the axis
with overlaps ≥ ``2·margin_px + ramp_px``, and spaces them evenly (all positions multiples of
``size_multiple``): a 4096² frame at ``tile_px=1024`` for a 46-px context is 5 × 5 tiles of 912², 24 % more
pixels than the frame instead of 57 % with fixed-size tiles aligned to the end.

Example
-------
>>> tile_layout(1008, tile_px=512, margin_px=40, ramp_px=16, multiple=16)
(400, [0, 304, 608])
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import numpy as np

from nanoseg.errors import NanosegError

_CONTEXT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network → context (px)


def context_px(module, *, receptive_field_px: int | None = None) -> int:
    """The network's context: how many pixels on either side of an output pixel it reads (the larger side).

    Computed exactly with :func:`nanoseg.models.receptive_field_span` for every phase of the pooling grid,
    cached per network instance. For a network the span tracer does not know, the card's
    ``receptive_field_px`` (if given) bounds it, else the input gradient of a strip of output pixels is
    probed on random inputs (:func:`probe_context_px`).
    """
    if module in _CONTEXT_CACHE:
        return _CONTEXT_CACHE[module]
    if getattr(module, "context_px", None) is not None:  # an exported network: measured at export (its card)
        return int(module.context_px)
    from nanoseg.models import receptive_field_span

    multiple = int(getattr(module, "size_multiple", 1))
    length = multiple * max(64, math.ceil(1024 / multiple))
    middle = (length // 2) // multiple * multiple
    try:
        try:  # one span computation for all positions (fast path)
            from nanoseg.models.receptive import input_spans as _spans

            span = _spans(module, length)
            positions = np.arange(middle, middle + multiple)
            reach = int(max((positions - span.lo[positions]).max(), (span.hi[positions] - positions).max()))
        except ImportError:
            reach = 0
            for position in range(middle, middle + multiple):
                lo, hi = receptive_field_span(module, position, length=length)
                reach = max(reach, position - lo, hi - position)
    except NanosegError:
        if receptive_field_px is not None:
            reach = int(receptive_field_px)  # the whole field on each side: an upper bound
        else:
            reach = probe_context_px(module)
    _CONTEXT_CACHE[module] = int(reach)
    return int(reach)


def probe_context_px(module, *, length: int = 256, n_trials: int = 3) -> int:
    """Context of an arbitrary network measured by autograd: the farthest input pixel that gets a nonzero
    gradient from a strip of ``size_multiple`` output pixels in the middle (union over random inputs),
    plus one ``size_multiple`` of safety."""
    import torch

    multiple = int(getattr(module, "size_multiple", 1))
    length = -(-length // multiple) * multiple
    mid = (length // 2) // multiple * multiple
    reach = 0
    generator = torch.Generator().manual_seed(0)
    for _ in range(n_trials):
        x = torch.randn(1, 1, length, length, generator=generator, requires_grad=True)
        y = module(x)
        y[..., mid: mid + multiple, mid: mid + multiple].sum().backward()
        rows, cols = torch.nonzero(x.grad[0, 0].abs() > 0, as_tuple=True)
        if rows.numel():
            reach = max(reach, int(mid - rows.min()), int(rows.max() - (mid + multiple - 1)),
                        int(mid - cols.min()), int(cols.max() - (mid + multiple - 1)))
    if reach >= mid - multiple:
        raise NanosegError(f"cannot measure the network's receptive field (≥ {reach} px)",
                           hint="record receptive_field_px in the model card")
    return reach + multiple


def tile_layout(length: int, *, tile_px: int, margin_px: int, ramp_px: int, multiple: int) -> tuple[int, list[int]]:
    """Tile length and start positions along one axis of ``length`` (a multiple of ``multiple``) pixels.

    Uses the fewest tiles of at most ``tile_px`` whose consecutive starts are at most
    ``tile − 2·margin − ramp`` apart (so every pixel is covered by a tile interior and the cosine ramps
    overlap fully), then shrinks the tiles to the smallest multiple of ``multiple`` that still covers the
    axis, and spaces the starts evenly. Everything is a multiple of ``multiple`` (pooling-grid alignment).

    >>> tile_layout(4096, tile_px=1024, margin_px=46, ramp_px=16, multiple=16)
    (912, [0, 800, 1600, 2400, 3184])
    """
    tile_px = int(tile_px) // multiple * multiple
    if length <= tile_px:
        return length, [0]
    overlap = 2 * margin_px + ramp_px

    def stride(tile: int) -> int:
        return (tile - overlap) // multiple * multiple

    if stride(tile_px) < multiple:
        raise NanosegError(
            f"tile size {tile_px} px is too small for a context margin of {margin_px} px",
            hint=f"use a tile size of at least {overlap + 2 * multiple} px (or no tiling)",
        )
    n = -(-(length - tile_px) // stride(tile_px)) + 1
    tile = tile_px
    while tile - multiple >= overlap + multiple and (n - 1) * stride(tile - multiple) >= length - (tile - multiple):
        tile -= multiple
    units, gaps = (length - tile) // multiple, n - 1
    starts, position = [0], 0
    for k in range(gaps):
        position += (units // gaps + (1 if k < units % gaps else 0)) * multiple
        starts.append(position)
    return tile, starts


def tile_starts(length: int, *, tile_px: int, margin_px: int, ramp_px: int, multiple: int) -> list[int]:
    """Start positions of :func:`tile_layout` (the tile length may be smaller than ``tile_px``)."""
    return tile_layout(length, tile_px=tile_px, margin_px=margin_px, ramp_px=ramp_px, multiple=multiple)[1]


def count_tiles(shape: tuple[int, int], *, tile_px: int | None, margin_px: int, ramp_px: int, multiple: int
                ) -> int:
    """How many tiles :func:`tiled_apply` cuts an (unpadded) image of ``shape`` into."""
    h, w = (-(-n // multiple) * multiple for n in shape)
    if tile_px is None or (tile_px >= h and tile_px >= w):
        return 1
    return (len(tile_starts(h, tile_px=tile_px, margin_px=margin_px, ramp_px=ramp_px, multiple=multiple))
            * len(tile_starts(w, tile_px=tile_px, margin_px=margin_px, ramp_px=ramp_px, multiple=multiple)))


def axis_weights(size: int, *, at_start: bool, at_end: bool, margin_px: int, ramp_px: int) -> np.ndarray:
    """1-D blend weights of a tile: 0 within ``margin_px`` of an interior edge, a cosine ramp, then 1.

    >>> axis_weights(8, at_start=False, at_end=True, margin_px=2, ramp_px=2).round(2).tolist()
    [0.0, 0.0, 0.15, 0.85, 1.0, 1.0, 1.0, 1.0]
    """
    d = np.arange(size, dtype=np.float64)
    w = np.ones(size)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.clip((d - margin_px + 0.5) / max(ramp_px, 1), 0, 1))
    ramp[d < margin_px] = 0.0
    if not at_start:
        w *= ramp
    if not at_end:
        w *= ramp[::-1]
    return w


def _pad_plan(h: int, w: int, multiple: int, minimum: int = 0) -> tuple[int, int, str]:
    """Bottom/right padding (rows, columns) to a multiple of ``multiple`` (and at least ``minimum``) and the
    NumPy mode: ``reflect`` when it fits, else ``symmetric``, else ``wrap`` (tiny images)."""
    ph = max(math.ceil(h / multiple) * multiple, minimum) - h
    pw = max(math.ceil(w / multiple) * multiple, minimum) - w
    mode = "reflect" if ph < h and pw < w else "symmetric" if ph <= h and pw <= w else "wrap"
    return ph, pw, mode


def pad_to_multiple(image: np.ndarray, multiple: int, *, minimum: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad a 2-D image at the bottom/right to a multiple of ``multiple`` (and at least ``minimum``).

    This is the padding of every network input (:mod:`nanoseg.infer.network_input`); returns the padded image
    and the original ``(h, w)`` to crop outputs back to."""
    h, w = image.shape
    ph, pw, mode = _pad_plan(h, w, multiple, minimum)
    if ph == 0 and pw == 0:
        return image, (h, w)
    return np.pad(image, ((0, ph), (0, pw)), mode=mode), (h, w)


def pad_tensor_to_multiple(x, multiple: int):
    """:func:`pad_to_multiple` of a tensor ``(..., H, W)``: the same values, differentiable (index gathers).

    >>> import torch
    >>> x = torch.arange(12.0).reshape(3, 4)
    >>> bool((pad_tensor_to_multiple(x, 4).numpy() == pad_to_multiple(x.numpy(), 4)[0]).all())
    True
    """
    import torch

    h, w = x.shape[-2:]
    ph, pw, mode = _pad_plan(h, w, multiple)
    if ph == 0 and pw == 0:
        return x
    rows = torch.from_numpy(np.pad(np.arange(h), (0, ph), mode=mode)).to(x.device)
    cols = torch.from_numpy(np.pad(np.arange(w), (0, pw), mode=mode)).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _axis_plan(length: int, tile: int, starts: list[int], *, margin_px: int, ramp_px: int) -> list[tuple]:
    """Per tile start along one axis: (normalized weights, [lo, hi) where the weight is nonzero,
    [core_lo, core_hi) where it is exactly 1, i.e. no other tile contributes).

    The blend weights of a grid of tiles are separable, ``w(y, x) = wy(y)·wx(x)``, and so is their sum;
    dividing the 1-D weights by their per-axis sum makes them a partition of unity, so no weight-sum image
    and no division pass over the frame are needed."""
    raw = [axis_weights(tile, at_start=s == 0, at_end=s + tile == length, margin_px=margin_px, ramp_px=ramp_px)
           for s in starts]
    total = np.zeros(length)
    for s, w in zip(starts, raw, strict=True):
        total[s: s + tile] += w
    if (total <= 0).any():  # cannot happen with tile_layout; guard against future changes
        raise RuntimeError("tiled_apply: some pixels received no tile weight")
    plan = []
    for s, w in zip(starts, raw, strict=True):
        w = (w / total[s: s + tile]).astype(np.float32)
        nonzero = np.flatnonzero(w > 0)
        ones = np.flatnonzero(w == 1.0)
        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
        core = (int(ones[0]), int(ones[-1]) + 1) if len(ones) else (lo, lo)
        if len(ones) and not (w[core[0]: core[1]] == 1.0).all():
            core = (lo, lo)
        plan.append((w, (lo, hi), core))
    return plan


def tiled_apply(
    run_batch: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    tile_px: int | None,
    margin_px: int,
    multiple: int,
    ramp_px: int = 16,
    batch_size: int = 4,
    n_channels: int = 2,
    progress: Callable | None = None,
) -> np.ndarray:
    """Run ``run_batch`` ((N, H, W) float32 → (N, C, H, W) float32) over tiles of ``image``; blend.

    ``image`` must already be padded to a multiple of ``multiple`` (see :func:`pad_to_multiple`).
    ``tile_px=None`` (or a tile at least the image size) runs one whole-image pass.
    Returns the blended ``(n_channels, H, W)`` float32 output.

    Blending works in float32 with normalized separable weights: where a tile's weight is 1 (no other tile
    reaches there, most of the frame) its output is copied; only the overlap bands are multiplied and added.
    """
    h, w = image.shape
    if h % multiple or w % multiple:
        raise ValueError("tiled_apply: pad the image to the size multiple first")
    if tile_px is None or (tile_px >= h and tile_px >= w):
        return np.asarray(run_batch(image[None])[0], dtype=np.float32)
    th, ys = tile_layout(h, tile_px=tile_px, margin_px=margin_px, ramp_px=ramp_px, multiple=multiple)
    tw, xs = tile_layout(w, tile_px=tile_px, margin_px=margin_px, ramp_px=ramp_px, multiple=multiple)
    plan_y = dict(zip(ys, _axis_plan(h, th, ys, margin_px=margin_px, ramp_px=ramp_px), strict=True))
    plan_x = dict(zip(xs, _axis_plan(w, tw, xs, margin_px=margin_px, ramp_px=ramp_px), strict=True))
    out = np.zeros((n_channels, h, w), dtype=np.float32)
    positions = [(y, x) for y in ys for x in xs]
    batches = [positions[i: i + batch_size] for i in range(0, len(positions), batch_size)]
    for batch in batches if progress is None else progress(batches):
        tiles = np.stack([image[y: y + th, x: x + tw] for y, x in batch])
        result = run_batch(tiles)
        for (y, x), tile_out in zip(batch, result, strict=True):
            _blend_tile(out, tile_out, y, x, plan_y[y], plan_x[x])
    return out


def _blend_tile(out: np.ndarray, tile_out: np.ndarray, y: int, x: int, py: tuple, px: tuple) -> None:
    """Add one tile's weighted output: a copy where its weight is 1, multiply-adds in the overlap bands."""
    wy, (ylo, yhi), (ycl, ych) = py
    wx, (xlo, xhi), (xcl, xch) = px
    if ych > ycl and xch > xcl:  # the core: weight 1, no other tile contributes
        out[:, y + ycl: y + ych, x + xcl: x + xch] = tile_out[:, ycl: ych, xcl: xch]
    # the rest of the nonzero rectangle [ylo, yhi) × [xlo, xhi), as up to four bands around the core
    bands = []
    if ych > ycl and xch > xcl:
        bands += [((ylo, ycl), (xlo, xhi)), ((ych, yhi), (xlo, xhi)),
                  ((ycl, ych), (xlo, xcl)), ((ycl, ych), (xch, xhi))]
    else:
        bands.append(((ylo, yhi), (xlo, xhi)))
    for (r0, r1), (c0, c1) in bands:
        if r1 <= r0 or c1 <= c0:
            continue
        weight = wy[r0:r1, None] * wx[None, c0:c1]
        out[:, y + r0: y + r1, x + c0: x + c1] += tile_out[:, r0:r1, c0:c1] * weight
