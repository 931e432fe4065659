"""Losses and batch metrics on ``(N, 2, H, W)`` logits and ``(N, H, W)`` integer labels.

* ``ce``: 2-class cross-entropy (Horwath, Sytwu); ``ce_weighted``: classes weighted by inverse frequency
  in the training set; ``dice``: soft Dice loss on the particle channel; ``ce+dice``: their sum.
* :func:`hard_dice`: softmax → particle probability ≥ 0.5 → Dice with smoothing 1, per patch (Sytwu).

Example
-------
>>> import torch
>>> labels = torch.zeros(1, 4, 4, dtype=torch.long); labels[:, :2] = 1   # top half is particle
>>> logits = torch.zeros(1, 2, 4, 4); logits[:, 1, :2] = 5.0; logits[:, 0, 2:] = 5.0   # confident, right
>>> round(float(hard_dice(logits, labels)[0]), 3)                       # (2·8 + 1) / (8 + 8 + 1)
1.0
>>> logits[:, 0, 2:] = 0.0   # bottom half now a tie (p = 0.5), which counts as particle
>>> round(float(hard_dice(logits, labels)[0]), 3)                       # (2·8 + 1) / (16 + 8 + 1)
0.68
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nanoseg.errors import NanosegError


def soft_dice(logits: torch.Tensor, labels: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """Per-patch soft Dice of the particle channel (softmax probabilities)."""
    p = torch.softmax(logits.float(), dim=1)[:, 1]
    t = (labels == 1).float()
    inter = (p * t).sum(dim=(1, 2))
    return (2 * inter + smooth) / (p.sum(dim=(1, 2)) + t.sum(dim=(1, 2)) + smooth)


def hard_dice(logits: torch.Tensor, labels: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """Per-patch hard Dice (prediction = particle probability ≥ 0.5, i.e. logit 1 ≥ logit 0)."""
    pred = (logits[:, 1] >= logits[:, 0]).float()
    t = (labels == 1).float()
    inter = (pred * t).sum(dim=(1, 2))
    return (2 * inter + smooth) / (pred.sum(dim=(1, 2)) + t.sum(dim=(1, 2)) + smooth)


class SegmentationLoss(torch.nn.Module):
    """The training loss selected by name; ``class_weights`` (background, particle) for ``ce_weighted``."""

    def __init__(self, name: str = "ce", class_weights: torch.Tensor | None = None):
        super().__init__()
        if name not in ("ce", "ce_weighted", "dice", "ce+dice"):
            raise NanosegError(f"unknown loss {name!r}", hint="use ce, ce_weighted, dice or ce+dice")
        if name == "ce_weighted" and class_weights is None:
            raise NanosegError("ce_weighted needs class weights")
        self.name = name
        self.register_buffer("weights", class_weights.float() if class_weights is not None else torch.ones(2))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.name == "dice":
            return 1 - soft_dice(logits, labels).mean()
        ce = F.cross_entropy(logits, labels, weight=self.weights if self.name == "ce_weighted" else None)
        if self.name == "ce+dice":
            return ce + (1 - soft_dice(logits, labels).mean())
        return ce


def inverse_frequency_weights(particle_fraction: float) -> torch.Tensor:
    """Class weights ``1 / (2 f_c)`` (mean weight 1 over pixels) from the particle pixel fraction.

    >>> [round(float(w), 3) for w in inverse_frequency_weights(0.2)]
    [0.625, 2.5]
    """
    f = min(max(float(particle_fraction), 1e-4), 1 - 1e-4)
    return torch.tensor([1 / (2 * (1 - f)), 1 / (2 * f)])
