"""The :class:`Runner` every inference engine returns, its check against eager, and the traced (jit) forward.

See :mod:`nanoseg.infer.engine` for the engines and :func:`~nanoseg.infer.engine.make_runner`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


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


def jit_forward(module: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
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


def verify_runner(reference: nn.Module, runner: Runner, device: torch.device, tolerance: float) -> None:
    """Compare ``runner`` with the eager ``reference`` on a random input; beyond ``tolerance`` (max |Δ particle
    probability|) warn and make the runner eager, so a faster engine never gives different answers."""
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
