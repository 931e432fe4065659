"""Architectures (a registry by name), parameter counts, receptive fields, checkpoints and model cards.

Example
-------
>>> from nanoseg.models import build_model, count_parameters, receptive_field
>>> net = build_model("norm_unet")
>>> count_parameters(net), receptive_field(net), net.size_multiple
(86590, 78, 16)
"""

from nanoseg.models.card import CARD_FORMAT_VERSION, ModelCard
from nanoseg.models.checkpoint import (
    LoadedModel,
    complete_card,
    default_model_path,
    load_default_model,
    load_model,
    read_card,
    save_model,
)
from nanoseg.models.receptive import receptive_field, receptive_field_span
from nanoseg.models.zoo import (
    EncoderDecoderConfig,
    HorwathUNetConfig,
    ModernUNetConfig,
    SytwuResUNetConfig,
    UNet3Config,
    build_model,
    config_dict,
    count_parameters,
    describe_models,
    list_models,
    model_config,
)

__all__ = [
    "CARD_FORMAT_VERSION", "EncoderDecoderConfig", "HorwathUNetConfig", "LoadedModel", "ModelCard",
    "ModernUNetConfig", "SytwuResUNetConfig", "UNet3Config", "build_model", "complete_card", "config_dict",
    "count_parameters", "default_model_path", "describe_models", "list_models", "load_default_model",
    "load_model", "model_config", "read_card", "receptive_field", "receptive_field_span", "save_model",
]
