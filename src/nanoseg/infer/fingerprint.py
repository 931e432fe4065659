"""What identifies a model for resuming a batch job: a sha1 of its checkpoint files.

Used by :mod:`nanoseg.workflows.predict` (``nanoseg predict``) and :mod:`nanoseg.insitu.watch` to refuse resuming
a folder with another model.

>>> model_fingerprint(None) == model_fingerprint("default")
True
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nanoseg.errors import NanosegError


def model_fingerprint(model) -> str | list:
    """What identifies a model for resuming: a sha1 of its checkpoint files (``card.json`` + weights, so a
    changed card counts too), or :func:`nanoseg.infer.engine.weights_fingerprint` of a network in memory; a
    list for an ensemble given as a list. ``None``/"default": the shipped model."""
    from nanoseg.models import LoadedModel
    from nanoseg.models.checkpoint import default_model_path

    if model is None or (isinstance(model, str) and model == "default"):
        return _files_sha1(default_model_path())
    if isinstance(model, str) and model == "auto":  # per image among the shipped models: all of them count
        from nanoseg.models.checkpoint import installed_models, shipped_model_path

        return "auto:" + ",".join(f"{n}={_files_sha1(shipped_model_path(n))}" for n in installed_models())
    if isinstance(model, str) and not Path(model).exists():
        from nanoseg.models.checkpoint import SHIPPED_MODELS, shipped_model_path

        if model in SHIPPED_MODELS:
            return _files_sha1(shipped_model_path(model))
    if isinstance(model, (list, tuple)):
        return [model_fingerprint(m) for m in model]
    if isinstance(model, (str, os.PathLike)):
        if not Path(model).exists():
            raise NanosegError("model not found", path=model,
                               hint="give a checkpoint directory, a .nanoseg file, or 'default'")
        return _files_sha1(Path(model))
    if isinstance(model, LoadedModel) and model.path.exists():
        return _files_sha1(model.path)
    from nanoseg.infer.engine import weights_fingerprint

    return "weights:" + weights_fingerprint(getattr(model, "module", model))


def _files_sha1(path: Path) -> str:
    """sha1 over a checkpoint file, or over the cards and weights below a checkpoint/ensemble folder."""
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and (p.name == "card.json" or p.suffix in {
            ".safetensors", ".pt", ".nanoseg"}))
    digest = hashlib.sha1()
    for file in files:
        digest.update((file.relative_to(path).as_posix() if file != path else file.name).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
