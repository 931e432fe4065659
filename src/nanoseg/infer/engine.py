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

The jobs live in their own modules, re-exported here: :mod:`~nanoseg.infer.runner` (the :class:`Runner`, its
check against eager), :mod:`~nanoseg.infer.graph_rewrites` (the ``torch.fx`` rewrites), :mod:`~nanoseg.infer.
onnx_engine` (ONNX export and Runtime sessions), :mod:`~nanoseg.infer.engine_choice` (how ``auto`` chooses, the
calibration cache), :mod:`~nanoseg.infer.cuda_graphs`.

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

import warnings

import torch
from torch import nn

from nanoseg.errors import NanosegError
from nanoseg.infer.cuda_graphs import cuda_graph_forward
from nanoseg.infer.engine_choice import (
    CALIBRATION_FORMAT,
    CALIBRATION_PX,
    CALIBRATION_ROUNDS,
    calibration_key,
    calibration_path,
    fastest_cpu_runner,
    fastest_runner,
    fused_runner,
    network_signature,
)
from nanoseg.infer.graph_rewrites import fold_batchnorm, optimize_graph
from nanoseg.infer.onnx_engine import ONNX_LEVELS, onnx_available, onnx_export, onnx_forward
from nanoseg.infer.runner import Runner, jit_forward, verify_runner
from nanoseg.models.device import resolve_device

ENGINES = ("auto", "eager", "fused", "jit", "compile", "onnx", "cuda")

# every name other modules import from here (the split modules own them)
__all__ = [
    "CALIBRATION_FORMAT", "CALIBRATION_PX", "CALIBRATION_ROUNDS", "ENGINES", "ONNX_LEVELS", "Runner",
    "calibration_key", "calibration_path", "fold_batchnorm", "make_runner", "network_signature", "onnx_available",
    "onnx_export", "onnx_forward", "optimize_graph", "resolve_device", "weights_fingerprint",
]


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
        return fastest_cpu_runner(module, dev, verify=verify, tolerance=tolerance, recalibrate=recalibrate)
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
        runner = fused_runner(module, dev)
    elif engine == "jit":
        fused = optimize_graph(module).to(memory_format=torch.channels_last)
        runner = Runner(jit_forward(fused, dev), engine="jit", device=dev, channels_last=True)
    elif engine == "onnx":
        try:
            data = onnx_export(module)
            candidates = {level: Runner(onnx_forward(data, level), engine="onnx", device=dev)
                          for level in ONNX_LEVELS}
            level, timings = fastest_runner(candidates, module)
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
        forward = cuda_graph_forward(fused, dtype) if cuda_graphs else fused
        runner = Runner(forward, engine="cuda", device=dev, channels_last=True,
                        dtype=None if cuda_graphs else dtype)
        verify, tolerance = verify, max(tolerance, 5e-2)  # half precision: a looser sanity bound
    if verify:
        verify_runner(module, runner, dev, tolerance)
    return runner
