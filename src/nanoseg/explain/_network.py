"""Running a network on network-input arrays: padding to ``size_multiple``, batches, softmax.

Every ``nanoseg.explain`` function takes either a bare ``torch.nn.Module`` (which then sees the arrays
exactly as given) or a loaded checkpoint (``nanoseg.models.LoadedModel``: ``.module`` + ``.card``). Arrays are
**network inputs**: already preprocessed. :func:`prepare_input` turns a raw :class:`~nanoseg.io.Micrograph`
into that input for a checkpoint (resampling to the card's pixel size, then the card's preprocessing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nanoseg.errors import NanosegError


def as_module(model: Any) -> nn.Module:
    """The ``nn.Module`` inside ``model`` (a module, or a loaded checkpoint with ``.module``)."""
    module = getattr(model, "module", model)
    if not isinstance(module, nn.Module):
        raise NanosegError(f"expected a torch network or a loaded nanoseg model, got {type(model).__name__}",
                           hint="load a checkpoint with nanoseg.models.load_model(path)")
    return module


def card_of(model: Any):
    """The model card of a loaded checkpoint, or None for a bare module."""
    return getattr(model, "card", None)


def check_image(image, name: str = "image") -> np.ndarray:
    """A finite 2-D float32 array, or a clear error."""
    array = np.asarray(image)
    if array.ndim != 2:
        raise NanosegError(f"{name}: expected a 2-D image, got shape {array.shape}")
    if array.size == 0 or min(array.shape) < 2:
        raise NanosegError(f"{name}: image too small ({array.shape})")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise NanosegError(f"{name}: image contains NaN/inf pixels", hint="remove or replace the bad pixels")
    return array


def check_mask(mask, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != tuple(shape):
        raise NanosegError(f"{name}: shape {array.shape} does not match the image {tuple(shape)}",
                           hint="give the mask of this image (same rows and columns)")
    return array > 0


def _pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    total = (-size) % multiple
    return total // 2, total - total // 2


def forward_logits(model: Any, images, *, batch_size: int = 8, grad: bool = False) -> np.ndarray | torch.Tensor:
    """Logits ``(N, 2, H, W)`` (or ``(2, H, W)`` for one image) of ``images`` ``(N, H, W)`` or ``(H, W)``.

    Inputs are padded by reflection to a multiple of the network's ``size_multiple`` and the output is
    cropped back; the network runs in eval mode (BatchNorm uses its running statistics).
    """
    module = as_module(model)
    single = np.ndim(images) == 2
    stack = np.asarray(images, dtype=np.float32)
    if single:
        stack = stack[None]
    if stack.ndim != 3:
        raise NanosegError(f"expected an image (H, W) or a stack (N, H, W), got shape {stack.shape}")
    if not np.isfinite(stack).all():
        raise NanosegError("network input contains NaN/inf pixels")
    multiple = int(getattr(module, "size_multiple", 1) or 1)
    (top, bottom), (left, right) = _pad_amounts(stack.shape[1], multiple), _pad_amounts(stack.shape[2], multiple)
    was_training = module.training
    module.eval()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    outputs = []
    try:
        with torch.set_grad_enabled(grad):
            for start in range(0, len(stack), max(1, int(batch_size))):
                x = torch.from_numpy(stack[start:start + batch_size, None]).to(device)
                if top or bottom or left or right:
                    mode = "reflect" if min(stack.shape[1:]) > max(top, bottom, left, right) else "replicate"
                    x = F.pad(x, (left, right, top, bottom), mode=mode)
                y = module(x)
                if y.ndim != 4 or y.shape[1] != 2:
                    raise NanosegError(f"the network returned shape {tuple(y.shape)}, expected (N, 2, H, W)")
                y = y[:, :, top:top + stack.shape[1], left:left + stack.shape[2]]
                outputs.append(y if grad else y.detach().cpu())
    finally:
        module.train(was_training)
    out = torch.cat(outputs)
    if grad:
        return out[0] if single else out
    array = out.numpy().astype(np.float32)
    return array[0] if single else array


def softmax_particle(logits) -> np.ndarray:
    """Particle probability (softmax of channel 1) from logits ``(..., 2, H, W)``."""
    logits = np.asarray(logits, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(np.clip(logits[..., 0, :, :] - logits[..., 1, :, :], -60, 60)))).astype(np.float32)


def particle_probability(model: Any, images, *, batch_size: int = 8) -> np.ndarray:
    """Softmax particle probability ``(N, H, W)`` or ``(H, W)``."""
    return softmax_particle(forward_logits(model, images, batch_size=batch_size))


@dataclass
class PreparedInput:
    """A raw micrograph turned into what the network sees (and its mask on the same grid)."""

    image: np.ndarray
    mask: np.ndarray | None
    pixel_size_nm: float | None
    steps: list[str]


def prepare_input(model: Any, micrograph, mask=None) -> PreparedInput:
    """Turn a raw micrograph into the network input of ``model`` (and resample its mask alongside).

    For a checkpoint: resample to the card's training pixel size (when the card has one, the image has a
    pixel size and the card's pipeline has no ``resample`` step of its own), then run the card's
    preprocessing pipeline. For a bare module (no card) the image is only standardized (mean 0, std 1).
    ``mask`` (optional) is resampled onto the output grid (bilinear, thresholded at 0.5).

    >>> import numpy as np, torch
    >>> prepared = prepare_input(torch.nn.Conv2d(1, 2, 1), np.arange(16.0).reshape(4, 4))
    >>> prepared.steps, round(float(prepared.image.std()), 3)
    (['standardize'], 1.0)
    """
    from nanoseg.io import Micrograph
    from nanoseg.preprocess import Pipeline, resample_micrograph, resample_to_shape, standardize

    if not isinstance(micrograph, Micrograph):
        micrograph = Micrograph(check_image(micrograph))
    micrograph.check_finite()
    if mask is not None:
        mask = check_mask(mask, micrograph.shape)
    steps: list[str] = []
    card = card_of(model)
    pipeline = Pipeline.from_spec(list(getattr(card, "preprocessing", None) or [])) if card is not None else None
    has_resample = pipeline is not None and any(step.name == "resample" for step in pipeline.steps)
    pixel = micrograph.pixel_size_nm
    target = getattr(card, "pixel_size_nm", None) if card is not None else None
    if target and not pixel:
        steps.append(f"image has no pixel size; assumed the model's {target:.4g} nm/px")
        micrograph = micrograph.with_data(micrograph.data, pixel_size_nm=target)
    elif target and pixel and abs(pixel / target - 1) > 0.01 and not has_resample:
        micrograph = resample_micrograph(micrograph, target)
        steps.append(f"resampled {pixel:.4g} → {micrograph.pixel_size_nm:.4g} nm/px")
    if pipeline is not None and len(pipeline):
        out = pipeline.apply(micrograph)
        steps += [step.name for step in pipeline.steps]
    else:
        out = micrograph.with_data(standardize(micrograph.data))
        steps.append("standardize")
    if mask is not None and out.shape != mask.shape:
        mask = np.asarray(resample_to_shape(mask.astype(np.float32), out.shape, method="spatial")) >= 0.5
    return PreparedInput(image=np.asarray(out.data, dtype=np.float32), mask=mask, pixel_size_nm=out.pixel_size_nm,
                         steps=steps)
