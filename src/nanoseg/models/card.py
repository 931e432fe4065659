"""The model card: what a checkpoint was trained on, so inference can apply the same preprocessing,
resample to the training pixel size, and warn when an input lies outside the training distribution.

A checkpoint is a directory (or a ``.nanoseg`` zip of it) holding ``weights.safetensors`` and
``card.json``. The card is plain JSON validated by pydantic; ``format_version`` guards against
reading cards written by a newer nanoseg.

Example
-------
>>> card = ModelCard(architecture="norm_unet", n_parameters=86590, receptive_field_px=78,
...                  pixel_size_nm=0.02, dose_range_e_per_A2=(80, 900))
>>> ModelCard.model_validate_json(card.model_dump_json()).dose_range_e_per_A2
(80.0, 900.0)
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CARD_FORMAT_VERSION = 1

Range = tuple[float, float]


class ModelCard(BaseModel):
    """Everything a user (and ``nanoseg.infer``) needs to know about a trained model."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    format_version: int = CARD_FORMAT_VERSION
    nanoseg_version: str = Field(default_factory=lambda: __import__("nanoseg").__version__)
    created: str = Field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    name: str | None = None
    description: str | None = None

    # architecture
    architecture: str
    config: dict[str, Any] = Field(default_factory=dict)
    n_parameters: int | None = None
    receptive_field_px: int | None = None
    in_channels: int = 1
    classes: list[str] = Field(default_factory=lambda: ["background", "particle"])

    # what inference must do to an image before the network sees it
    preprocessing: list[dict[str, Any]] = Field(default_factory=list)
    pixel_size_nm: float | None = None  # the pixel size the network was trained at (inputs are resampled to it)
    # the imaging mode the network was trained on ("hrtem", "haadf_stem", "bf_tem") and how particles look in
    # it ("dark": darker than the support, as in bright-field TEM; "bright": brighter, as in HAADF-STEM)
    modality: str = "hrtem"
    polarity: Literal["dark", "bright"] = "dark"

    # training distribution (used for out-of-distribution warnings)
    pixel_size_range_nm: Range | None = None  # pixel sizes of the raw training images, before resampling
    dose_range_e_per_A2: Range | None = None
    voltage_range_kV: Range | None = None
    particle_diameter_range_nm: Range | None = None
    materials: list[str] = Field(default_factory=list)
    supports: list[str] = Field(default_factory=list)
    detectors: list[str] = Field(default_factory=list)
    image_statistics: dict[str, Range] = Field(default_factory=dict)  # e.g. contrast, roughness, noise ranges
    dataset_ids: list[str] = Field(default_factory=list)

    # how it was trained and how well it does
    training: dict[str, Any] = Field(default_factory=dict)  # epochs, loss, optimizer, wall_time_s, machine...
    metrics: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None

    # per-image quality estimate: features → true hard Dice, fitted by scripts/calibrate_quality.py on held-out
    # simulated sets (nanoseg.infer.quality.fit_calibration); None = predictions say "uncalibrated"
    quality_calibration: dict[str, Any] | None = None
