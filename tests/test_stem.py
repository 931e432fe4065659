"""HAADF-STEM image formation (nanoseg.simulate.stem) and the modality/polarity fields of the model card."""

from __future__ import annotations

import pytest

from nanoseg.models.card import ModelCard


def test_card_records_modality_and_polarity():
    card = ModelCard(architecture="sytwu_resunet", modality="haadf_stem", polarity="bright")
    back = ModelCard.model_validate_json(card.model_dump_json())
    assert (back.modality, back.polarity) == ("haadf_stem", "bright")
    old = ModelCard.model_validate({"architecture": "norm_unet"})  # cards written before the fields
    assert (old.modality, old.polarity) == ("hrtem", "dark")
    with pytest.raises(ValueError):
        ModelCard(architecture="unet3", polarity="grey")
