"""CUDA graphs for the ``cuda`` engine: one captured graph per input shape, replayed (fewer kernel launches)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def cuda_graph_forward(module: nn.Module, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
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
