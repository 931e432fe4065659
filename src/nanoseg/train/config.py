"""The training configuration (pydantic, loadable from YAML).

Example
-------
>>> cfg = TrainConfig(model="norm_unet", epochs=5, lr=1e-3)
>>> cfg.loss, cfg.selection, cfg.preprocessing
('ce', 'val_loss', [{'name': 'standardize'}])
>>> TrainConfig.from_yaml_text("model: sytwu_resunet\\nmodel_config: {depth: 3, filters: [4, 8, 16, 32]}").model
'sytwu_resunet'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nanoseg.datasets.augment import AugmentConfig
from nanoseg.errors import NanosegError


class TrainConfig(BaseModel):
    """Everything that defines a training run (and goes into the model card).

    Units: ``pixel_size_nm`` nm/px (training images are resampled to it; None keeps each image's own),
    ``patch_size``/``stride`` pixels after resampling, ``lr`` per step, ``epochs`` full passes.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = "sytwu_resunet"
    model_config_: dict[str, Any] = Field(default_factory=dict, alias="model_config")

    loss: Literal["ce", "ce_weighted", "dice", "ce+dice"] = "ce"
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1)
    epochs: int = Field(20, ge=1)
    schedule: Literal["none", "cosine", "step"] = "none"
    step_size_epochs: int = Field(10, ge=1)
    step_gamma: float = Field(0.1, gt=0, le=1)
    # which epoch's weights are kept: lowest validation loss, highest validation hard Dice, or the last epoch
    # ("last": for schedules that end at lr 0, when confident errors on a few validation images make the loss a
    # poor guide; the validation scores are still recorded every epoch)
    selection: Literal["val_loss", "val_dice", "last"] = "val_loss"
    early_stopping_patience: int | None = Field(None, ge=1)

    patch_size: int = Field(256, ge=8)
    stride: int | None = Field(None, ge=1)
    min_particle_px: int = Field(0, ge=0)
    pixel_size_nm: float | None = Field(None, gt=0)
    preprocessing: list[dict[str, Any]] = Field(default_factory=lambda: [{"name": "standardize"}])
    augmentation: AugmentConfig = Field(default_factory=AugmentConfig)

    group_by: str = "id"
    val_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)

    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = Field(0, ge=0)
    num_threads: int | None = Field(None, ge=1)  # CPU threads for torch (None: torch's default)
    max_patches: int | None = Field(None, ge=1)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "auto" and not (v == "cpu" or v.startswith("cuda") or v == "mps"):
            raise ValueError("device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        from nanoseg.models import model_config

        try:
            model_config(self.model, **self.model_config_)
        except NanosegError as exc:
            raise ValueError(str(exc)) from exc
        if any(isinstance(step, dict) and step.get("name") == "resample" for step in self.preprocessing):
            raise ValueError("use pixel_size_nm to resample training images, not a 'resample' preprocessing step "
                             "(the masks must be resampled with the images)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be < 1")
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def model_kwargs(self) -> dict[str, Any]:
        return dict(self.model_config_)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def __init__(self, /, **data: Any) -> None:
        """Validate the fields; a bad value raises :class:`NanosegError` (as :meth:`from_dict` does)."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._invalid(exc) from exc

    @staticmethod
    def _invalid(exc: ValidationError, path: str | os.PathLike | None = None) -> NanosegError:
        """One :class:`NanosegError` naming the first three bad fields of a pydantic error."""
        msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()[:3])
        return NanosegError(f"invalid training config: {msgs}", path=path, hint="see docs/training.md for the options")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | os.PathLike | None = None) -> TrainConfig:
        try:
            return cls.model_validate(data)
        except NanosegError as exc:  # from __init__: pydantic validates through a custom __init__
            raise NanosegError(exc.message, path=path, hint=exc.hint) from exc.__cause__

    @classmethod
    def from_yaml_text(cls, text: str, *, path=None) -> TrainConfig:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise NanosegError(f"cannot parse YAML ({exc})", path=path) from exc
        if not isinstance(data, dict):
            raise NanosegError("a training config must be a YAML mapping", path=path)
        return cls.from_dict(data, path=path)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        path = Path(path)
        if not path.exists():
            raise NanosegError("training config not found", path=path)
        return cls.from_yaml_text(path.read_text(), path=path)

    def with_overrides(self, **changes: Any) -> TrainConfig:
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        return TrainConfig.from_dict(data)
