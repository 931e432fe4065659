"""How ``engine="auto"`` picks the CPU engine: time the candidates once per machine and network shape, keep the
choice in a calibration file (``$NANOSEG_CACHE_DIR``), build the chosen one next time.

See :mod:`nanoseg.infer.engine` (the engines) and docs/performance.md (which one wins where).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nanoseg._util import atomic_path
from nanoseg.infer.graph_rewrites import optimize_graph
from nanoseg.infer.onnx_engine import ONNX_LEVELS, onnx_available, onnx_export, onnx_forward
from nanoseg.infer.runner import Runner, verify_runner


def fused_runner(module: nn.Module, dev: torch.device) -> Runner:
    """The ``fused`` engine (:func:`~nanoseg.infer.graph_rewrites.optimize_graph`, channels-last), unverified."""
    fused = optimize_graph(module).to(memory_format=torch.channels_last)
    return Runner(fused, engine="fused", device=dev, channels_last=True)


CALIBRATION_PX = 512  # side of the random input on which the auto engine times its candidates
CALIBRATION_ROUNDS = 5


def fastest_runner(candidates: dict[str, Runner], module: nn.Module, *, side: int | None = None,
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


def load_calibration(key: dict[str, object]) -> tuple[str, dict[str, float]] | None:
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


def save_calibration(key: dict[str, object], choice: str, timings: dict[str, float]) -> None:
    """Write the choice atomically (a failure to write only costs measuring again next time)."""
    import json
    import time

    path = calibration_path(key)
    with contextlib.suppress(OSError), atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"key": key, "choice": choice, "timings": timings,
                                   "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1),
                       encoding="utf-8")


def cpu_candidates(module: nn.Module, dev: torch.device, only: str | None = None) -> dict[str, Runner]:
    """The auto engine's CPU candidates (``fused``; ``onnx/all``, ``onnx/extended`` with ONNX Runtime);
    ``only`` builds just that one."""
    candidates = {}
    if only in (None, "fused"):
        candidates["fused"] = fused_runner(module, dev)
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
                candidates["fused"] = fused_runner(module, dev)
    return candidates


def fastest_cpu_runner(module: nn.Module, dev: torch.device, *, verify: bool, tolerance: float,
                        recalibrate: bool = False) -> Runner:
    """``engine="auto"`` on the CPU: time ``fused`` and ONNX Runtime (both optimization levels, when
    installed) on this machine and keep the fastest, or build the engine this machine's calibration cache
    chose for this network shape. Which wins depends on the network and on the CPU (docs/performance.md):
    e.g. Horwath's Norm U-Net runs fastest in PyTorch's oneDNN convolutions on an AVX-512 CPU but in ONNX
    Runtime on an AVX2 one."""
    key = calibration_key(module)
    cached = None if recalibrate else load_calibration(key)
    if cached is not None:
        choice, timings = cached
        candidates = cpu_candidates(module, dev, only=choice)
        runner = candidates.get(choice) or next(iter(candidates.values()))
        runner.calibration, runner.calibration_cached = dict(timings), choice in candidates
    else:
        candidates = cpu_candidates(module, dev)
        choice, timings = fastest_runner(candidates, module)
        runner = candidates[choice]
        runner.calibration = timings
        if timings:  # one candidate only (no ONNX Runtime): nothing was measured, nothing to keep
            save_calibration(key, choice, timings)
    if verify:
        verify_runner(module, runner, dev, tolerance)
    return runner
