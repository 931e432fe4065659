"""Behaviour every ``nanoseg`` verb shares: an unusable ``--out`` is one line, not a traceback."""

from __future__ import annotations

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
