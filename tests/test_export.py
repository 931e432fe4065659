"""``nanoseg export`` (issue #19 item 2): ONNX / TorchScript with the card inside, checked against PyTorch, and
``predict --model FILE`` with the same preprocessing as the checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nanoseg.cli import app, main
from nanoseg.errors import NanosegError
from nanoseg.infer import onnx_available, predict
from nanoseg.infer.export import (
    EXPORT_TOLERANCE,
    ONNX_CARD_KEY,
    TORCHSCRIPT_CARD_FILE,
    export_model,
    load_exported,
)
from nanoseg.io import example_micrograph
from nanoseg.models import load_default_model

needs_onnx = pytest.mark.skipif(not onnx_available(), reason="needs nanoseg[fast] (onnx, onnxruntime)")
FORMATS = [pytest.param("onnx", marks=needs_onnx), "torchscript"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The default model exported once per format (each export takes about a second)."""
    folder = tmp_path_factory.mktemp("exported")
    return {fmt: export_model("default", folder / f"default{SUFFIX[fmt]}")
            for fmt in (["onnx"] if onnx_available() else []) + ["torchscript"]}


def _card_in_file(path, fmt: str) -> dict:
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        return json.loads(props[ONNX_CARD_KEY])
    extra = {TORCHSCRIPT_CARD_FILE: ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra[TORCHSCRIPT_CARD_FILE])


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_writes_the_card_and_the_measured_difference(exported, fmt):
    result = exported[fmt]
    card = _card_in_file(result.path, fmt)
    default = load_default_model().card
    assert card["pixel_size_nm"] == default.pixel_size_nm == 0.04
    assert card["preprocessing"] == default.preprocessing and [s["name"] for s in card["preprocessing"]] == [
        "remove_xrays", "flat_field", "standardize"]
    info = card["export"]
    assert info["format"] == fmt and info["input_multiple_px"] == 16 and info["check_input_shape"] == [1, 1, 80, 112]
    assert info["context_px"] > 0 and info["max_abs_dprob"] == result.max_abs_dprob <= EXPORT_TOLERANCE
    assert "max |Δp|" in result.summary()


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_network_has_dynamic_height_and_width(exported, fmt):
    net = load_exported(exported[fmt].path).module
    reference = load_default_model().module
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 1, 48, 96)).astype(np.float32))
    with torch.no_grad():
        assert float((net(x) - reference(x)).abs().max()) < 1e-4


@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_with_the_exported_model_equals_the_checkpoint(exported, fmt):
    """Same preprocessing (x-rays, flat field, standardize, 0.02 → 0.04 nm/px resampling) from the card in the file."""
    image = example_micrograph()
    want = predict(image, "default", engine="eager")
    got = predict(image, str(exported[fmt].path))
    assert got.probability.shape == want.probability.shape == (256, 256)
    assert float(np.abs(got.probability - want.probability).max()) <= 1e-4
    member = got.metadata["models"][0]
    assert member["engine"] == fmt and member["model_pixel_size_nm"] == 0.04
    assert member["network_grid_shape"] == [128, 128] and member["context_px"] == exported[fmt].card.export["context_px"]


def test_predict_refuses_an_engine_the_exported_file_cannot_use(exported):
    with pytest.raises(NanosegError, match="engine=fused does not apply to an exported torchscript file"):
        predict(example_micrograph(), str(exported["torchscript"].path), engine="fused")


def test_export_refuses_a_network_that_differs_from_pytorch(tmp_path, monkeypatch):
    import nanoseg.infer.export as export

    real = export._exported_forward

    def off_by_a_bit(name, data):
        run = real(name, data)
        return lambda x: run(x) + np.array([0.0, 0.01], np.float32)[None, :, None, None]

    monkeypatch.setattr(export, "_exported_forward", off_by_a_bit)
    out = tmp_path / "bad.pt"
    with pytest.raises(NanosegError, match=r"differs from PyTorch by max \|Δp\| = .* > 0.0001 on a random .*; nothing written"):
        export_model("default", out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_format_and_model_mistakes_are_one_clear_error(tmp_path):
    with pytest.raises(NanosegError, match="cannot tell the export format.*--format onnx|torchscript"):
        export_model("default", tmp_path / "model.bin")
    with pytest.raises(NanosegError, match="unknown export format 'tflite'"):
        export_model("default", tmp_path / "model.onnx", fmt="tflite")
    with pytest.raises(NanosegError, match="model checkpoint not found"):
        export_model(tmp_path / "nowhere", tmp_path / "model.pt")
    with pytest.raises(NanosegError, match="export path is a folder"):
        export_model("default", tmp_path, fmt="torchscript")


def test_onnx_export_without_onnxruntime_names_the_extra(tmp_path, monkeypatch):
    import nanoseg.infer.engine

    monkeypatch.setattr(nanoseg.infer.engine, "onnx_available", lambda: False)
    with pytest.raises(NanosegError, match=r"pip install 'nanoseg\[fast\]'"):
        export_model("default", tmp_path / "m.onnx")


def test_predict_refuses_exported_files_without_a_card_or_damaged(tmp_path, exported):
    image = example_micrograph()
    plain = tmp_path / "plain.pt"  # TorchScript without the card
    torch.jit.save(torch.jit.trace(load_default_model().module, torch.zeros(1, 1, 64, 64)), str(plain))
    with pytest.raises(NanosegError, match="plain.pt: .*no nanoseg model card.*nanoseg export"):
        predict(image, str(plain))
    state = tmp_path / "state.pt"  # a state dict is not an exported network
    torch.save(load_default_model().module.state_dict(), state)
    with pytest.raises(NanosegError, match="state.pt: cannot load this TorchScript file.*not a state dict"):
        predict(image, str(state))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a zip")
    with pytest.raises(NanosegError, match="broken.pt: not a TorchScript file"):
        predict(image, str(broken))
    with pytest.raises(NanosegError, match="already an exported network"):
        export_model(exported["torchscript"].path, tmp_path / "again.pt")


@needs_onnx
def test_predict_refuses_onnx_without_a_card_or_damaged(tmp_path):
    from nanoseg.infer.engine import onnx_export

    image = example_micrograph()
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(onnx_export(load_default_model().module))
    with pytest.raises(NanosegError, match="plain.onnx: this ONNX file has no nanoseg model card"):
        predict(image, str(plain))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(NanosegError, match="broken.onnx: cannot read this ONNX file"):
        predict(image, str(broken))


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_export_then_predict(tmp_path, fmt):
    from nanoseg.io import write_tiff

    out = tmp_path / f"model{SUFFIX[fmt]}"
    result = CliRunner().invoke(app, ["export", "default", "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "max |Δp| vs PyTorch" in result.output and out.is_file()
    image = example_micrograph()
    write_tiff(tmp_path / "example.tif", image.data, pixel_size_nm=image.pixel_size_nm)
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "example.tif"), "--model", str(out),
                                      "--out", str(tmp_path / "masks"), "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "masks" / "example.json").read_text())
    assert record["models"][0]["engine"] == fmt and record["models"][0]["path"] == str(out)
    assert record["models"][0]["network_grid_pixel_size_nm"] == 0.04 and record["n_particles"] >= 1
    assert (tmp_path / "masks" / "example.mask.tif").is_file()


def test_cli_export_into_an_unwritable_folder_is_one_line(capsys):
    """/proc/self refuses new files even for root."""
    with pytest.raises(SystemExit):
        main(["export", "default", "--out", "/proc/self/model.pt"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot write /proc/self/model.pt" in err and "choose another --out" in err


def test_cli_export_mistake_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "default", "--out", str(tmp_path / "model.bin")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err and "cannot tell the export format" in err
