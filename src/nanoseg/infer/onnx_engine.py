"""The ``onnx`` engine: the network exported to ONNX and run by an ONNX Runtime CPU session (``nanoseg[fast]``).

See :mod:`nanoseg.infer.engine`; :mod:`nanoseg.infer.export` writes the same graph to a file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn


def onnx_available() -> bool:
    """True when ONNX Runtime and the ONNX exporter's ``onnx`` package are installed (``pip install
    'nanoseg[fast]'``)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


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
