"""Receptive field computed analytically from the layers.

The network is traced with ``torch.fx`` and the graph is run on *spans* instead of tensors: for every
position ``x`` along one axis of a feature map, the first and last input pixel it depends on. Each layer
maps spans exactly (a convolution takes the hull over its taps, a stride-2 transposed convolution over the
input pixels that reach an output pixel, a pool over its window, nearest upsampling copies, a concatenation
or a residual sum takes the hull of its operands, point-wise layers keep spans). Zero padding contributes
nothing, so spans are clipped at the borders, as the gradient is.

Because pooling and transposed convolutions make the dependence periodic in position, the receptive field
depends on where the output pixel sits; :func:`receptive_field` reports the largest extent over positions
far from the borders, :func:`receptive_field_span` the exact input rows of one output row. Kernels are
assumed square (the same along both axes), which holds for every nanoseg network.

Example
-------
>>> from torch import nn
>>> receptive_field(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 5, padding=4, dilation=2)))
11
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from nanoseg.errors import NanosegError


class _Span:
    """For each position of a 1-D feature axis, the first (``lo``) and last (``hi``) input pixel it sees."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.lo, self.hi = lo, hi

    def __len__(self) -> int:
        return len(self.lo)


def _pair(v) -> int:
    if isinstance(v, tuple):
        if len(set(v)) != 1:
            raise NanosegError("receptive_field: only square kernels, strides and paddings are supported")
        return int(v[0])
    return int(v)


def _gather(span: _Span, length_out: int, taps: list[np.ndarray]) -> _Span:
    """Hull over ``taps`` (arrays of input positions per output position; out-of-range = padding)."""
    n = len(span)
    lo = np.full(length_out, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(length_out, np.iinfo(np.int64).min, dtype=np.int64)
    for pos in taps:
        valid = (pos >= 0) & (pos < n)
        idx = np.clip(pos, 0, n - 1)
        lo = np.where(valid, np.minimum(lo, span.lo[idx]), lo)
        hi = np.where(valid, np.maximum(hi, span.hi[idx]), hi)
    return _Span(lo, hi)


def _conv_like(span: _Span, kernel: int, stride: int, padding: int, dilation: int) -> _Span:
    n = len(span)
    length_out = (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    j = np.arange(length_out)
    return _gather(span, length_out, [j * stride - padding + t * dilation for t in range(kernel)])


def _conv_transpose(span: _Span, m: nn.ConvTranspose2d) -> _Span:
    k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    d, op = _pair(m.dilation), _pair(m.output_padding)
    n = len(span)
    length_out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    o = np.arange(length_out)
    taps = []
    for t in range(k):
        num = o + p - t * d  # o = i*s - p + t*d  →  i = (o + p - t*d) / s when divisible
        i = np.where(num % s == 0, num // s, -1)
        taps.append(i)
    return _gather(span, length_out, taps)


def _upsample(span: _Span, scale: float, mode: str, align_corners) -> _Span:
    n = len(span)
    if float(scale) != int(scale):
        raise NanosegError("receptive_field: only integer upsampling factors are supported")
    s = int(scale)
    out = np.arange(n * s)
    if mode == "nearest":
        return _gather(span, n * s, [out // s])
    if mode in ("bilinear", "linear") and not align_corners:
        src = (out + 0.5) / s - 0.5
        left = np.floor(src).astype(np.int64)
        return _gather(span, n * s, [np.clip(left, 0, n - 1), np.clip(left + 1, 0, n - 1)])
    raise NanosegError(f"receptive_field: upsampling mode {mode!r} is not supported")


def _hull(spans: list[_Span]) -> _Span:
    lengths = {len(s) for s in spans}
    if len(lengths) != 1:
        raise NanosegError("receptive_field: combined feature maps differ in size; use a size multiple input")
    return _Span(np.minimum.reduce([s.lo for s in spans]), np.maximum.reduce([s.hi for s in spans]))


# Instance and group norm divide by statistics of the whole feature map: every output depends weakly on every
# input through one mean and one spread per channel. Like BatchNorm's batch statistics in training, that global
# affine rescaling is not counted: the receptive field is the local, spatial dependence.
_POINTWISE_MODULES = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Sigmoid,
                      nn.Tanh, nn.GELU, nn.SiLU, nn.ELU, nn.PReLU, nn.Softmax2d)
_POINTWISE_FUNCTIONS = {F.relu, F.leaky_relu, F.gelu, F.silu, F.elu, torch.relu, torch.sigmoid, torch.tanh,
                        F.dropout, F.softmax, torch.softmax}
_COMBINE_FUNCTIONS = {torch.cat, operator.add, torch.add, operator.mul, torch.mul, operator.sub}


def _module_span(m: nn.Module, span: _Span) -> _Span:
    if isinstance(m, nn.Conv2d):
        return _conv_like(span, _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(m.dilation))
    if isinstance(m, nn.ConvTranspose2d):
        return _conv_transpose(span, m)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        stride = m.stride if m.stride is not None else m.kernel_size
        dilation = getattr(m, "dilation", 1)
        return _conv_like(span, _pair(m.kernel_size), _pair(stride), _pair(m.padding), _pair(dilation))
    if isinstance(m, nn.Upsample):
        if m.scale_factor is None:
            raise NanosegError("receptive_field: nn.Upsample needs a scale_factor")
        return _upsample(span, _pair(m.scale_factor) if isinstance(m.scale_factor, tuple) else m.scale_factor,
                         m.mode, m.align_corners)
    if isinstance(m, _POINTWISE_MODULES):
        return span
    raise NanosegError(f"receptive_field: layer type {type(m).__name__} is not supported")


def input_spans(model: nn.Module, length: int) -> _Span:
    """For every position of a 1-D axis of ``length`` pixels, the first and last input pixel the network's output
    there sees (``.lo``, ``.hi`` arrays): all receptive fields of one axis in one pass."""
    if isinstance(model, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.Upsample)):
        x = np.arange(length, dtype=np.int64)
        return _module_span(model, _Span(x.copy(), x.copy()))
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # tracing failures come in many types
        raise NanosegError(f"receptive_field: cannot trace {type(model).__name__} ({exc})") from exc
    modules = dict(model.named_modules())
    env: dict[str, object] = {}
    result = None

    def arg(a):
        if isinstance(a, fx.Node):
            return env[a.name]
        if isinstance(a, (tuple, list)):
            return type(a)(arg(v) for v in a)
        return a

    for node in graph.nodes:
        if node.op == "placeholder":
            x = np.arange(length, dtype=np.int64)
            env[node.name] = _Span(x.copy(), x.copy())
        elif node.op == "call_module":
            env[node.name] = _module_span(modules[node.target], arg(node.args[0]))
        elif node.op == "call_function":
            args = arg(node.args)
            if node.target in _COMBINE_FUNCTIONS:
                spans = [a for a in (args[0] if isinstance(args[0], (tuple, list)) else args) if isinstance(a, _Span)]
                env[node.name] = _hull(spans)
            elif node.target in _POINTWISE_FUNCTIONS:
                env[node.name] = args[0]
            elif node.target in (F.max_pool2d, F.avg_pool2d):
                k = _pair(node.kwargs.get("kernel_size", args[1] if len(args) > 1 else 2))
                s = node.kwargs.get("stride", args[2] if len(args) > 2 else None) or k
                env[node.name] = _conv_like(args[0], k, _pair(s), 0, 1)
            else:
                raise NanosegError(f"receptive_field: operation {node.target} is not supported")
        elif node.op == "call_method":
            target = arg(node.args[0])
            if node.target in ("relu", "sigmoid", "tanh", "contiguous", "clone") and isinstance(target, _Span):
                env[node.name] = target
            else:
                raise NanosegError(f"receptive_field: method .{node.target}() is not supported")
        elif node.op == "output":
            result = arg(node.args[0])
        else:
            raise NanosegError(f"receptive_field: graph node {node.op} is not supported")
    if not isinstance(result, _Span):
        raise NanosegError("receptive_field: the network output is not a single feature map")
    return result


def _length(model: nn.Module) -> int:
    multiple = int(getattr(model, "size_multiple", 1))
    return multiple * max(64, (4096 // multiple))


def receptive_field_span(model: nn.Module, position: int, *, length: int | None = None) -> tuple[int, int]:
    """First and last input row that output row ``position`` depends on (input of ``length`` rows).

    >>> from torch import nn
    >>> receptive_field_span(nn.Conv2d(1, 1, 5, padding=2), 10, length=32)
    (8, 12)
    """
    length = _length(model) if length is None else int(length)
    span = input_spans(model, length)
    if not 0 <= position < len(span):
        raise NanosegError(f"receptive_field_span: position {position} outside the output (0..{len(span) - 1})")
    return int(span.lo[position]), int(span.hi[position])


def receptive_field(model: nn.Module) -> int:
    """Largest receptive field (pixels along one axis) of any output pixel away from the borders.

    Computed exactly from the layer sizes, strides, paddings and dilations (see the module docstring).
    """
    length = _length(model)
    span = input_spans(model, length)
    extent = span.hi - span.lo + 1
    margin = len(extent) // 4
    return int(extent[margin: len(extent) - margin].max())
