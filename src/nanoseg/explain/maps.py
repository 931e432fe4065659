"""Where does the network look? Raw output maps, occlusion and gradient saliency, line profiles.

* :func:`raw_output_maps` — the two pre-softmax channels (background, particle) and the softmax. Horwath et
  al. diagnosed an overfitting network from these: its background channel reproduced the *noise texture*
  of the support instead of a smooth map, i.e. it "recognizes background noise" rather than particles.
  :func:`raw_output_stats` puts numbers on it: per channel, the separation between particle and background
  pixels and how much of the channel's variance is fine texture.
* :func:`occlusion_map` — slide a patch filled with the image mean and record how much the mean particle
  probability of a region drops: the pixels the decision depends on.
* :func:`gradient_saliency` — |∂ target / ∂ input| (optionally SmoothGrad-averaged).
* :func:`particle_line_profiles` — raw intensity and probability along lines through chosen particles
  (the largest ones when none are given).

Example
-------
>>> import numpy as np, torch
>>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
>>> raw = raw_output_maps(net, np.zeros((16, 16), "float32"))
>>> raw.background_logit.shape, raw.probability.shape
((16, 16), (16, 16))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from nanoseg._util import progress_iter
from nanoseg.errors import NanosegError
from nanoseg.explain._network import (
    as_module,
    check_image,
    check_mask,
    forward_tensor,
    network_logits,
    particle_probability,
    softmax_particle,
)


# --------------------------------------------------------------------------------------------- raw maps
@dataclass
class RawOutput:
    """The network's two pre-softmax maps and the softmax particle probability of one image."""

    background_logit: np.ndarray
    particle_logit: np.ndarray
    probability: np.ndarray


def raw_output_maps(model, image) -> RawOutput:
    """Pre-softmax channels and softmax of one network-input image ``(H, W)``."""
    logits = network_logits(model, check_image(image))
    return RawOutput(background_logit=logits[0], particle_logit=logits[1], probability=softmax_particle(logits))


def raw_output_stats(raw: RawOutput, mask=None, *, texture_sigma_px: float = 2.0) -> pd.DataFrame:
    """Numbers behind the raw-map diagnosis, one row per channel (background logit, particle logit, softmax).

    Columns: ``mean_particle``, ``mean_background`` (over the given mask, or the prediction at 0.5),
    ``separation`` (difference of those means over the pooled within-class standard deviation, d′) and
    ``texture_fraction``: the share of the channel's within-class variance that lies in fine texture (the
    residual after a Gaussian smoothing of ``texture_sigma_px``). A channel that tracks the support's noise
    has a high texture fraction and a low separation.
    """
    region = (raw.probability >= 0.5) if mask is None else check_mask(mask, raw.probability.shape)
    rows = []
    for name, channel in (("background logit", raw.background_logit), ("particle logit", raw.particle_logit),
                          ("softmax particle", raw.probability)):
        channel = np.asarray(channel, dtype=np.float64)
        inside, outside = channel[region], channel[~region]
        mean_in = float(inside.mean()) if inside.size else np.nan
        mean_out = float(outside.mean()) if outside.size else np.nan
        within = np.concatenate([inside - (mean_in if inside.size else 0), outside - (mean_out if outside.size else 0)])
        spread = float(within.std())
        fine = channel - ndimage.gaussian_filter(channel, texture_sigma_px, mode="reflect")
        rows.append({
            "channel": name, "mean_particle": mean_in, "mean_background": mean_out,
            "separation": (mean_in - mean_out) / spread if spread > 0 and inside.size and outside.size else np.nan,
            "texture_fraction": float(fine.var() / within.var()) if within.var() > 0 else 0.0,
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------- occlusion
def _target_region(model, image: np.ndarray, region) -> np.ndarray:
    if region is not None:
        region = check_mask(region, image.shape, "region")
        if not region.any():
            raise NanosegError("the region to explain is empty", hint="give a mask with at least one pixel")
        return region
    predicted = particle_probability(model, image) >= 0.5
    return predicted if predicted.any() else np.ones(image.shape, dtype=bool)


def occlusion_map(model, image, *, region=None, patch_px: int = 8, stride_px: int = 4, fill: str = "mean",
                  batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """How much the mean particle probability over ``region`` drops when each part of the image is hidden.

    A ``patch_px`` square filled with the image mean (``fill="mean"``) or with a heavily blurred copy of the
    image (``fill="blur"``) slides with ``stride_px``; each pixel gets the average drop of the patches
    covering it. Positive = hiding this pixel lowers the particle score (evidence *for* particles),
    negative = evidence against.

    Parameters
    ----------
    region : boolean mask whose mean probability is the score; default the predicted particles (p ≥ 0.5),
        or the whole image when nothing is predicted.

    The cost is one forward pass per patch position, ``(H / stride)²``: use a crop for large frames.
    """
    image = check_image(image)
    patch_px, stride_px = int(patch_px), int(stride_px)
    if patch_px < 1 or stride_px < 1 or patch_px > min(image.shape):
        raise NanosegError(f"occlusion patch {patch_px} px / stride {stride_px} px do not fit the image "
                           f"{image.shape}", hint="use 1 ≤ stride ≤ patch ≤ the image size")
    if fill not in ("mean", "blur"):
        raise NanosegError(f"unknown occlusion fill {fill!r}", hint="use 'mean' or 'blur'")
    target = _target_region(model, image, region)
    reference = float(particle_probability(model, image)[target].mean())
    filler = (np.full_like(image, image.mean()) if fill == "mean"
              else ndimage.gaussian_filter(image, patch_px, mode="reflect"))
    starts_y = list(range(0, image.shape[0] - patch_px + 1, stride_px))
    starts_x = list(range(0, image.shape[1] - patch_px + 1, stride_px))
    if starts_y[-1] != image.shape[0] - patch_px:
        starts_y.append(image.shape[0] - patch_px)
    if starts_x[-1] != image.shape[1] - patch_px:
        starts_x.append(image.shape[1] - patch_px)
    positions = [(y, x) for y in starts_y for x in starts_x]
    total = np.zeros(image.shape, dtype=np.float64)
    count = np.zeros(image.shape, dtype=np.float64)
    chunks = [positions[i:i + batch_size] for i in range(0, len(positions), batch_size)]
    for chunk in progress_iter(chunks, "occlusion", enabled=progress):
        batch = np.repeat(image[None], len(chunk), axis=0)
        for b, (y, x) in enumerate(chunk):
            batch[b, y:y + patch_px, x:x + patch_px] = filler[y:y + patch_px, x:x + patch_px]
        probs = particle_probability(model, batch, batch_size=batch_size)
        for b, (y, x) in enumerate(chunk):
            total[y:y + patch_px, x:x + patch_px] += reference - float(probs[b][target].mean())
            count[y:y + patch_px, x:x + patch_px] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


# --------------------------------------------------------------------------------------------- gradients
def gradient_saliency(model, image, *, region=None, target: str = "probability", smoothgrad_samples: int = 0,
                      noise_std: float = 0.15, times_input: bool = False, seed: int = 0) -> np.ndarray:
    """|∂ score / ∂ input| where score is the mean particle probability (or logit margin) over ``region``.

    Parameters
    ----------
    region : mask of the output pixels explained; default the predicted particles.
    target : ``"probability"`` (mean softmax particle probability) or ``"logit"`` (mean particle − background
        logit).
    smoothgrad_samples : average the gradient over this many noisy copies (noise ``noise_std`` × image std);
        0 = plain gradient.
    times_input : return |gradient × input| instead.
    """
    image = check_image(image)
    if target not in ("probability", "logit"):
        raise NanosegError(f"unknown saliency target {target!r}", hint="use 'probability' or 'logit'")
    region_mask = torch.from_numpy(_target_region(model, image, region))
    module = as_module(model)
    rng = np.random.default_rng(seed)
    n = max(1, int(smoothgrad_samples))
    grads = np.zeros(image.shape, dtype=np.float64)
    for _ in range(n):
        noisy = image if smoothgrad_samples <= 0 else \
            image + rng.normal(0, noise_std * float(image.std()) + 1e-12, image.shape).astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32)).requires_grad_(True)
        logits = _forward_differentiable(module, x)
        if target == "probability":
            score = torch.softmax(logits, dim=0)[1][region_mask].mean()
        else:
            score = (logits[1] - logits[0])[region_mask].mean()
        (grad,) = torch.autograd.grad(score, x)
        g = grad.numpy().astype(np.float64)
        grads += np.abs(g * noisy) if times_input else g
    grads /= n
    return np.abs(grads).astype(np.float32)


def _forward_differentiable(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits (2, H, W) of one image tensor (H, W), padded like :func:`network_logits`, with gradients."""
    return forward_tensor(module, x[None])[0]


# --------------------------------------------------------------------------------------------- profiles
@dataclass
class ProfileLine:
    """A line through one particle: ``start`` and ``end`` as (row, col) pixel coordinates."""

    particle: int
    start: tuple[float, float]
    end: tuple[float, float]
    area_px: int = 0


def choose_particle_lines(mask, *, n_particles: int = 3, extend: float = 2.0) -> list[ProfileLine]:
    """Lines along the major axis through the centroid of the ``n_particles`` largest particles of ``mask``,
    ``extend`` × the major-axis length long (so they cross the support on both sides), clipped to the image.
    """
    from skimage.measure import label, regionprops

    mask = np.asarray(mask) > 0
    if mask.ndim != 2:
        raise NanosegError(f"mask must be 2-D, got shape {mask.shape}")
    regions = sorted(regionprops(label(mask)), key=lambda r: r.area, reverse=True)[: int(n_particles)]
    lines = []
    h, w = mask.shape
    for i, reg in enumerate(regions):
        cy, cx = reg.centroid
        half = max(reg.axis_major_length, 2.0) * extend / 2
        # skimage: orientation = angle between the row axis and the major axis
        dy, dx = np.cos(reg.orientation), np.sin(reg.orientation)
        start = (float(np.clip(cy - half * dy, 0, h - 1)), float(np.clip(cx - half * dx, 0, w - 1)))
        end = (float(np.clip(cy + half * dy, 0, h - 1)), float(np.clip(cx + half * dx, 0, w - 1)))
        lines.append(ProfileLine(particle=i, start=start, end=end, area_px=int(reg.area)))
    return lines


def particle_line_profiles(image, probability, *, mask=None, lines: Sequence[ProfileLine] | None = None,
                           n_particles: int = 3, pixel_size_nm: float | None = None,
                           extend: float = 2.0) -> pd.DataFrame:
    """Raw intensity and particle probability (and the true mask, if given) along lines across particles.

    Lines default to :func:`choose_particle_lines` on ``mask`` (or on ``probability ≥ 0.5`` without one).

    Returns
    -------
    DataFrame: ``particle``, ``distance_px``, ``distance_nm`` (NaN without a pixel size), ``intensity``,
    ``probability`` and ``truth`` (0/1, NaN without a mask). Empty when there is no particle.
    """
    from skimage.measure import profile_line

    image = check_image(image)
    probability = check_image(probability, "probability")
    if probability.shape != image.shape:
        raise NanosegError(f"probability {probability.shape} and image {image.shape} differ in shape")
    truth = None if mask is None else check_mask(mask, image.shape)
    if lines is None:
        lines = choose_particle_lines(truth if truth is not None else probability >= 0.5,
                                      n_particles=n_particles, extend=extend)
    frames = []
    for line in lines:
        kw = dict(order=1, mode="reflect", linewidth=1)
        intensity = profile_line(image, line.start, line.end, **kw)
        prob = profile_line(probability, line.start, line.end, **kw)
        on_truth = (profile_line(truth.astype(np.float32), line.start, line.end, order=0, mode="reflect")
                    if truth is not None else np.full(len(intensity), np.nan))
        distance = np.linspace(0, np.hypot(line.end[0] - line.start[0], line.end[1] - line.start[1]), len(intensity))
        frames.append(pd.DataFrame({
            "particle": line.particle, "distance_px": distance,
            "distance_nm": distance * pixel_size_nm if pixel_size_nm else np.nan,
            "intensity": intensity, "probability": prob, "truth": on_truth,
        }))
    if not frames:
        return pd.DataFrame(columns=["particle", "distance_px", "distance_nm", "intensity", "probability", "truth"])
    return pd.concat(frames, ignore_index=True)


__all__ = [
    "ProfileLine", "RawOutput", "choose_particle_lines", "gradient_saliency", "occlusion_map",
    "particle_line_profiles", "raw_output_maps", "raw_output_stats",
]
