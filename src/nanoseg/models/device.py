"""Which torch device to run on: the one definition used by training and inference.

Example
-------
>>> resolve_device("cpu").type
'cpu'
"""

from __future__ import annotations

import torch

from nanoseg.errors import NanosegError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``,
    a ``torch.device``) is checked, and a CUDA device without a GPU is a :class:`NanosegError`."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise NanosegError(f"unknown device {device!r}", hint="use 'auto', 'cpu' or 'cuda'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NanosegError(f"device {device!r} requested but no GPU is available", hint="use device=cpu or device=auto")
    return dev
