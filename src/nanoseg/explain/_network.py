"""Running a network on network-input arrays: padding to ``size_multiple``, batches, softmax.

Every ``nanoseg.explain`` function takes either a bare ``torch.nn.Module`` (which then sees the arrays
exactly as given) or a loaded checkpoint (``nanoseg.models.LoadedModel``: ``.module`` + ``.card``). Arrays are
**network inputs**: already preprocessed. :func:`prepare_input` turns a raw :class:`~nanoseg.io.Micrograph`
into that input for a checkpoint with the function ``predict`` uses (:mod:`nanoseg.infer.network_input`), and
:func:`network_logits` pads it as ``predict`` does, so explain's maps are the maps ``predict`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
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


def forward_tensor(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, 2, H, W)`` of network inputs ``x`` ``(N, H, W)`` in eval mode, autograd as the caller sets it.

    Padded exactly as in ``predict`` (:func:`nanoseg.infer.tiling.pad_tensor_to_multiple`: reflect,
    bottom/right, to the network's ``size_multiple``) and cropped back."""
    from nanoseg.infer.tiling import pad_tensor_to_multiple

    multiple = int(getattr(module, "size_multiple", 1) or 1)
    h, w = x.shape[-2:]
    was_training = module.training
    module.eval()
    try:
        y = module(pad_tensor_to_multiple(x[:, None], multiple))
    finally:
        module.train(was_training)
    if y.ndim != 4 or y.shape[1] != 2:
        raise NanosegError(f"the network returned shape {tuple(y.shape)}, expected (N, 2, H, W)")
    return y[:, :, :h, :w]


def network_logits(model: Any, images, *, batch_size: int = 8, grad: bool = False) -> np.ndarray | torch.Tensor:
    """Logits ``(N, 2, H, W)`` (or ``(2, H, W)`` for one image) of ``images`` ``(N, H, W)`` or ``(H, W)``, each
    image in one pass (no tiles; :func:`nanoseg.infer.predict.forward_logits` is the tiled pass of ``predict``).

    Inputs are padded by reflection (bottom/right, as in ``predict``) to a multiple of the network's
    ``size_multiple`` and the output is cropped back; the network runs in eval mode (BatchNorm uses its
    running statistics).
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
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    outputs = []
    with torch.set_grad_enabled(grad):
        for start in range(0, len(stack), max(1, int(batch_size))):
            y = forward_tensor(module, torch.from_numpy(stack[start:start + batch_size]).to(device))
            outputs.append(y if grad else y.detach().cpu())
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
    return softmax_particle(network_logits(model, images, batch_size=batch_size))


@dataclass
class PreparedInput:
    """A raw micrograph turned into what the network sees (and its mask on the same grid)."""

    image: np.ndarray
    mask: np.ndarray | None
    pixel_size_nm: float | None
    steps: list[str]
    network_input: Any = None  # the nanoseg.infer.network_input.NetworkInput (maps outputs back to the input grid)


def prepare_input(model: Any, micrograph, mask=None) -> PreparedInput:
    """Turn a raw micrograph into the network input of ``model`` (and resample its mask alongside).

    The input is built by :func:`nanoseg.infer.network_input.network_input`, the function ``predict`` uses:
    for a checkpoint, resampled to the card's training pixel size, then the card's preprocessing pipeline
    exactly as recorded (an empty one changes nothing); for a bare module (no card) the pixels are used as
    they are. An image without a pixel size is assumed to be at the model's (the ``steps`` say so).
    ``mask`` (optional) is resampled onto the output grid (bilinear, thresholded at 0.5).

    >>> import numpy as np, torch
    >>> from nanoseg.io import Micrograph
    >>> from nanoseg.models import ModelCard
    >>> loaded = type("Loaded", (), {"module": torch.nn.Conv2d(1, 2, 1),
    ...                              "card": ModelCard(architecture="x", preprocessing=[{"name": "standardize"}])})
    >>> prepared = prepare_input(loaded, Micrograph(np.arange(16.0).reshape(4, 4)))
    >>> prepared.steps, round(float(prepared.image.std()), 3)
    (['standardize'], 1.0)
    """
    from nanoseg.infer.network_input import network_input
    from nanoseg.io import Micrograph
    from nanoseg.preprocess import resample_to_shape

    if not isinstance(micrograph, Micrograph):
        micrograph = Micrograph(check_image(micrograph))
    if mask is not None:
        mask = check_mask(mask, micrograph.shape)
    net_in = network_input(micrograph, card_of(model), assume_model_pixel_size=True)
    if mask is not None and net_in.image.shape != mask.shape:
        mask = np.asarray(resample_to_shape(mask.astype(np.float32), net_in.image.shape, method="spatial")) >= 0.5
    return PreparedInput(image=net_in.image, mask=mask, pixel_size_nm=net_in.pixel_size_nm, steps=net_in.steps,
                         network_input=net_in)


def forward_logits(*args, **kwargs):
    """Deprecated name of :func:`network_logits` (kept for one release)."""
    import warnings

    warnings.warn("nanoseg.explain.forward_logits is now network_logits", DeprecationWarning, stacklevel=2)
    return network_logits(*args, **kwargs)
