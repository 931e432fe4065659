"""nanoseg.models: registry, parameter counts, receptive fields, checkpoints."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from nanoseg.errors import NanosegError
from nanoseg.models import (
    ModelCard,
    build_model,
    count_parameters,
    list_models,
    load_model,
    receptive_field,
    receptive_field_span,
    save_model,
)

# parameter counts from the authors' code, quoted in SCIENCE.md
PAPER_COUNTS = {
    "encoder_decoder": 35_848,
    "unet3": 16_002,
    "norm_unet": 86_590,
    "dilated_unet": 86_138,
    "sytwu_resunet": 130_682,
}


@pytest.mark.parametrize("name,expected", sorted(PAPER_COUNTS.items()))
def test_parameter_counts_match_the_papers(name, expected):
    assert count_parameters(build_model(name)) == expected


def test_twoconv_variants_have_about_221k_parameters():
    plain, norm = count_parameters(build_model("twoconv_unet")), count_parameters(build_model("twoconv_norm_unet"))
    # the second conv per decoder step adds 135,008 weights; BatchNorm adds 2 per channel
    assert plain == 86_138 + 135_008 == 221_146
    assert norm == 86_590 + 135_008 + 2 * (96 + 64 + 32 + 24 + 8) == 222_046


def test_every_model_maps_image_to_two_class_logits():
    assert {"encoder_decoder", "unet3", "norm_unet", "twoconv_unet", "twoconv_norm_unet", "dilated_unet",
            "sytwu_resunet", "modern_unet"} <= set(list_models())
    for name in list_models():
        net = build_model(name).eval()
        m = net.size_multiple
        x = torch.randn(2, 1, 2 * m, 3 * m)
        assert isinstance(m, int) and net(x).shape == (2, 2, 2 * m, 3 * m), name


@pytest.mark.parametrize("name", ["sytwu_resunet", "modern_unet"])
def test_norm_choices_keep_parameters_and_instance_norm_is_batch_independent(name):
    torch.manual_seed(0)
    nets = {kind: build_model(name, norm=kind) for kind in ("batch", "instance", "group")}
    counts = {kind: count_parameters(net) for kind, net in nets.items()}
    assert counts["batch"] == counts["instance"] == counts["group"]  # affine weight + bias per channel each
    x = torch.randn(3, 1, 32, 32)
    for kind, net in nets.items():
        net.train()
        alone = net(x[:1])
        together = net(x)[:1]
        # in training mode BatchNorm normalises over the batch, instance/group norm over one image
        assert torch.allclose(alone, together, atol=1e-5) == (kind != "batch"), kind
    # the card's receptive field (save_model computes it) counts the norms as the pointwise rescaling they are
    assert len({receptive_field(net) for net in nets.values()}) == 1
    with pytest.raises(NanosegError, match="norm must be one of"):
        build_model(name, norm="layer")


def test_config_overrides_and_errors():
    net = build_model("sytwu_resunet", depth=2, filters=[2, 4, 8])
    assert net.size_multiple == 4 and net.config.filters == (2, 4, 8)
    with pytest.raises(NanosegError, match="unknown model"):
        build_model("resnet152")
    with pytest.raises(NanosegError, match="no option"):
        build_model("norm_unet", colour="red")
    with pytest.raises(NanosegError, match="needs 3 filters"):
        build_model("sytwu_resunet", depth=2, filters=[2, 4])


# Receptive fields computed analytically (documented in docs/models.md; SCIENCE.md: ~83, ~38, ~78, ~110, ~104)
EXPECTED_RF = {"encoder_decoder": 85, "unet3": 38, "norm_unet": 78, "twoconv_unet": 110,
               "twoconv_norm_unet": 110, "dilated_unet": 104, "sytwu_resunet": 204}


@pytest.mark.parametrize("name,expected", sorted(EXPECTED_RF.items()))
def test_receptive_field_values(name, expected):
    assert receptive_field(build_model(name)) == expected


def _gradient_extent(net, height: int, width: int, row: int, trials: int = 8) -> tuple[int, int]:
    """Rows of the input with a nonzero gradient of output pixel (row, width // 2), union over random
    inputs (max-pooling and ReLU route the gradient through one branch per input, so a union is needed;
    in eval mode the batch elements are independent, so the trials share one backward pass)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(trials, 1, height, width, dtype=torch.float64, generator=gen, requires_grad=True)
    out = net(x)
    out[:, :, row, width // 2].sum().backward()
    hit = np.flatnonzero((x.grad[:, 0].abs() > 0).any(dim=2).any(dim=0).numpy())
    return int(hit[0]), int(hit[-1])


# narrow versions keep the check fast: the receptive field does not depend on the channel widths
NARROW = {
    "encoder_decoder": {},  # ReLU networks: narrow ones have dead units that hide a branch from the gradient
    "unet3": {},
    "norm_unet": {"widths": [2, 2, 2, 2], "decoder_widths": [2, 2, 2, 2], "head_width": 2},
    "twoconv_norm_unet": {"widths": [2, 2, 2, 2], "decoder_widths": [2, 2, 2, 2], "head_width": 2},
    "dilated_unet": {"widths": [2, 2, 2, 2], "decoder_widths": [2, 2, 2, 2], "head_width": 2},
    "sytwu_resunet": {"depth": 3, "filters": [4, 4, 4, 4]},
    "modern_unet": {"width": 4, "depth": 3},
}


@pytest.mark.parametrize("name", sorted(NARROW))
def test_receptive_field_equals_gradient_extent(name):
    from nanoseg.models.receptive import input_spans

    torch.manual_seed(0)
    net = build_model(name, **NARROW[name]).double().eval()
    wide = {"sytwu_resunet": {"depth": 3, "filters": [4, 8, 16, 32]}, "modern_unet": {"depth": 3}}.get(name, {})
    assert receptive_field(net) == receptive_field(build_model(name, **wide))
    height, width = 224, 2 * net.size_multiple  # spans along rows do not depend on the width
    span = input_spans(net, height)
    for row in (112, 113, 114, 115, 117):
        assert _gradient_extent(net, height, width, row) == (span.lo[row], span.hi[row]), (name, row)
        assert receptive_field_span(net, row, length=height) == (span.lo[row], span.hi[row])
    # the largest extent over positions away from the borders is what receptive_field reports
    assert (span.hi - span.lo + 1)[56:168].max() == receptive_field(net)


def test_receptive_field_of_simple_stacks():
    from torch import nn

    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, dilation=4, padding=4))) == 11
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2),
                                         nn.Conv2d(1, 1, 3, padding=1), nn.Upsample(scale_factor=2))) == 8


# ----------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("suffix", ["", ".nanoseg"])
def test_save_load_round_trip(tmp_path, suffix):
    torch.manual_seed(1)
    net = build_model("sytwu_resunet", depth=2, filters=[2, 4, 8])
    net.train()
    net(torch.randn(4, 1, 16, 16))  # move the BatchNorm running statistics away from their defaults
    net.eval()
    card = ModelCard(architecture="sytwu_resunet", pixel_size_nm=0.02, materials=["Au"],
                     preprocessing=[{"name": "standardize"}], seed=3)
    path = save_model(tmp_path / f"model{suffix}", net, card)
    loaded = load_model(path)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net(x), rtol=0, atol=0)
    assert not loaded.module.training and loaded.path == path and loaded.size_multiple == 4
    assert loaded.card.n_parameters == count_parameters(net) and loaded.card.receptive_field_px == receptive_field(net)
    assert loaded.card.config["filters"] == [2, 4, 8] and loaded.card.materials == ["Au"]
    if suffix:
        assert set(zipfile.ZipFile(path).namelist()) == {"weights.safetensors", "card.json"}
    else:
        assert {p.name for p in path.iterdir()} == {"weights.safetensors", "card.json"}


def test_newer_card_format_is_refused(tmp_path):
    path = save_model(tmp_path / "m", build_model("unet3"), ModelCard(architecture="unet3"))
    card = json.loads((path / "card.json").read_text())
    card["format_version"] = 99
    (path / "card.json").write_text(json.dumps(card))
    with pytest.raises(NanosegError, match="newer than this nanoseg") as info:
        load_model(path)
    assert "upgrade nanoseg" in str(info.value)


def test_damaged_checkpoints_give_clear_errors(tmp_path):
    path = save_model(tmp_path / "m", build_model("unet3"), ModelCard(architecture="unet3"))
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: 200])
    with pytest.raises(NanosegError, match="cannot read weights.safetensors"):
        load_model(path)
    with pytest.raises(NanosegError, match="not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "junk.nanoseg").write_bytes(b"not a zip")
    with pytest.raises(NanosegError, match="neither a directory"):
        load_model(tmp_path / "junk.nanoseg")
    # weights of one architecture under the card of another
    other = save_model(tmp_path / "o", build_model("norm_unet"), ModelCard(architecture="norm_unet"))
    (other / "card.json").write_text((path / "card.json").read_text())
    with pytest.raises(NanosegError, match="do not fit"):
        load_model(other)


def test_card_architecture_must_match_network(tmp_path):
    with pytest.raises(NanosegError, match="does not match"):
        save_model(tmp_path / "m", build_model("unet3"), ModelCard(architecture="norm_unet"))


def test_shipped_default_model_loads_with_its_card():
    from nanoseg.models import default_model_path, load_default_model

    path = default_model_path()
    size = sum(p.stat().st_size for p in path.iterdir())
    assert size < 5 * 1024**2
    loaded = load_default_model()
    card = loaded.card
    assert card.architecture == "sytwu_resunet" and card.n_parameters == count_parameters(loaded.module)
    assert card.pixel_size_nm == pytest.approx(0.04) and card.preprocessing[-1] == {"name": "standardize"}
    assert {"Au", "Ag", "Pt", "Pd", "CdSe"} <= set(card.materials)
    assert card.dose_range_e_per_A2[0] < 100 and card.dose_range_e_per_A2[1] > 500
    assert sum(np.atleast_1d(card.training["simulation"]["n_images"])) > 0 and card.training["machine"]
    # trained on particles across the advertised 1.5–15 nm (the large-particle set keeps them uncapped)
    assert card.particle_diameter_range_nm[0] < 2.0 and card.particle_diameter_range_nm[1] > 12.0
    per = card.metrics["test_per_condition"]
    assert per["all"]["n"] > 0 and 0.5 < per["all"]["hard_dice_mean"] <= 1
    # scored on the held-out sets through predict, and calibrated for the per-image quality estimate
    held = card.metrics["heldout"]
    assert {"indist", "shift_sets_mean"} <= set(held) and all(0 < g["hard_dice_mean"] <= 1 for g in held.values())
    calibration = card.quality_calibration
    assert calibration and set(calibration["feature_names"]) <= {"soft_dice", "view_dice", "uncertain_fraction",
                                                             "uncertain_over_mask", "margin_inside",
                                                             "area_fraction", "ood_fraction"}
    with torch.no_grad():
        out = loaded.module(torch.zeros(1, 1, 2 * loaded.size_multiple, 2 * loaded.size_multiple))
    assert out.shape == (1, 2, 32, 32)
