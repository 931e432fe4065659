"""One CLI vocabulary: units in flag names, -o/--out everywhere, one --overwrite, sub-commands, and the old
spellings as hidden aliases for one release; library errors name parameters, the CLI names flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest
import typer.main
from typer.testing import CliRunner

from nanoseg.cli import app, main
from nanoseg.cli._app import FLAG_ALIASES, VERB_ALIASES, cli_error_text, rewrite_aliases
from nanoseg.errors import NanosegError

SRC = Path(__file__).resolve().parents[1] / "src" / "nanoseg"

# verb words → the flags its vocabulary promises
NEW_FLAGS = {
    ("predict",): ["--min-diameter-nm", "--pixel-size-nm", "--tile-size-px", "--overwrite", "-o"],
    ("evaluate",): ["--min-diameter-nm", "-o"],
    ("track",): ["--frame-interval-s", "--assume-frame-interval-s", "--pixel-size-nm", "--min-diameter-nm",
                 "--overwrite", "-o"],
    ("watch",): ["--frame-interval-s", "--assume-frame-interval-s", "--pixel-size-nm", "--poll-s",
                 "--idle-timeout-s", "--report-every-s", "--overwrite", "-o"],
    ("train",): ["--overwrite", "-o"],
    ("info",): ["--pixel-size-nm"],
    ("explain", "model"): ["--pixel-size-nm", "--crop-px", "-o"],
    ("explain", "study"): ["-o"],
    ("explain", "rf"): ["--patch-size-px", "--stride-px", "-o"],
    ("preprocess",): ["--overwrite", "-o"],
    ("simulate",): ["-o"], ("export",): ["-o"], ("report",): ["-o"], ("demo",): ["-o"], ("study", "run"): ["-o"],
}


def _command(words):
    command = typer.main.get_command(app)
    for word in words:
        command = command.get_command(click.Context(command), word)
    return command


def _flags(command) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("words", sorted(NEW_FLAGS), ids=" ".join)
def test_every_verb_speaks_the_vocabulary(words):
    flags = _flags(_command(words))
    assert set(NEW_FLAGS[words]) <= flags, set(NEW_FLAGS[words]) - flags
    assert not flags & set(FLAG_ALIASES), flags & set(FLAG_ALIASES)  # old spellings are no options (hidden)


@pytest.mark.parametrize("words", sorted(NEW_FLAGS), ids=" ".join)
def test_help_shows_new_names_only(words):
    result = CliRunner().invoke(app, [*words, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.output)
    for old in FLAG_ALIASES:
        assert not re.search(re.escape(old) + r"(?![\w-])", text), (old, words)
    for verb in VERB_ALIASES:
        assert verb not in text


@pytest.mark.parametrize(("words", "old", "new"), [
    (("predict",), ["--min-diameter", "1"], ["--min-diameter-nm", "1"]),
    (("predict",), ["--min-diameter=1"], ["--min-diameter-nm=1"]),
    (("predict",), ["--pixel-size", "0.2", "--tile-size", "256"], ["--pixel-size-nm", "0.2", "--tile-size-px", "256"]),
    (("evaluate",), ["--min-diameter", "1"], ["--min-diameter-nm", "1"]),
    (("track",), ["--dt", "0.5", "--assume-dt", "1"], ["--frame-interval-s", "0.5", "--assume-frame-interval-s", "1"]),
    (("track",), ["--restart"], ["--overwrite"]),
    (("watch",), ["--dt", "0.5", "--restart", "--poll", "2"], ["--frame-interval-s", "0.5", "--overwrite", "--poll-s", "2"]),
    (("watch",), ["--idle-timeout", "3", "--report-every", "9"], ["--idle-timeout-s", "3", "--report-every-s", "9"]),
    (("train",), ["--no-resume"], ["--overwrite"]),
    (("train",), ["--resume"], []),
    (("info",), ["--pixel-size", "0.1"], ["--pixel-size-nm", "0.1"]),
    (("explain", "model"), ["--crop", "64"], ["--crop-px", "64"]),
    (("explain", "rf"), ["--patch-size", "32", "--stride", "16"], ["--patch-size-px", "32", "--stride-px", "16"]),
    (("track",), ["--", "--dt"], ["--", "--dt"]),  # after `--` nothing is a flag
])
def test_old_flag_spellings_are_rewritten(words, old, new):
    assert rewrite_aliases(_command(words), ["x", *old]) == ["x", *new]


def test_alias_needs_the_new_flag_on_that_command():
    # simulate has no --pixel-size-nm: the old spelling is left for click to reject
    assert rewrite_aliases(_command(["simulate"]), ["--pixel-size", "1"]) == ["--pixel-size", "1"]


def test_old_flags_still_run(tmp_path):
    """The hidden aliases reach the command: ``info --pixel-size`` sets the pixel size."""
    from nanoseg.io import write_npy

    image = tmp_path / "a.npy"
    write_npy(image, __import__("numpy").zeros((8, 8), "float32"))
    for flag in ("--pixel-size", "--pixel-size-nm"):
        result = CliRunner().invoke(app, ["info", str(image), flag, "0.37", "--json"])
        assert result.exit_code == 0, result.output
        assert "0.37" in result.output


@pytest.mark.parametrize(("old", "new"), sorted(VERB_ALIASES.items()))
def test_hyphenated_verbs_are_hidden_aliases_of_sub_commands(old, new):
    via_alias = CliRunner().invoke(app, [old, "--help"], terminal_width=200)
    direct = CliRunner().invoke(app, [*new, "--help"], terminal_width=200)
    assert via_alias.exit_code == 0 and direct.exit_code == 0, via_alias.output
    assert via_alias.output.split("\n", 1)[1] == direct.output.split("\n", 1)[1]  # same help after the usage line
    top = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    assert old not in top and "explain" in top


def test_explain_model_image_is_explain_model(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import pandas as pd

    import nanoseg.explain.report

    seen = {}

    def explain_report(model, source, out, **kw):
        seen.update(model=model, source=Path(source).name, crop=kw["crop_px"])
        return SimpleNamespace(tables={"ablation": pd.DataFrame(columns=["band", "dice", "drop"])}, report=out)

    monkeypatch.setattr(nanoseg.explain.report, "explain_report", explain_report)
    for args in (["explain", "default", "f.tif"], ["explain", "model", "default", "f.tif"],
                 ["explain", "--crop", "32", "default", "f.tif"]):
        seen.clear()
        result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "o")])
        assert result.exit_code == 0, result.output
        assert seen["model"] == "default" and seen["source"] == "f.tif"
    assert seen["crop"] == 32
    assert "study" in CliRunner().invoke(app, ["explain", "--help"]).output


def test_cli_error_text_names_flags():
    assert cli_error_text("pass pixel_size_nm=NM (or assume_model_pixel_size=True)") == \
        "pass --pixel-size-nm NM (or --assume-model-pixel-size)"
    assert cli_error_text("give frame_interval_s=SECONDS, or resume=False to start over") == \
        "give --frame-interval-s SECONDS, or --overwrite to start over"
    assert cli_error_text("use `device='cpu'`") == "use --device cpu"
    assert cli_error_text("a pixel size of 0.2 nm") == "a pixel size of 0.2 nm"  # prose is left alone


def test_main_prints_library_errors_in_flags(capsys, tmp_path):
    """The library says ``fmt=onnx|torchscript`` (nanoseg.infer.export); ``nanoseg export`` prints ``--format``."""
    from nanoseg.infer.export import export_format

    with pytest.raises(NanosegError, match="fmt=onnx"):
        export_format(tmp_path / "model.xyz")
    with pytest.raises(SystemExit) as info:
        main(["export", "default", "-o", str(tmp_path / "model.xyz")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "give --format onnx|torchscript" in err and "fmt=" not in err


def _error_texts(tree: ast.AST):
    """String pieces of the message and hint of every ``...Error(...)`` call, and of every ``hint=``, in a module."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if getattr(node.func, "id", getattr(node.func, "attr", "")).endswith("Error"):
            pieces = [*node.args, *(k.value for k in node.keywords if k.arg in ("hint", "message"))]
        else:  # any other call handing on a hint (require_same_settings(..., hint=...))
            pieces = [k.value for k in node.keywords if k.arg == "hint"]
        for arg in pieces:
            for piece in ast.walk(arg):
                if isinstance(piece, ast.Constant) and isinstance(piece.value, str):
                    yield node.lineno, piece.value


def test_library_errors_name_parameters_not_flags():
    """No module outside nanoseg.cli names a CLI flag in an error (the CLI translates parameter names)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        for line, text in _error_texts(ast.parse(path.read_text(encoding="utf-8"))):
            text = re.sub(r"`nanoseg [^`]*`", "", text)  # a whole command to run is an instruction, not a flag
            if re.search(r"(?<![\w-])--[a-z]", text):
                found.append(f"{path.relative_to(SRC)}:{line}: {text}")
    assert not found, "\n".join(found)
