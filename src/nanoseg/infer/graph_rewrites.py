"""``torch.fx`` rewrites of an eval-mode network that keep its output up to float rounding (the ``fused`` engine).

:func:`optimize_graph` applies them all: BatchNorm folded into the preceding convolution (conv → BN), or, in
Horwath's order conv → LeakyReLU → BN, its positive scale folded into the conv and its shift added in place;
1×1 convolutions of a one-channel input as a broadcast multiply-add; ReLUs and residual sums made in place;
every convolution of a ``torch.cat`` split into one convolution per part summed in place. See
:mod:`nanoseg.infer.engine` for how the engines use them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of an eval-mode network with every ``Conv2d → BatchNorm2d`` pair folded into one conv.

    Uses ``torch.fx`` (only pairs where the conv output feeds nothing but the BatchNorm are folded, so the
    result is exact up to float rounding). BatchNorms that follow an activation (Horwath's order) stay.
    """
    from torch.fx.experimental.optimization import fuse

    module = copy.deepcopy(module).eval()
    try:
        return fuse(module, inplace=True)
    except Exception:  # a network fx cannot trace: leave it unfused rather than fail
        return module


class _ConvActShift(nn.Module):
    """``conv → LeakyReLU/ReLU → BatchNorm`` as one module: the BatchNorm scale a > 0 is folded into the conv
    (``a·act(z) = act(a·z)`` for a > 0), its shift is added in place after an in-place activation."""

    def __init__(self, conv: nn.Module, slope: float, shift: torch.Tensor):
        super().__init__()
        self.conv = conv
        self.slope = float(slope)
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = torch.nn.functional.leaky_relu_(y, self.slope) if self.slope else torch.relu_(y)
        return y.add_(self.shift)


def _fuse_conv_act_bn(gm) -> None:
    """Fold every ``conv → (Leaky)ReLU → BatchNorm2d`` chain (Horwath's order) whose BN scales are all > 0."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        act = node.args[0]
        if getattr(act, "op", None) != "call_module" or len(act.users) != 1:
            continue
        act_mod = modules.get(act.target)
        if not isinstance(act_mod, (nn.LeakyReLU, nn.ReLU)):
            continue
        conv = act.args[0]
        if getattr(conv, "op", None) != "call_module" or len(conv.users) != 1:
            continue
        conv_mod = modules.get(conv.target)
        if not isinstance(conv_mod, (nn.Conv2d, nn.ConvTranspose2d)) or conv_mod.groups != 1:
            continue
        bn = modules[node.target]
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        if not bool((scale > 0).all()):
            continue
        shift = (bn.bias if bn.affine else torch.zeros_like(scale)) - bn.running_mean * scale
        new_conv = copy.deepcopy(conv_mod)
        with torch.no_grad():
            view = (-1, 1, 1, 1) if isinstance(conv_mod, nn.Conv2d) else (1, -1, 1, 1)
            new_conv.weight.mul_(scale.reshape(view))
            if new_conv.bias is not None:
                new_conv.bias.mul_(scale)
        slope = act_mod.negative_slope if isinstance(act_mod, nn.LeakyReLU) else 0.0
        name = node.target.replace(".", "_") + "_fused"
        gm.add_submodule(name, _ConvActShift(new_conv, slope, shift.detach()))
        with gm.graph.inserting_after(node):
            fused = gm.graph.call_module(name, (conv.args[0],))
        node.replace_all_uses_with(fused)
        for dead in (node, act, conv):
            gm.graph.erase_node(dead)


class _SplitConv(nn.Module):
    """A convolution (or stride-2 transposed convolution) of ``torch.cat(parts, dim=1)`` computed without
    the concatenation: one convolution per part, summed in place (convolution is linear in its input
    channels), then the optional in-place activation and shift of :class:`_ConvActShift`."""

    def __init__(self, conv: nn.Module, sizes: list[int], *, slope: float | None = None,
                 shift: torch.Tensor | None = None):
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        dim = 0 if self.transposed else 1
        for i, w in enumerate(torch.split(conv.weight.detach(), sizes, dim=dim)):
            self.register_buffer(f"w{i}", w.contiguous().clone())
        self.n = len(sizes)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.output_padding = getattr(conv, "output_padding", (0, 0))
        self.slope = slope
        self.register_buffer("shift", None if shift is None else shift.reshape(1, -1, 1, 1).clone())

    def _one(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        F = torch.nn.functional
        if self.transposed:
            return F.conv_transpose2d(x, w, bias, self.stride, self.padding, self.output_padding, 1, self.dilation)
        return F.conv2d(x, w, bias, self.stride, self.padding, self.dilation)

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        y = self._one(parts[0], self.w0, self.bias)
        for i in range(1, self.n):
            y = y.add_(self._one(parts[i], getattr(self, f"w{i}"), None))
        if self.slope is not None:
            y = torch.nn.functional.leaky_relu_(y, self.slope) if self.slope else torch.relu_(y)
        if self.shift is not None:
            y = y.add_(self.shift)
        return y


_SPLIT_TYPES = (nn.Conv2d,)  # split transposed convolutions measured no faster (two slow calls)


def _split_concat_convs(gm, example: torch.Tensor) -> None:
    """Replace every ``conv(torch.cat(parts, dim=1))`` by a :class:`_SplitConv` of the parts (no concatenation
    is materialized; the channel-interleaving copy of ``torch.cat`` is a large share of a U-Net decoder's
    time in channels-last). The ``cat`` node disappears once all its users are convolutions."""
    from torch.fx.passes.shape_prop import ShapeProp

    with torch.no_grad():
        ShapeProp(gm).propagate(example)
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.cat:
            continue
        parts = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if dim not in (1, -3) or not isinstance(parts, (list, tuple)) or len(parts) < 2:
            continue
        sizes = []
        for part in parts:
            meta = getattr(part, "meta", {}).get("tensor_meta")
            sizes.append(None if meta is None else int(meta.shape[1]))
        if any(s is None for s in sizes):
            continue
        for user in list(node.users):
            if user.op != "call_module" or len(user.args) != 1 or user.kwargs:
                continue
            mod = modules.get(user.target)
            slope = shift = None
            conv = mod
            if isinstance(mod, _ConvActShift):
                conv, slope, shift = mod.conv, mod.slope, mod.shift
            if not isinstance(conv, _SPLIT_TYPES) or conv.groups != 1 \
                    or conv.in_channels != sum(sizes) or getattr(conv, "padding_mode", "zeros") != "zeros" \
                    or isinstance(conv.padding, str):
                continue
            name = user.target.replace(".", "_") + "_split"
            gm.add_submodule(name, _SplitConv(conv, sizes, slope=slope, shift=shift))
            with gm.graph.inserting_after(user):
                new = gm.graph.call_module(name, tuple(parts))
            new.meta = dict(user.meta)  # keeps the shape for a later concatenation of this output
            user.replace_all_uses_with(new)
            gm.graph.erase_node(user)
        if not node.users:
            gm.graph.erase_node(node)


class _PointwiseAffine(nn.Module):
    """A 1×1 convolution of a one-channel input, as a broadcast multiply-add (oneDNN is slow for it)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.register_buffer("weight", conv.weight.detach().reshape(1, -1, 1, 1).clone())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.register_buffer("bias", bias.reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, x, self.weight)


def _pointwise_single_channel(gm) -> None:
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        m = modules.get(node.target) if node.op == "call_module" else None
        if (isinstance(m, nn.Conv2d) and m.in_channels == 1 and m.kernel_size == (1, 1) and m.stride == (1, 1)
                and m.padding in ((0, 0), "valid") and m.dilation == (1, 1) and m.groups == 1):
            name = node.target.replace(".", "_") + "_pointwise"
            gm.add_submodule(name, _PointwiseAffine(m))
            with gm.graph.inserting_after(node):
                new = gm.graph.call_module(name, node.args)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)


def _inplace_pointwise(gm) -> None:
    """Make ReLUs and residual sums in place when their input is a fresh tensor used nowhere else."""
    import operator

    import torch.nn.functional as F

    def fresh(arg) -> bool:
        return getattr(arg, "op", None) in ("call_module", "call_function", "call_method") and len(arg.users) == 1

    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in (F.relu, torch.relu) and fresh(node.args[0]):
            with gm.graph.inserting_after(node):
                new = gm.graph.call_function(torch.relu_, (node.args[0],))
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
        elif node.op == "call_function" and node.target in (operator.add, torch.add) and len(node.args) == 2 \
                and not node.kwargs and fresh(node.args[0]) and hasattr(node.args[1], "op"):
            with gm.graph.inserting_after(node):
                new = gm.graph.call_method("add_", (node.args[0], node.args[1]))
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)


def optimize_graph(module: nn.Module, *, split_concat: bool = True) -> nn.Module:
    """:func:`fold_batchnorm`, then fold ``conv → act → BN`` chains and make point-wise ops in place.

    Exact up to float rounding (checked against eager by :func:`make_runner`). A network ``torch.fx`` cannot
    trace is returned unchanged.
    """
    gm = fold_batchnorm(module)
    if not hasattr(gm, "graph"):
        return gm
    try:
        _fuse_conv_act_bn(gm)
        if split_concat:
            m = int(getattr(module, "size_multiple", 1))
            _split_concat_convs(gm, torch.zeros(1, 1, 4 * m, 4 * m))
        _pointwise_single_channel(gm)
        _inplace_pointwise(gm)
        gm.graph.lint()
        gm.recompile()
        gm.delete_all_unused_submodules()
    except Exception:  # an unusual graph: keep the plain folded network
        return fold_batchnorm(module)
    for attr in ("size_multiple", "architecture", "config"):
        if hasattr(module, attr):
            setattr(gm, attr, getattr(module, attr))
    return gm
