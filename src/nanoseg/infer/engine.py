"""How a network is run: the plain eager forward pass, or a faster graph with the same output.

``make_runner(module, engine=..., device=...)`` returns a :class:`Runner`: a callable mapping a batch of
preprocessed tiles ``(N, H, W)`` float32 (NumPy) to logits ``(N, 2, H, W)`` float32. Engines:

``"eager"``
    ``module(x)`` under ``torch.no_grad`` — the reference.
``"fused"``
    :func:`optimize_graph` (``torch.fx``): BatchNorm folded into the preceding convolution (conv → BN), or,
    in Horwath's order conv → LeakyReLU → BN, its positive scale folded into the conv and its shift added in
    place; 1×1 convolutions of a one-channel input as a broadcast multiply-add; ReLUs and residual sums
    made in place; every convolution of a ``torch.cat`` split into one convolution per part summed in place
    (no concatenation copy); then channels-last memory format and ``torch.inference_mode``. Same arithmetic
    up to float rounding.
``"jit"``
    ``"fused"`` then ``torch.jit.trace`` → ``torch.jit.freeze`` (constant folding). Traced once per input
    shape (tiles share one shape, so that is one trace per run).
``"compile"``
    ``torch.compile`` (Inductor) of the folded network; compiles C++ once per shape (about a minute on CPU).
``"onnx"``
    The network exported to ONNX (``torch.onnx.export``, dynamic batch/height/width) and run by ONNX Runtime's
    CPU provider, at the graph optimization level (``all`` with the blocked NCHWc layout, or ``extended``)
    measured faster on this machine; intra-op threads do not spin after a run. Needs the optional extra
    ``nanoseg[fast]``.
``"auto"``
    On a GPU ``"cuda"``. On the CPU: ``"fused"`` and (when ONNX Runtime is installed) ``"onnx"`` at both
    levels are timed on a random 512² input (best of 5, interleaved) and the fastest is kept
    (``Runner.calibration`` holds the timings). Which one wins depends on the network, the CPU and its load
    (see ``docs/performance.md``). The choice is kept per machine (:func:`calibration_path`, in
    ``$NANOSEG_CACHE_DIR`` like the FFT plans), keyed by the network's layers and tensor shapes (not its
    weights), the CPU model, the thread count and the torch / ONNX Runtime versions: later runners of the
    same network shape build only the chosen engine (``Runner.calibration_cached``);
    ``make_runner(..., recalibrate=True)`` measures again (e.g. after a run on a busy machine).
``"cuda"``
    GPU path (only when ``torch.cuda.is_available()``): channels-last, BN folded, autocast to bf16 (or fp16),
    whole batches of tiles per call; optionally replayed as a CUDA graph for a fixed tile batch shape.
    Half-precision output is not within 1e-4 of fp32 — use ``engine="fused"`` on the GPU for exact output.

Every engine is checked against eager at build time on a small random input when ``verify=True``
(max |Δ particle probability| ≤ ``tolerance``); a failing engine falls back to eager with a warning instead of giving
different answers.

Example
-------
>>> import numpy as np
>>> from nanoseg.models import build_model
>>> net = build_model("sytwu_resunet").eval()
>>> run = make_runner(net, engine="fused")
>>> run(np.zeros((1, 32, 32), np.float32)).shape
(1, 2, 32, 32)
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nanoseg.errors import NanosegError
from nanoseg.models.device import resolve_device  # noqa: F401  (re-exported: one definition, shared with training)

ENGINES = ("auto", "eager", "fused", "jit", "compile", "onnx", "cuda")


def onnx_available() -> bool:
    """True when ONNX Runtime and the ONNX exporter's ``onnx`` package are installed (``pip install
    'nanoseg[fast]'``)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def weights_fingerprint(module: nn.Module) -> str:
    """A digest of the network's weights and buffers (names, dtypes, shapes and bytes, BLAKE2b-128).

    Faster engines work on a copy of the weights (folded BatchNorm, an ONNX graph), so a runner built
    before the weights changed — in place, through ``.data``, or by ``load_state_dict`` — would keep
    giving the old output; :func:`nanoseg.infer.predict.get_runner` rebuilds a runner whose fingerprint
    no longer matches. Hashing the bytes (not version counters, which ``.data`` writes bypass) costs
    about 1–2 ms for the 87k–131k parameters of the shipped architectures (measured on this machine).
    """
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    return digest.hexdigest()


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


class Runner:
    """Callable ``(N, H, W) float32 → (N, 2, H, W) float32`` logits; ``engine`` says how."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], *, engine: str, device: torch.device,
                 channels_last: bool = False, dtype: torch.dtype | None = None):
        self._forward = forward
        self.engine = engine
        self.device = device
        self.channels_last = channels_last
        self.dtype = dtype
        self.calibration: dict[str, float] = {}  # seconds per calibration pass of each candidate (auto)
        self.calibration_cached = False  # auto: the choice came from this machine's calibration cache
        self.onnx_level: str | None = None

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))[:, None].to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.dtype is not None:
                with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                    y = self._forward(x)
            else:
                y = self._forward(x)
        return y.float().contiguous().cpu().numpy()


def _jit_runner(module: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    traced: dict[tuple[int, ...], torch.jit.ScriptModule] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in traced:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scripted = torch.jit.trace(module, x, check_trace=False)
                traced[key] = torch.jit.freeze(scripted.eval())
        return traced[key](x)

    return forward


def make_runner(module: nn.Module, *, engine: str = "auto", device: str | torch.device = "auto",
                verify: bool = True, tolerance: float = 1e-4, cuda_graphs: bool = False,
                recalibrate: bool = False) -> Runner:
    """Build a :class:`Runner` for an eval-mode network (see the module docstring for the engines).

    ``recalibrate``: with ``engine="auto"`` on the CPU, time the candidates even when this machine's
    calibration cache has a choice for this network shape (and replace it)."""
    if engine not in ENGINES:
        raise NanosegError(f"unknown inference engine {engine!r}", hint=f"choose one of {', '.join(ENGINES)}")
    dev = resolve_device(device)
    exported = getattr(module, "exported_format", None)
    if exported is not None:  # a file of `nanoseg export` (already a graph): run as it is; ONNX Runtime on the CPU
        if engine not in ("auto", exported, "onnx" if exported == "onnx" else "jit"):
            raise NanosegError(f"engine={engine} does not apply to an exported {exported} file (it runs in "
                               f"{'ONNX Runtime' if exported == 'onnx' else 'torch.jit'})",
                               hint="leave engine=auto, or predict with the checkpoint for other engines")
        dev = torch.device("cpu") if exported == "onnx" else dev
        runner = Runner(module.eval().to(dev), engine=exported, device=dev)
        runner.onnx_level = "all" if exported == "onnx" else None  # nanoseg.infer.export runs it at this level
        return runner
    module = module.eval().to(dev)
    if engine == "auto" and dev.type == "cuda":
        engine = "cuda"
    if engine == "auto":
        return _fastest_cpu_runner(module, dev, verify=verify, tolerance=tolerance, recalibrate=recalibrate)
    if engine == "onnx" and (dev.type != "cpu" or not onnx_available()):
        raise NanosegError("the 'onnx' engine needs ONNX Runtime on the CPU",
                           hint="pip install 'nanoseg[fast]' (onnxruntime, onnx), or use engine 'fused'")
    if engine == "cuda" and dev.type != "cuda":
        raise NanosegError("the 'cuda' engine needs a GPU", hint="use engine 'auto' or 'jit' on CPU")
    if engine == "eager":
        def eager(x):
            return module(x)

        return Runner(eager, engine="eager", device=dev)
    if engine == "fused":
        fused = optimize_graph(module).to(memory_format=torch.channels_last)
        runner = Runner(fused, engine="fused", device=dev, channels_last=True)
    elif engine == "jit":
        fused = optimize_graph(module).to(memory_format=torch.channels_last)
        runner = Runner(_jit_runner(fused, dev), engine="jit", device=dev, channels_last=True)
    elif engine == "onnx":
        try:
            data = onnx_export(module)
            candidates = {level: Runner(onnx_forward(data, level), engine="onnx", device=dev)
                          for level in ONNX_LEVELS}
            level, timings = _fastest(candidates, module)
            runner = candidates[level]
            runner.calibration = {f"onnx/{k}": v for k, v in timings.items()}
            runner.onnx_level = level
        except Exception as exc:  # an operator ONNX cannot express: the fused engine gives the same output
            warnings.warn(f"ONNX export failed ({exc}); using the fused engine", RuntimeWarning, stacklevel=2)
            return make_runner(module, engine="fused", device=dev, verify=verify, tolerance=tolerance)
    elif engine == "compile":
        compiled = torch.compile(optimize_graph(module).to(memory_format=torch.channels_last), dynamic=False)
        runner = Runner(compiled, engine="compile", device=dev, channels_last=True)
    else:  # cuda
        fused = optimize_graph(module).to(memory_format=torch.channels_last)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        forward = _cuda_graph_forward(fused, dtype) if cuda_graphs else fused
        runner = Runner(forward, engine="cuda", device=dev, channels_last=True,
                        dtype=None if cuda_graphs else dtype)
        verify, tolerance = verify, max(tolerance, 5e-2)  # half precision: a looser sanity bound
    if verify:
        _verify(module, runner, dev, tolerance)
    return runner


def onnx_export(module: nn.Module) -> bytes:
    """The network as ONNX bytes (dynamic N, H, W)."""
    import io

    m = int(getattr(module, "size_multiple", 1))
    side = m * max(1, -(-64 // m))
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 1, side, side),), buffer, dynamo=False,
                          input_names=["x"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}})
    return buffer.getvalue()


ONNX_LEVELS = ("all", "extended")


def onnx_forward(module: nn.Module | bytes, level: str = "all") -> Callable[[torch.Tensor], torch.Tensor]:
    """A forward that runs an ONNX Runtime CPU session of the exported network.

    ``level``: ``"all"`` (every graph optimization, including the blocked NCHWc layout) or ``"extended"``
    (operator fusions without the layout change). Which one is faster depends on the CPU's vector width:
    NCHWc pads channels to the SIMD block (16 with AVX-512), which a 4- or 8-channel layer pays for; the
    ``auto`` engine measures both. Intra-op threads do not spin after a run (they would take the cores
    from the blending and post-processing that follow)."""
    import onnxruntime as ort

    data = module if isinstance(module, bytes) else onnx_export(module)
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if level == "all"
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"x": x.detach().cpu().numpy()})[0])

    return forward


CALIBRATION_PX = 512  # side of the random input on which the auto engine times its candidates
CALIBRATION_ROUNDS = 5


def _fastest(candidates: dict[str, Runner], module: nn.Module, *, side: int | None = None,
             rounds: int | None = None) -> tuple[str, dict[str, float]]:
    """The candidate with the shortest best-of-``rounds`` time on a random ``side``² input (interleaved,
    after one warm-up call each, so a busy moment of a shared machine hits every candidate alike);
    defaults :data:`CALIBRATION_PX`, :data:`CALIBRATION_ROUNDS`."""
    import time

    side = CALIBRATION_PX if side is None else side
    rounds = CALIBRATION_ROUNDS if rounds is None else rounds
    if len(candidates) == 1:
        return next(iter(candidates)), {}
    m = int(getattr(module, "size_multiple", 1))
    side = m * max(1, -(-side // m))
    x = np.random.default_rng(0).standard_normal((1, side, side)).astype(np.float32)
    for run in candidates.values():
        run(x)
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(rounds):
        for key, run in candidates.items():
            started = time.perf_counter()
            run(x)
            best[key] = min(best[key], time.perf_counter() - started)
    return min(best, key=best.get), {k: round(v, 5) for k, v in best.items()}


CALIBRATION_FORMAT = 1  # bump when what a calibration file holds, or how candidates are timed, changes


def network_signature(module: nn.Module) -> str:
    """A digest of the network's code and layers (class, ``repr``, state-dict names/shapes/dtypes), not of its
    weights: two networks with the same signature run the same computation graph."""
    import hashlib

    shapes = [(name, tuple(t.shape), str(t.dtype)) for name, t in module.state_dict().items()]
    kind = f"{type(module).__module__}.{type(module).__qualname__}"
    return hashlib.sha1(f"{kind}|{module!r}|{shapes}".encode()).hexdigest()[:16]


def calibration_key(module: nn.Module) -> dict[str, object]:
    """What the auto engine's choice depends on: the network's layers and tensor shapes (``repr`` and
    state-dict shapes, hashed; not the weights' values), the CPU model and architecture, torch's intra-op
    thread count, the torch / ONNX Runtime / onnx versions, the candidates and the timing input."""
    import importlib.metadata
    import platform

    from nanoseg._cache import cpu_model

    network = network_signature(module)

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"format": CALIBRATION_FORMAT, "network": network,
            "architecture": str(getattr(module, "architecture", type(module).__name__)),
            "machine": platform.machine(), "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "onnxruntime": version("onnxruntime") if onnx_available() else None,
            "onnx": version("onnx") if onnx_available() else None,
            "candidates": ["fused", *(f"onnx/{level}" for level in ONNX_LEVELS)] if onnx_available() else ["fused"],
            "input_px": CALIBRATION_PX, "rounds": CALIBRATION_ROUNDS}


def calibration_path(key: dict[str, object]) -> Path:
    """This machine's calibration file for ``key`` (:func:`calibration_key`), in ``$NANOSEG_CACHE_DIR``."""
    import hashlib
    import json

    from nanoseg._cache import cache_dir

    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"engine-calibration-{digest}.json"


def _load_calibration(key: dict[str, object]) -> tuple[str, dict[str, float]] | None:
    """The cached (choice, timings) for ``key``, or None (absent, unreadable, or not for this key)."""
    import json

    try:
        data = json.loads(calibration_path(key).read_text(encoding="utf-8"))
        choice, timings = data["choice"], {str(k): float(v) for k, v in data["timings"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if data.get("key") != key or choice not in key["candidates"]:
        return None
    return choice, timings


def _save_calibration(key: dict[str, object], choice: str, timings: dict[str, float]) -> None:
    """Write the choice atomically (a failure to write only costs measuring again next time)."""
    import json
    import os
    import time

    path = calibration_path(key)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "choice": choice, "timings": timings,
                                   "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1),
                       encoding="utf-8")
        os.replace(tmp, path)


def _cpu_candidates(module: nn.Module, dev: torch.device, only: str | None = None) -> dict[str, Runner]:
    """The auto engine's CPU candidates (``fused``; ``onnx/all``, ``onnx/extended`` with ONNX Runtime);
    ``only`` builds just that one."""
    candidates = {}
    if only in (None, "fused"):
        candidates["fused"] = make_runner(module, engine="fused", device=dev, verify=False)
    if onnx_available() and only != "fused":
        try:
            data = onnx_export(module)
            for level in ONNX_LEVELS:
                if only in (None, f"onnx/{level}"):
                    candidates[f"onnx/{level}"] = Runner(onnx_forward(data, level), engine="onnx", device=dev)
                    candidates[f"onnx/{level}"].onnx_level = level
        except Exception as exc:  # an operator ONNX cannot express: fused only
            warnings.warn(f"ONNX export failed ({exc}); timing the fused engine only", RuntimeWarning,
                          stacklevel=4)
            if only is not None:
                candidates["fused"] = make_runner(module, engine="fused", device=dev, verify=False)
    return candidates


def _fastest_cpu_runner(module: nn.Module, dev: torch.device, *, verify: bool, tolerance: float,
                        recalibrate: bool = False) -> Runner:
    """``engine="auto"`` on the CPU: time ``fused`` and ONNX Runtime (both optimization levels, when
    installed) on this machine and keep the fastest, or build the engine this machine's calibration cache
    chose for this network shape. Which wins depends on the network and on the CPU (docs/performance.md):
    e.g. Horwath's Norm U-Net runs fastest in PyTorch's oneDNN convolutions on an AVX-512 CPU but in ONNX
    Runtime on an AVX2 one."""
    key = calibration_key(module)
    cached = None if recalibrate else _load_calibration(key)
    if cached is not None:
        choice, timings = cached
        candidates = _cpu_candidates(module, dev, only=choice)
        runner = candidates.get(choice) or next(iter(candidates.values()))
        runner.calibration, runner.calibration_cached = dict(timings), choice in candidates
    else:
        candidates = _cpu_candidates(module, dev)
        choice, timings = _fastest(candidates, module)
        runner = candidates[choice]
        runner.calibration = timings
        if timings:  # one candidate only (no ONNX Runtime): nothing was measured, nothing to keep
            _save_calibration(key, choice, timings)
    if verify:
        _verify(module, runner, dev, tolerance)
    return runner


def _cuda_graph_forward(module: nn.Module, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """Capture one CUDA graph per input shape and replay it (saves kernel-launch time for small tiles)."""
    graphs: dict[tuple[int, ...], tuple] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in graphs:
            static_in = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.autocast("cuda", dtype=dtype):
                for _ in range(2):  # warm-up outside the graph, as CUDA graphs require
                    module(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.autocast("cuda", dtype=dtype):
                static_out = module(static_in)
            graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    return forward


def _verify(reference: nn.Module, runner: Runner, device: torch.device, tolerance: float) -> None:
    m = int(getattr(reference, "size_multiple", 1))
    side = m * max(1, -(-64 // m))
    x = np.random.default_rng(0).standard_normal((1, side, side)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)[:, None].to(device)).float().cpu().numpy()
    got = runner(x)

    def prob(logits):
        return 1.0 / (1.0 + np.exp(np.clip(logits[:, 0] - logits[:, 1], -80, 80)))

    err = float(np.max(np.abs(prob(got) - prob(want))))
    if not np.isfinite(err) or err > tolerance:
        warnings.warn(f"inference engine {runner.engine!r} differs from eager by {err:.2e} > {tolerance:g}; "
                      "using eager", RuntimeWarning, stacklevel=3)
        runner._forward = reference
        runner.engine, runner.channels_last, runner.dtype = "eager", False, None
