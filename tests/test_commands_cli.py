"""Behaviour every ``nanoseg`` verb shares: an unusable ``--out`` is one line, not a traceback."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from nanoseg.cli import main

# Every verb with an output folder, with positional arguments that need not exist: the --out check comes first.
OUT_COMMANDS = {
    "predict": ["predict", "frame.tif"],
    "track": ["track", "movie.tif"],
    "simulate": ["simulate", "spec.yaml"],
    "evaluate": ["evaluate", "preds", "dataset"],
    "train": ["train", "dataset"],
    "preprocess": ["preprocess", "frame.tif"],
    "explain": ["explain", "default", "frame.tif"],
    "explain-study": ["explain-study", "spec.yaml"],
    "explain-rf": ["explain-rf", "dataset", "--test", "dataset"],
    "study run": ["study", "run", "spec.yaml"],
    "demo": ["demo"],
}


@pytest.mark.parametrize("verb", sorted(OUT_COMMANDS))
def test_unwritable_out_is_one_line(verb, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file: nothing can be created below it, not even by root")
    out = blocker / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*OUT_COMMANDS[verb], "--out", str(out)])
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"cannot write to {out}" in lines[0] and "choose another --out" in lines[0]


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a folder")
    with pytest.raises(SystemExit):
        main(["predict", "frame.tif", "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"cannot write to {out}" in err and "not a folder" in err


def test_report_out_under_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--out", str(blocker / "r.html")])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot write to" in err and "choose another --out" in err


# ------------------------------------------------------------------------------------------ --help examples
# Every example printed by a `--help` must run when pasted in the repository root. The test builds, in a
# temporary folder linked to examples/, the user's own files the examples name (frames, a movie, a checkpoint
# folder, manual sizes), then runs every example in order. Examples that train, simulate or run a study for
# minutes run with that one library call replaced by a recorder: argument parsing, the --out check, the files
# the CLI itself reads (YAML configs, inputs) and its printing stay real.
REPO = Path(__file__).resolve().parents[1]
EXAMPLE_LINE = re.compile(r"^(?P<label>[A-Z][^:`]{0,40}):\s+(?P<cmd>(?:torchrun .+? -m )?nanoseg .+)$")
VERB_ORDER = ["simulate", "info", "preprocess", "predict", "train", "evaluate", "track", "report", "study",
              "explain", "demo"]  # `explain study` and `explain rf` are sub-commands of explain


def _commands():
    """``(words, click command)`` for the root, every verb and every sub-verb."""
    import click
    import typer.main

    from nanoseg.cli import app

    root = typer.main.get_command(app)
    found = []

    def walk(command, words):
        found.append((words, command))
        if hasattr(command, "list_commands"):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), [*words, name])

    walk(root, [])
    return found


def _help_texts():
    """Every help text a user can see: each command's and each of its parameters'."""
    for words, command in _commands():
        yield " ".join(words) or "nanoseg", command.help or ""
        for param in command.params:
            yield f"{' '.join(words)} {param.name}", getattr(param, "help", None) or ""


def help_examples() -> list[tuple[str, str]]:
    """``(where, command)`` for every example line ("Example: nanoseg …", "Multi-GPU: torchrun … -m nanoseg …")
    and, in the top-level help, every `nanoseg …` in backticks. Paragraphs are joined (examples may wrap)."""
    examples = []
    for where, text in _help_texts():
        for paragraph in re.split(r"\n\s*\n", text):
            joined = " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
            match = EXAMPLE_LINE.match(joined)
            if match:
                examples.append((where, match["cmd"]))
            if where == "nanoseg":
                examples += [(where, cmd) for cmd in re.findall(r"`(nanoseg [^`]+)`", joined)]
    return examples


def _example_args(command: str) -> list[str]:
    """The argv after ``nanoseg`` (``torchrun … -m nanoseg`` stripped), shell globs expanded in the cwd."""
    words = shlex.split(command)
    words = words[words.index("nanoseg") + 1:]
    args = []
    for word in words:
        if any(c in word for c in "*?["):
            matches = sorted(glob.glob(word))
            assert matches, f"{command}: the glob {word} matches nothing"
            args += matches
        else:
            args.append(word)
    return args


def test_help_examples_are_found():
    examples = help_examples()
    verbs = {_example_args_head(cmd) for _, cmd in examples}
    assert len(examples) >= 20, examples
    assert set(VERB_ORDER) <= verbs, set(VERB_ORDER) - verbs


def _example_args_head(command: str) -> str:
    words = shlex.split(command)
    return words[words.index("nanoseg") + 1]


def test_help_names_only_existing_repository_files():
    missing = [(where, word) for where, text in _help_texts() for word in re.findall(r"examples/[\w./-]+", text)
               if not (REPO / word.rstrip(".,)")).exists()]
    assert not missing, missing


def _world(root: Path) -> None:
    """The user's own files that the examples name."""
    import importlib.util

    import numpy as np
    import pandas as pd
    import tifffile
    import torch

    from conftest import disks_image
    from nanoseg.io import write_tiff
    from nanoseg.models import ModelCard, build_model, save_model
    from nanoseg.simulate.movie import simulate_coarsening_movie, write_movie

    spec = importlib.util.spec_from_file_location("make_dm", REPO / "tests" / "fixtures" / "make_dm.py")
    make_dm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_dm)
    (root / "examples").symlink_to(REPO / "examples")
    for folder in ("capture", "raw", "frames"):
        (root / folder).mkdir()
        for i in range(2):
            make_dm.write_dm(root / folder / f"f{i}.dm4", 100 * disks_image((64, 64), seed=i)[0], scale=0.02)
    make_dm.write_dm(root / "frame.dm4", 100 * disks_image((64, 64))[0], scale=0.18)
    write_tiff(root / "frame.tif", disks_image((64, 64))[0], pixel_size_nm=0.05)
    tifffile.imwrite(root / "frame_mask.png", disks_image((64, 64))[1].astype(np.uint8) * 255)
    for i in range(2):
        torch.manual_seed(i)
        save_model(root / "runs" / "cv5" / f"fold{i}", build_model("unet3"),
                   ModelCard(architecture="unet3", pixel_size_nm=0.02, preprocessing=[{"name": "standardize"}]))
    movie = simulate_coarsening_movie(n_frames=6, shape_px=(160, 160), pixel_size_nm=0.04, n_particles=4,
                                      mean_radius_nm=1.2, seed=0)
    write_movie(movie, root / "movie.tif")
    tifffile.imwrite(root / "masks.tif", np.stack([movie.mask(i) for i in range(len(movie))]).astype(np.uint8))
    pd.DataFrame({"diameter_nm": [2.0, 2.4, 2.6]}).to_csv(root / "manual_sizes.csv", index=False)
    for name in ("data/train", "data/test"):
        _tiny_dataset(root / name)
    (root / "runs" / "dose").mkdir(parents=True)


def _tiny_dataset(folder: Path, n_images: int = 2) -> None:
    from conftest import disks_image
    from nanoseg.datasets import DatasetWriter

    with DatasetWriter(folder) as writer:
        for i in range(n_images):
            image, mask = disks_image((96, 96), ((30, 30, 12), (66, 60, 14)), seed=i)
            writer.add(f"im{i}", image, mask, {"pixel_size_nm": 0.04, "dose_e_per_A2": 500.0})


def _stub_the_long_runs(monkeypatch, calls: list[str]) -> None:
    """Replace the minutes-long library calls by recorders that check what they were given."""
    import pandas as pd

    import nanoseg.explain.receptive
    import nanoseg.explain.report
    import nanoseg.simulate
    import nanoseg.study
    import nanoseg.train
    import nanoseg.workflows.demo
    import nanoseg.workflows.horwath
    from nanoseg.models import ModelCard, build_model, save_model

    def generate_dataset(config, out, *, n_images, **kw):
        calls.append("simulate")
        _tiny_dataset(Path(out))

    def cross_validate(datasets, cfg, out, *, folds, **kw):
        calls.append("train --folds")
        assert all(Path(d).is_dir() for d in datasets), datasets
        return pd.DataFrame([{"fold": i, "n_train_images": 1, "n_val_images": 1, "n_test_images": 1,
                              "best_epoch": 0, "val_loss": 0.5, "test_hard_dice": 0.5} for i in range(folds)])

    def train_model(datasets, cfg, out, **kw):
        calls.append("train")
        assert all(Path(d).is_dir() for d in datasets), datasets
        out = Path(out)
        save_model(out, build_model("unet3"), ModelCard(architecture="unet3", metrics={
            "val_loss": 0.5, "val_hard_dice": 0.5, "test_hard_dice": None}, training={"best_epoch": 0}))
        return out

    def run_study(spec, out, *, size=None, **kw):
        calls.append("study run")
        nanoseg.study.load_spec(spec, size=size)
        return pd.DataFrame({"status": ["ok"]})

    def write_study_report(folder, **kw):
        calls.append("study report")
        assert Path(folder).is_dir(), folder
        return Path(folder) / "report.html"

    def explain_report(model, source, out, *, mask=None, **kw):
        calls.append("explain")
        assert model == "default" or Path(model).exists(), model
        assert Path(source).exists() and (mask is None or Path(mask).exists()), (source, mask)
        return SimpleNamespace(tables={"ablation": pd.DataFrame(columns=["band", "dice", "drop"])},
                               report=Path(out) / "report.html")

    def run_horwath(spec, out, *, size=None, **kw):
        calls.append("explain-study")
        nanoseg.workflows.horwath.resolve_spec(spec, out, size=size)
        return SimpleNamespace(report=Path(out) / "report.html")

    def receptive_field_study(train, test, out, **kw):
        calls.append("explain-rf")
        assert all(Path(t).is_dir() for t in [*train, test]), (train, test)
        return pd.DataFrame(columns=["axis", "variant", "receptive_field_px", "n_parameters", "dice", "dice_std"])

    def run_demo(out, **kw):
        calls.append("demo")
        return Path(out) / "report.html"

    monkeypatch.setattr(nanoseg.simulate, "generate_dataset", generate_dataset)
    monkeypatch.setattr(nanoseg.train, "cross_validate", cross_validate)
    monkeypatch.setattr(nanoseg.train, "train_model", train_model)
    monkeypatch.setattr(nanoseg.study, "run_study", run_study)
    monkeypatch.setattr(nanoseg.study, "write_study_report", write_study_report)
    monkeypatch.setattr(nanoseg.explain.report, "explain_report", explain_report)
    monkeypatch.setattr(nanoseg.workflows.horwath, "run_horwath", run_horwath)
    monkeypatch.setattr(nanoseg.explain.receptive, "receptive_field_study", receptive_field_study)
    monkeypatch.setattr(nanoseg.workflows.demo, "run_demo", run_demo)


def test_every_help_example_runs_when_pasted(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from nanoseg.cli import app

    _world(tmp_path)
    monkeypatch.chdir(tmp_path)
    calls: list[str] = []
    _stub_the_long_runs(monkeypatch, calls)
    def order(example):  # producers before consumers; a verb added later runs last
        verb = _example_args_head(example[1])
        return VERB_ORDER.index(verb) if verb in VERB_ORDER else len(VERB_ORDER)

    examples = sorted(help_examples(), key=order)
    failures = []
    for where, command in examples:
        try:
            args = _example_args(command)
        except AssertionError as exc:
            failures.append(f"{where}: {exc}")
            continue
        if command.startswith("torchrun"):
            monkeypatch.setenv("RANK", "0")
        result = CliRunner().invoke(app, args)
        if result.exit_code != 0:
            failures.append(f"{where}: `{command}` exited {result.exit_code}: {result.exception!r} "
                            f"{result.output[-400:]}")
    assert not failures, "\n".join(failures)
    assert {"simulate", "train", "train --folds", "study run", "explain", "explain-study", "explain-rf", "demo"} <= set(calls)


def test_report_into_an_unwritable_results_folder_is_one_line(capsys):
    """Without --out the report goes into FOLDER; /proc/self refuses new files even for root."""
    with pytest.raises(SystemExit):
        main(["report", "/proc/self"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot write to /proc/self" in err and "choose another --out" in err
