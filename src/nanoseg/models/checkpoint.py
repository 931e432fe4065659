"""Checkpoints: ``weights.safetensors`` + ``card.json`` in a directory, or a ``.nanoseg`` zip of both.

No pickled code is ever loaded: weights are read with safetensors (or, for a ``weights.pt`` state dict,
``torch.load(weights_only=True)``), and the network is rebuilt from the card's ``architecture`` and
``config`` through the registry. A card written by a newer nanoseg (higher ``format_version``) is refused.

Example
-------
>>> import tempfile, torch
>>> from nanoseg.models import build_model, ModelCard
>>> net = build_model("unet3")
>>> path = save_model(tempfile.mkdtemp() + "/m.nanoseg", net, ModelCard(architecture="unet3"))
>>> loaded = load_model(path)
>>> loaded.card.n_parameters, loaded.module.training
(16002, False)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from pydantic import ValidationError
from torch import nn

from nanoseg._util import atomic_path
from nanoseg.errors import NanosegError
from nanoseg.models.card import CARD_FORMAT_VERSION, ModelCard
from nanoseg.models.receptive import receptive_field
from nanoseg.models.zoo import build_model, config_dict, count_parameters

WEIGHTS, WEIGHTS_PT, CARD = "weights.safetensors", "weights.pt", "card.json"
ZIP_SUFFIX = ".nanoseg"


@dataclass
class LoadedModel:
    """A network ready for inference: ``module`` (eval mode), its ``card`` and where it came from."""

    module: nn.Module
    card: ModelCard
    path: Path

    @property
    def size_multiple(self) -> int:
        return int(getattr(self.module, "size_multiple", 1))


def _state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel / DataParallel
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def complete_card(model: nn.Module, card: ModelCard) -> ModelCard:
    """Fill ``architecture``/``config``/``n_parameters``/``receptive_field_px`` from the network."""
    net = getattr(model, "module", model)
    arch = getattr(net, "architecture", None)
    update: dict = {}
    if arch is not None and card.architecture != arch:
        raise NanosegError(f"card architecture {card.architecture!r} does not match the network ({arch!r})")
    if not card.config:
        update["config"] = config_dict(net)
    if card.n_parameters is None:
        update["n_parameters"] = count_parameters(net)
    if card.receptive_field_px is None:
        update["receptive_field_px"] = receptive_field(net)
    return card.model_copy(update=update) if update else card


def save_model(path: str | os.PathLike, model: nn.Module, card: ModelCard) -> Path:
    """Write ``weights.safetensors`` + ``card.json`` into directory ``path`` (a ``.nanoseg`` path → a zip).

    Missing card fields that the network knows (config, parameter count, receptive field) are filled in.
    Returns the written path.
    """
    from safetensors.torch import save as st_save

    path = Path(path)
    card = complete_card(model, card)
    weights = st_save(_state_dict_for_saving(model), metadata={"format": "pt", "architecture": card.architecture})
    card_text = card.model_dump_json(indent=2)
    if path.suffix == ZIP_SUFFIX:
        with atomic_path(path) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(WEIGHTS, weights)
                zf.writestr(CARD, card_text)
        return path
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / WEIGHTS) as tmp:
        tmp.write_bytes(weights)
    with atomic_path(path / CARD) as tmp:
        tmp.write_text(card_text)
    return path


def read_card(text: str | bytes, *, path: str | os.PathLike | None = None) -> ModelCard:
    """Parse and validate a card; refuse one from a newer card format."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise NanosegError(f"card.json is not valid JSON ({exc})", path=path, hint="the checkpoint is damaged") from exc
    if not isinstance(raw, dict):
        raise NanosegError("card.json must hold a JSON object", path=path)
    version = raw.get("format_version", CARD_FORMAT_VERSION)
    if not isinstance(version, int) or version > CARD_FORMAT_VERSION:
        raise NanosegError(
            f"model card format {version} is newer than this nanoseg understands ({CARD_FORMAT_VERSION})",
            path=path, hint="upgrade nanoseg to load this model",
        )
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise NanosegError(f"invalid model card: {where}: {first['msg']}", path=path) from exc


def _read_weights(data: bytes, name: str, *, path) -> dict[str, torch.Tensor]:
    try:
        if name == WEIGHTS:
            from safetensors.torch import load as st_load

            return st_load(data)
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError("not a state dict")
        return state
    except Exception as exc:  # safetensors and torch raise many types for damaged files
        raise NanosegError(f"cannot read {name} ({type(exc).__name__}: {exc})", path=path,
                           hint="the weights file is damaged or incomplete; re-download or re-train the model") from exc


def _read_checkpoint(path: Path) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    if not path.exists():
        raise NanosegError("model checkpoint not found", path=path,
                           hint="give a checkpoint directory or a .nanoseg file written by `nanoseg train`")
    if path.is_file() and path.name == CARD:
        path = path.parent
    if path.is_dir():
        card_file = path / CARD
        if not card_file.exists():
            raise NanosegError("not a model checkpoint (no card.json)", path=path)
        card = read_card(card_file.read_text(), path=card_file)
        for name in (WEIGHTS, WEIGHTS_PT):
            if (path / name).exists():
                return card, _read_weights((path / name).read_bytes(), name, path=path / name)
        raise NanosegError(f"no {WEIGHTS} next to card.json", path=path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if CARD not in names:
                raise NanosegError("not a model checkpoint (no card.json in the archive)", path=path)
            card = read_card(zf.read(CARD), path=path)
            for name in (WEIGHTS, WEIGHTS_PT):
                if name in names:
                    return card, _read_weights(zf.read(name), name, path=path)
    except zipfile.BadZipFile as exc:
        raise NanosegError("not a model checkpoint (neither a directory nor a .nanoseg zip)", path=path,
                           hint="the file may be damaged") from exc
    raise NanosegError(f"no {WEIGHTS} in the archive", path=path)


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a network from its card and load its weights (eval mode, on ``device``)."""
    path = Path(path)
    card, state = _read_checkpoint(path)
    module = build_model(card.architecture, **card.config)
    missing, unexpected = [], []
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise NanosegError(
            f"weights do not fit architecture {card.architecture!r} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})", path=path,
            hint="card.json and the weights file come from different models")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise NanosegError(f"weight {key} has shape {tuple(value.shape)}, the architecture expects "
                               f"{tuple(own[key].shape)}", path=path)
    module.load_state_dict(state)
    module.to(device).eval()
    return LoadedModel(module=module, card=card, path=path)


def default_model_path() -> Path:
    """Where the shipped default model lives inside the installed package."""
    root = resources.files("nanoseg") / "data" / "models" / "default"
    path = Path(str(root))
    if not (path / CARD).exists():
        raise NanosegError("the default model is not installed", path=path,
                           hint="reinstall nanoseg, or pass a model with model=PATH")
    return path


def load_default_model(*, device: str | torch.device = "cpu") -> LoadedModel:
    """Load the default model shipped with nanoseg (see ``docs/models.md``)."""
    return load_model(default_model_path(), device=device)


#: the models shipped inside the package, one per imaging mode (src/nanoseg/data/models/<name>/, docs/models.md):
#: default (lattice-resolved HRTEM), haadf_stem (bright particles), bf_tem (particle-resolving bright field)
SHIPPED_MODELS = ("default", "haadf_stem", "bf_tem")


def shipped_model_path(name: str = "default") -> Path:
    """Where the shipped model ``name`` (one of :data:`SHIPPED_MODELS`) lives inside the installed package."""
    if name not in SHIPPED_MODELS:
        raise NanosegError(f"no shipped model named {name!r}", hint=f"choose one of: {', '.join(SHIPPED_MODELS)}")
    if name == "default":
        return default_model_path()
    path = Path(str(resources.files("nanoseg") / "data" / "models" / name))
    if not (path / CARD).exists():
        raise NanosegError(f"the shipped {name} model is not installed", path=path,
                           hint="reinstall nanoseg, or pass a model with model=PATH")
    return path


def installed_models() -> list[str]:
    """The names of the shipped models present in this installation."""
    root = Path(str(resources.files("nanoseg") / "data" / "models"))
    return [name for name in SHIPPED_MODELS if (root / name / CARD).exists()]


def load_shipped_model(name: str = "default", *, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a shipped model by name (``load_shipped_model("bf_tem")``); see :data:`SHIPPED_MODELS`."""
    return load_model(shipped_model_path(name), device=device)


def unpack(path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Extract a ``.nanoseg`` zip into a checkpoint directory (for inspection)."""
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        with zipfile.ZipFile(path) as zf:
            for name in (CARD, WEIGHTS, WEIGHTS_PT):
                if name in zf.namelist():
                    zf.extract(name, tmp)
        out.mkdir(parents=True, exist_ok=True)
        for item in Path(tmp).iterdir():
            shutil.move(str(item), out / item.name)
    return out
