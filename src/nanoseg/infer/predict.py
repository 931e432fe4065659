"""``predict``: segment a micrograph of any size with a model (or an ensemble), the way it was trained.

For each model: the input becomes the network input exactly as in training and in ``nanoseg.explain``
(:func:`nanoseg.infer.network_input.network_input`: resampled to the card's ``pixel_size_nm``, the card's
preprocessing pipeline, bottom/right reflect padding to the network's ``size_multiple``), the image is cut
into tiles that overlap by more than the network's receptive field and blended so the result equals a
whole-image pass (:mod:`.tiling`); the particle probability ``softmax(logits)[1]`` is resampled back to the
input grid (bilinear). Ensembles and 8-fold dihedral test-time augmentation average probabilities; their
per-pixel variance is the uncertainty map. Out-of-distribution checks compare the input with the card's training ranges (:mod:`.ood`).

Example
-------
>>> import numpy as np
>>> from nanoseg.io import Micrograph
>>> from nanoseg.models import build_model
>>> net = build_model("unet3")
>>> image = Micrograph(np.random.default_rng(0).random((64, 80)), pixel_size_nm=0.2)
>>> pred = predict(image, net, engine="fused")   # engine="auto" first times the engines on a 512² input
>>> pred.probability.shape, pred.mask.dtype, pred.pixel_size_nm
((64, 80), dtype('uint8'), 0.2)
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nanoseg.errors import NanosegError
from nanoseg.infer.engine import Runner, make_runner, network_signature, resolve_device, weights_fingerprint
from nanoseg.infer.network_input import network_input
from nanoseg.infer.ood import check_distribution, check_mask, image_statistics
from nanoseg.infer.quality import check_window, estimate_quality, uses_view_feature
from nanoseg.infer.scale import resolve_pixel_size
from nanoseg.infer.tiling import context_px, count_tiles, pad_to_multiple, tiled_apply

DEFAULT_TILE_PX = 4096  # CPU: the largest tile side measured fastest (docs/performance.md) — per pixel, big tiles
# run faster than small ones in both CPU engines and need no overlap: a 4096² frame is one pass (≈ 3.7 GB of
# activations), larger frames are tiled; tile_size=2304 cuts a 4096² frame into 2 × 2 tiles (≈ 1.5 GB, about
# 15 % slower: +6 % / +13 % overlap pixels for 46 / 107 px contexts)
GPU_TILE_PX = 2048  # GPU: batches of tiles of this side (not measured on a GPU here)
RAMP_PX = 16


@dataclass
class Prediction:
    """What :func:`predict` returns; every map is on the input image's grid.

    Attributes
    ----------
    probability : float32 (H, W) particle probability (mean over ensemble members / TTA views).
    mask : uint8 (H, W) 0/1, ``probability >= threshold``.
    threshold : the threshold used (the Otsu value when ``threshold="otsu"``).
    pixel_size_nm : the input's pixel size: the file's, the override, or one assumed from the particle size
        (``metadata["pixel_size_source"]`` says which); None when unknown and the model's was assumed.
    logits : float32 (2, H, W) mean raw outputs (background, particle), when ``return_logits=True``.
    variance : float32 (H, W) per-pixel variance of the probability over members/views (ensembles, TTA).
    warnings : human-readable warnings (out of distribution, assumed pixel size, ...).
    ood : out-of-distribution flags per check (True = outside the training range).
    metadata : models, engine, tiles, timings, image statistics, ``quality`` (features of the estimate), ...
    estimated_dice : estimated hard Dice of ``mask`` in [0, 1], from inference-time features only
        (:mod:`.quality`; calibrated when the card has a ``quality_calibration``); None when not estimated.
    low_confidence : ``estimated_dice < nanoseg.infer.quality.LOW_CONFIDENCE_DICE`` (0.8).
    """

    probability: np.ndarray
    mask: np.ndarray
    threshold: float
    pixel_size_nm: float | None
    logits: np.ndarray | None = None
    variance: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    ood: dict[str, bool] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    estimated_dice: float | None = None
    low_confidence: bool | None = None

    @property
    def out_of_distribution(self) -> bool:
        return any(self.ood.values())


# ------------------------------------------------------------------------------------------ models
def _wrap_module(module: nn.Module):
    from nanoseg.models import LoadedModel, ModelCard, count_parameters

    card = ModelCard(architecture=str(getattr(module, "architecture", type(module).__name__)),
                     n_parameters=count_parameters(module))
    return LoadedModel(module=module.eval(), card=card, path=Path("<in-memory>"))


def _is_checkpoint(path: Path) -> bool:
    return (path.is_dir() and (path / "card.json").exists()) or (path.is_file() and path.suffix == ".nanoseg")


def resolve_models(model=None, *, device: str | torch.device = "cpu") -> list:
    """Turn what a user passes as "the model" into a list of ``LoadedModel`` (one = single model).

    Accepts ``None``/``"default"`` (the shipped default model), the name of another shipped model
    (``"haadf_stem"``, ``"bf_tem"``: :data:`nanoseg.models.checkpoint.SHIPPED_MODELS`), a checkpoint directory or ``.nanoseg`` file,
    an ``.onnx`` / ``.pt`` file written by ``nanoseg export`` (:mod:`nanoseg.infer.export`),
    a directory holding several checkpoints (an ensemble, e.g. the k fold models), a ``LoadedModel``, a
    bare ``nn.Module`` (card without preprocessing or pixel size), or a list of any of these.
    """
    from nanoseg.models import LoadedModel, load_default_model, load_model
    from nanoseg.models.checkpoint import SHIPPED_MODELS, load_shipped_model

    if model is None or (isinstance(model, str) and model == "default"):
        return [load_default_model(device=device)]
    if isinstance(model, str) and model in SHIPPED_MODELS:  # "haadf_stem", "bf_tem"
        return [load_shipped_model(model, device=device)]
    if isinstance(model, str) and model == "auto":
        raise NanosegError("model 'auto' is chosen per image", hint="call predict(micrograph, 'auto'), or name a model")
    if isinstance(model, LoadedModel):
        return [model]
    if isinstance(model, nn.Module):
        return [_wrap_module(model)]
    if isinstance(model, (list, tuple)):
        out = [m for item in model for m in resolve_models(item, device=device)]
        if not out:
            raise NanosegError("the ensemble is empty", hint="give at least one model")
        return out
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise NanosegError("model not found", path=path,
                               hint="give a checkpoint directory, a .nanoseg file, or 'default'")
        if _is_checkpoint(path):
            return [load_model(path, device=device)]
        from nanoseg.infer.export import is_exported, load_exported

        if is_exported(path):  # an .onnx / .pt written by `nanoseg export`: the card comes from the file
            return [load_exported(path)]
        if path.is_dir():
            members = sorted(p for p in path.iterdir() if _is_checkpoint(p))
            if not members:
                raise NanosegError("no model checkpoints in this folder", path=path,
                                   hint="a checkpoint is a folder with card.json + weights, or a .nanoseg file")
            return [load_model(p, device=device) for p in members]
        raise NanosegError("not a model checkpoint", path=path, hint="expected a .nanoseg file or a folder")
    raise NanosegError(f"cannot use {type(model).__name__} as a model")


# ------------------------------------------------------------------------------------------ TTA
def _dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the 8 dihedral transforms (k = 0..7) of a (…, H, W) array."""
    out = np.rot90(image, k % 4, axes=(-2, -1))
    return np.flip(out, axis=-1) if k >= 4 else out


def _undo_dihedral(image: np.ndarray, k: int) -> np.ndarray:
    out = np.flip(image, axis=-1) if k >= 4 else image
    return np.rot90(out, -(k % 4), axes=(-2, -1))


# ------------------------------------------------------------------------------------------ predict
def forward_logits(runner: Runner, image: np.ndarray, *, size_multiple: int, tile_px: int | None,
                   margin_px: int, ramp_px: int = RAMP_PX, batch_size: int = 1) -> np.ndarray:
    """(2, H, W) logits of one preprocessed image, by tiles (or one pass with ``tile_px=None``)."""
    padded, (h, w) = pad_to_multiple(np.asarray(image, np.float32), size_multiple)
    logits = tiled_apply(runner, padded, tile_px=tile_px, margin_px=margin_px, multiple=size_multiple,
                         ramp_px=ramp_px, batch_size=batch_size)
    return logits[:, :h, :w]


def probability_from_logits(logits: np.ndarray) -> np.ndarray:
    """Particle probability softmax(logits)[1] = sigmoid(l1 − l0), float32 (one new array, the rest in place).

    ``torch.sigmoid`` is stable for any difference (saturates to exactly 0 or 1) and vectorized/threaded;
    float32 rounding (≈ 1e-7) is far inside the 1e-4 equality bound."""
    diff = np.subtract(np.asarray(logits[1], np.float32), np.asarray(logits[0], np.float32), dtype=np.float32)
    t = torch.from_numpy(diff)
    torch.sigmoid(t, out=t)
    return diff


_RUNNERS: dict[tuple, tuple] = {}
_MAX_RUNNERS = 16


def _zoo_signature(module: nn.Module) -> str | None:
    """The :func:`~nanoseg.infer.engine.network_signature` of a network built by ``nanoseg.models.build_model``
    (its computation is fixed by architecture, config and layers), else None: a network of any other class
    may hold plain attributes that change its output without showing in its layers or weights."""
    import dataclasses

    from nanoseg.models import list_models

    config = getattr(module, "config", None)
    if (type(module).__module__ != "nanoseg.models.zoo" or getattr(module, "architecture", None) not in list_models()
            or config is None or not dataclasses.is_dataclass(config)):
        return None
    return f"{module.architecture}|{config!r}|{network_signature(module)}"


def get_runner(module: nn.Module, *, engine: str = "auto", device: str | torch.device = "auto") -> Runner:
    """A cached :class:`~nanoseg.infer.engine.Runner` per (network, weights, engine, device).

    Each runner is built from a :func:`~nanoseg.infer.engine.weights_fingerprint` of the network (≈ 2 ms):
    after the weights change (training steps, ``load_state_dict``, edits in place) a new runner is built
    instead of returning the old weights' output. Every engine but ``eager`` runs on its own copy of the
    weights (folded, traced, exported), so for a network of nanoseg's model zoo its runner is shared by
    every object with the same architecture, config, layers and weights: a model loaded again for every
    call (``predict(model=None)``, a checkpoint path) reuses the built engine. Other runners are kept per
    object (checked by identity: a new network that reuses a freed object's id never gets a stale runner).
    At most 16 runners are kept (oldest dropped first).
    """
    dev = resolve_device(device)
    fingerprint = weights_fingerprint(module)
    signature = None if engine == "eager" else _zoo_signature(module)
    key: tuple = (engine, str(dev), id(module)) if signature is None else (engine, str(dev), signature, fingerprint)
    entry = _RUNNERS.get(key)
    if entry is None or (signature is None and (entry[0]() is not module or entry[1] != fingerprint)):
        _RUNNERS.pop(key, None)
        if len(_RUNNERS) >= _MAX_RUNNERS:
            _RUNNERS.pop(next(iter(_RUNNERS)))
        entry = (weakref.ref(module), fingerprint, make_runner(module, engine=engine, device=dev))
        _RUNNERS[key] = entry
    return entry[2]


def predict(
    micrograph,
    model=None,
    *,
    threshold: float | str = 0.5,
    tta: bool = False,
    batch_size: int | None = None,
    tile_size: int | str | None = "auto",
    overlap_px: int | None = None,
    return_logits: bool = False,
    pixel_size_nm: float | None = None,
    assume_model_pixel_size: bool = False,
    particle_diameter_px: float | None = None,
    pipeline=None,
    device: str | torch.device = "auto",
    engine: str = "auto",
    ood: bool = True,
    quality_view: bool | None = None,
) -> Prediction:
    """Segment one micrograph.

    Parameters
    ----------
    micrograph : a :class:`nanoseg.io.Micrograph` (or a 2-D array, then give ``pixel_size_nm``).
    model : see :func:`resolve_models` — ``None``/"default", a checkpoint path, a folder of checkpoints
        (ensemble), a ``LoadedModel``, an ``nn.Module``, or a list (ensemble); ``"auto"``: the shipped model
        that fits the image (:func:`nanoseg.infer.auto.pick_model`; said in the warnings, ``metadata["model_choice"]``).
    threshold : probability threshold in (0, 1), or ``"otsu"`` (Otsu of the probability map).
    tta : average over the 8 dihedral views (rotations × flip); adds to the variance map.
    batch_size : tiles per forward pass (default 1 on CPU, 8 on a GPU).
    tile_size : tile side in pixels of the model grid (multiple of the network's ``size_multiple``);
        ``None`` runs one whole-image pass; ``"auto"``: :data:`DEFAULT_TILE_PX` on the CPU (measured fastest),
        :data:`GPU_TILE_PX` on a GPU.
    overlap_px : total overlap of neighbouring tiles; default ``2 × context + 16`` ≥ the receptive field,
        which makes the tiled output equal to the whole-image output. Smaller values trade exactness for speed.
    return_logits : also return the mean raw two-channel outputs (resampled to the input grid).
    pixel_size_nm : override the micrograph's pixel size (nm).
    assume_model_pixel_size : when the input has no pixel size, assume it equals the model's.
        Without it (and without ``pixel_size_nm``), a model whose card records ``particle_diameter_range_nm``
        gets a pixel size assumed from the particle size (:mod:`.scale`), said in a warning.
    particle_diameter_px : for an input without pixel size: its typical particle diameter in pixels, which
        sets the assumed pixel size instead of the estimate (:func:`nanoseg.infer.scale.resolve_pixel_size`).
    pipeline : preprocessing to run instead of each card's (a built-in name such as ``"sytwu"``, a step list,
        a YAML/JSON file: :meth:`nanoseg.preprocess.Pipeline.from_spec`); recorded in ``metadata["preprocessing"]``.
    device : "auto" (GPU if available), "cpu", "cuda".
    engine : inference engine (see :mod:`nanoseg.infer.engine`); "auto" picks the fastest exact one.
    ood : run the out-of-distribution checks.
    quality_view : with one model and no TTA, run the quality estimate's cheap second view (a flipped pass over a
        ≤ 768² centre crop of the network grid: +7 % at 4096², up to 2× on frames whose grid is ≤ 768²) for its
        ``view_dice`` feature. None (auto): only when the card's ``quality_calibration`` uses ``view_dice``.
    """
    from nanoseg._pixel import binarize, otsu_threshold
    from nanoseg.io import Micrograph
    from nanoseg.preprocess import quantization_notes

    if not isinstance(micrograph, Micrograph):
        micrograph = Micrograph(np.asarray(micrograph), pixel_size_nm=pixel_size_nm)
    micrograph.check_finite()
    if isinstance(threshold, str) and threshold.lower() != "otsu":
        raise NanosegError(f"threshold must be a number in (0, 1) or 'otsu', got {threshold!r}")
    if not isinstance(threshold, str) and not 0 < float(threshold) < 1:
        raise NanosegError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    dev = resolve_device(device)
    choice = None
    if isinstance(model, str) and model == "auto":  # a shipped model by modality, pixel size, polarity
        from nanoseg.infer.auto import pick_model

        choice = pick_model(micrograph, pixel_size_nm=pixel_size_nm)
        model = choice.name
    models = resolve_models(model, device="cpu")
    if batch_size is None:
        batch_size = 8 if dev.type == "cuda" else 1
    if isinstance(tile_size, str):
        if tile_size != "auto":
            raise NanosegError(f"tile size must be a number of pixels, None or 'auto', got {tile_size!r}")
        tile_size = GPU_TILE_PX if dev.type == "cuda" else DEFAULT_TILE_PX
    if batch_size < 1:
        raise NanosegError(f"batch size must be ≥ 1, got {batch_size}")
    started = time.perf_counter()
    shape = micrograph.shape
    notes: list[str] = [] if choice is None else [choice.message]
    probs, logit_sum, member_info = [], None, []
    check_pair = None  # one model, one view: main vs flipped second view over a centre crop (quality estimate)
    use_view = uses_view_feature(models[0].card.quality_calibration) if quality_view is None else bool(quality_view)
    input_px = None
    pixel_size_nm, px_source, px_notes = resolve_pixel_size(
        micrograph, models[0].card, pixel_size_nm=pixel_size_nm, particle_diameter_px=particle_diameter_px,
        assume_model_pixel_size=assume_model_pixel_size)
    notes += px_notes + quantization_notes(micrograph)
    if pipeline is not None:
        from nanoseg.preprocess import Pipeline

        pipeline = Pipeline.from_spec(pipeline)
    for loaded in models:
        card, module = loaded.card, loaded.module
        net_in = network_input(micrograph, card, pixel_size_nm=pixel_size_nm,
                               assume_model_pixel_size=assume_model_pixel_size, pipeline=pipeline)
        input_px, image, grid_px = net_in.input_pixel_size_nm, net_in.image, net_in.pixel_size_nm
        notes += [n for n in net_in.notes if n not in notes]
        multiple = int(getattr(module, "size_multiple", 1))
        context = context_px(module, receptive_field_px=card.receptive_field_px)
        if overlap_px is None:
            margin, ramp = context, RAMP_PX
        else:
            ramp = min(RAMP_PX, max(int(overlap_px) // 4, 0))
            margin = max((int(overlap_px) - ramp) // 2, 0)
            if margin < context:
                notes.append(f"overlap {overlap_px} px < the network's context 2×{context}+{ramp} px: tile seams "
                             "may differ slightly from a whole-image pass")
        tile = None if tile_size is None else max(int(tile_size) // multiple * multiple, multiple)
        if tile is not None and tile < 2 * margin + ramp + multiple:
            raise NanosegError(f"tile size {tile_size} px is too small for this network (context {context} px)",
                               hint=f"use tile_size=N with N ≥ {2 * margin + ramp + 2 * multiple}")
        runner = get_runner(module, engine=engine, device=dev)
        views = range(8) if tta else range(1)
        for k in views:
            logits = forward_logits(runner, _dihedral(image, k), size_multiple=multiple, tile_px=tile,
                                    margin_px=margin, ramp_px=ramp, batch_size=batch_size)
            logits = np.ascontiguousarray(_undo_dihedral(logits, k))
            if return_logits:
                back = net_in.to_input_grid(logits)
                logit_sum = back if logit_sum is None else logit_sum + back
            if len(models) == 1 and not tta and use_view:
                check_pair = _check_view(runner, image, logits, context_px=context, size_multiple=multiple,
                                         tile_px=tile, margin_px=margin, ramp_px=ramp, batch_size=batch_size)
            probs.append(net_in.to_input_grid(probability_from_logits(logits)))
        member_info.append({"path": str(loaded.path), "architecture": card.architecture, "name": card.name,
                            "engine": runner.engine, "onnx_level": runner.onnx_level,
                            "engine_calibration_s": dict(runner.calibration),
                            "engine_calibration_cached": runner.calibration_cached,
                            "model_pixel_size_nm": card.pixel_size_nm,
                            "network_grid_shape": list(image.shape), "network_grid_pixel_size_nm": grid_px,
                            "context_px": context, "margin_px": margin, "tile_px": tile,
                            "n_tiles": count_tiles(image.shape, tile_px=tile, margin_px=margin, ramp_px=ramp,
                                                   multiple=multiple)})
    if len(probs) == 1:  # one model, one view: no stack/mean copies of the frame
        probability = np.clip(probs[0], 0.0, 1.0, out=probs[0])
        variance = None
    else:
        stack = np.stack(probs)
        probability = np.clip(stack.mean(axis=0), 0.0, 1.0).astype(np.float32)
        variance = stack.var(axis=0).astype(np.float32)
    used = otsu_threshold(probability) if isinstance(threshold, str) else float(threshold)
    mask = binarize(probability, used).astype(np.uint8)
    flags: dict[str, bool] = {}
    stats: dict[str, float] = {}
    if ood:
        stats = image_statistics(micrograph.data, mask.astype(bool))
        for loaded in models:
            measured_px = input_px if px_source in ("file", "option") else None  # an assumed one says nothing
            f, w = check_distribution(loaded.card, pixel_size_nm=measured_px, dose_e_per_A2=micrograph.dose_e_per_A2,
                                      statistics=stats)
            for key, value in f.items():
                flags[key] = flags.get(key, False) or value
            notes += [n for n in w if n not in notes]
    mask_checks, w = check_mask(mask, models[0].card, input_pixel_size_nm=input_px, probability=probability,
                                threshold=used)
    notes += [n for n in w if n not in notes]
    if ood and "particle_size" in mask_checks:
        flags["particle_size"] = mask_checks["particle_size"]
    metadata = {
        "source": micrograph.source, "shape": list(shape), "threshold": used,
        "pixel_size_source": px_source, "mask_checks": mask_checks,
        "preprocessing": _preprocessing_record(models, pipeline),
        "threshold_rule": "otsu" if isinstance(threshold, str) else "fixed", "tta": tta,
        "n_members": len(models), "n_views": len(probs), "models": member_info, "image_statistics": stats,
        "device": str(dev), "seconds": round(time.perf_counter() - started, 4),
        "out_of_distribution": any(flags.values()),
    }
    if choice is not None:
        metadata["model_choice"] = choice.as_metadata()
    quality = estimate_quality(probability, mask, threshold=used, views=probs if len(probs) > 1 else None,
                               check_pair=check_pair, ood_flags=flags if ood else None,
                               calibration=models[0].card.quality_calibration, model_path=models[0].path)
    metadata["quality"] = quality.as_metadata()
    if quality.warning():
        notes.append(quality.warning())
    metadata["seconds"] = round(time.perf_counter() - started, 4)
    return Prediction(
        probability=probability, mask=mask, threshold=used, pixel_size_nm=input_px,
        logits=None if logit_sum is None else (logit_sum / len(probs)).astype(np.float32),
        variance=variance, warnings=notes, ood=flags, metadata=metadata,
        estimated_dice=quality.estimated_dice, low_confidence=quality.low_confidence,
    )


def _check_view(runner: Runner, image: np.ndarray, logits: np.ndarray, *, context_px: int, **forward):
    """The quality estimate's cheap second view (:func:`nanoseg.infer.quality.check_window`): the main view's
    probability and that of a flipped pass over a centre crop, both over the crop's compared part."""
    crop, inner = check_window(image.shape, context_px=context_px)
    other = forward_logits(runner, _dihedral(image[crop], 4), **forward)
    other = probability_from_logits(np.ascontiguousarray(_undo_dihedral(other, 4)))
    main = probability_from_logits(logits[(slice(None), *crop)])
    return main[inner], other[inner]


def _preprocessing_record(models, pipeline) -> dict[str, Any]:
    """Which preprocessing ran: the ``pipeline`` override (and whether it differs from each card's) or the cards'."""
    from nanoseg.preprocess import BUILTIN, Pipeline

    cards = [list(m.card.preprocessing or []) for m in models]
    steps = cards[0] if pipeline is None else pipeline.to_spec()
    name = next((key for key, built in BUILTIN.items() if built.to_spec() == steps and key != "default"), None)
    differs = pipeline is not None and any(Pipeline.from_spec(c) != pipeline for c in cards)
    return {"source": "card" if pipeline is None else "--pipeline", "name": name, "steps": steps,
            "differs_from_card": differs}


def predict_many(micrographs: Sequence, model=None, **options) -> list[Prediction]:
    """:func:`predict` on several micrographs with the model(s) loaded once ("auto": chosen per image)."""
    models = model if isinstance(model, str) and model == "auto" else resolve_models(model)
    return [predict(m, models, **options) for m in micrographs]
