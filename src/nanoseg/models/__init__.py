"""Architectures (a registry by name), parameter counts, receptive fields, checkpoints and model cards.

Example
-------
>>> from nanoseg.models import build_model, count_parameters, receptive_field
>>> net = build_model("norm_unet")
>>> count_parameters(net), receptive_field(net), net.size_multiple
(86590, 78, 16)
"""

from nanoseg._lazy import lazy_attributes
from nanoseg.models.card import ModelCard
from nanoseg.models.checkpoint import (
    LoadedModel,
    default_model_path,
    load_default_model,
    load_model,
    read_card,
    save_model,
)
from nanoseg.models.receptive import receptive_field
from nanoseg.models.zoo import build_model, count_parameters, describe_models, list_models

__all__ = [
    "LoadedModel", "ModelCard", "build_model", "count_parameters", "default_model_path", "describe_models",
    "list_models", "load_default_model", "load_model", "read_card", "receptive_field", "save_model",
]

# building blocks: importable from here for old code, documented in their modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "CARD_FORMAT_VERSION": "nanoseg.models.card", "complete_card": "nanoseg.models.checkpoint",
    "receptive_field_span": "nanoseg.models.receptive", "EncoderDecoderConfig": "nanoseg.models.zoo",
    "HorwathUNetConfig": "nanoseg.models.zoo", "ModernUNetConfig": "nanoseg.models.zoo",
    "SytwuResUNetConfig": "nanoseg.models.zoo", "UNet3Config": "nanoseg.models.zoo",
    "config_dict": "nanoseg.models.zoo", "model_config": "nanoseg.models.zoo",
}, submodules=["card", "checkpoint", "receptive", "zoo"])
