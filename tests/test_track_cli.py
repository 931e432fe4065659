"""``nanoseg track``: no silent 1 s per frame when the movie has no timestamps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nanoseg.cli import app, main


@pytest.fixture(scope="module")
def untimed_movie(tmp_path_factory):
    """An 8-frame .npy stack (no timestamps, no pixel size in the file) and its true masks."""
    from nanoseg.simulate.movie import simulate_coarsening_movie

    folder = tmp_path_factory.mktemp("movie")
    m = simulate_coarsening_movie(n_frames=8, shape_px=(96, 96), pixel_size_nm=0.2, n_particles=6, seed=0)
    np.save(folder / "movie.npy", np.stack([m.frame(i).data for i in range(len(m))]).astype(np.float32))
    np.save(folder / "masks.npy", np.stack([m.mask(i) for i in range(len(m))]).astype(np.uint8))
    return folder


def _args(folder, out, *extra):
    return ["track", str(folder / "movie.npy"), "--masks", str(folder / "masks.npy"), "--out", str(out),
            "--pixel-size", "0.2", "--bootstrap", "0", "--no-figures", *extra]


def test_track_without_timestamps_or_dt_refuses(untimed_movie, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(_args(untimed_movie, tmp_path / "o"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no timestamps" in err and "--frame-interval-s SECONDS" in err and "--assume-frame-interval-s" in err
    assert not (tmp_path / "o" / "summary.json").exists()


def test_track_with_dt_has_no_assumption(untimed_movie, tmp_path):
    result = CliRunner().invoke(app, _args(untimed_movie, tmp_path / "o", "--dt", "0.5"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "time_assumption" not in summary
    assert "time_assumption" not in pd.read_csv(tmp_path / "o" / "tracks.csv").columns


def test_track_with_assume_dt_writes_the_assumption_everywhere(untimed_movie, tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(app, _args(untimed_movie, out, "--assume-dt", "0.5"))
    assert result.exit_code == 0, result.output
    assert "assumed 0.5 s per frame" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert "assumed 0.5 s per frame" in summary["time_assumption"]
    assert any("assumed 0.5 s per frame" in w for w in summary["warnings"])
    tracks = pd.read_csv(out / "tracks.csv")
    assert tracks["time_s"].max() == pytest.approx(3.5)  # 8 frames × 0.5 s
    tables = [p for p in out.glob("*.csv") if p.stat().st_size > 1]
    assert tables
    for path in tables:
        table = pd.read_csv(path)
        if len(table.columns):
            assert "time_assumption" in table.columns, path.name
    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "assumed 0.5 s per frame" in (out / "report.html").read_text()


def test_track_rejects_dt_with_assume_dt(untimed_movie, tmp_path):
    result = CliRunner().invoke(app, _args(untimed_movie, tmp_path / "o", "--dt", "1", "--assume-dt", "1"))
    assert result.exit_code != 0 and "not both" in str(result.exception)


def test_track_rerun_with_another_dt_is_refused(untimed_movie, tmp_path):
    """The times are part of the run's settings: a finished folder must not be reused with other times."""
    out = tmp_path / "o"
    first = CliRunner().invoke(app, _args(untimed_movie, out, "--dt", "0.5"))
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, _args(untimed_movie, out, "--dt", "2"))
    assert again.exit_code != 0 and "other settings" in str(again.exception)
