"""``nanoseg preprocess`` end to end, the batch function, and the demo figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nanoseg.errors import NanosegError
from nanoseg.io import Micrograph, read, write_tiff
from nanoseg.preprocess import SYTWU_PIPELINE, demo_figure, output_path, process_files


def _raw(seed=0, shape=(96, 96)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.where((yy - 40) ** 2 + (xx - 50) ** 2 < 15**2, 60.0, 100.0) * (1 + 0.002 * xx)
    return image + rng.normal(0, 3, shape)


@pytest.fixture
def inputs(tmp_path):
    good = tmp_path / "good.tif"
    write_tiff(good, Micrograph(_raw(), pixel_size_nm=0.05, dose_e_per_A2=423.0))
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 5)  # a TIFF header and nothing else
    return good, corrupt


def test_cli_skips_corrupt_file_and_exits_1(tmp_path, inputs):
    from nanoseg.cli import app

    good, corrupt = inputs
    out = tmp_path / "out"
    args = ["preprocess", str(good), str(corrupt), "--out", str(out), "--pipeline", "sytwu", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "corrupt.tif" in result.output and "1 done" in result.output and "1 failed" in result.output
    produced = read(out / "good.tif")
    assert produced.pixel_size_nm == pytest.approx(0.05) and produced.dose_e_per_A2 == pytest.approx(423.0)
    np.testing.assert_allclose(produced.data, SYTWU_PIPELINE(read(good).data), atol=1e-5)
    assert json.loads((out / "preprocess.json").read_text())["steps"] == SYTWU_PIPELINE.to_spec()
    assert not (out / "corrupt.tif").exists()

    # rerun: the finished output is skipped (resume), unless --overwrite
    stamp = (out / "good.tif").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["preprocess", str(good), "--out", str(out), "--pipeline", "sytwu",
                                      "--no-progress"])
    assert result.exit_code == 0 and "1 skipped" in result.output
    assert (out / "good.tif").stat().st_mtime_ns == stamp
    result = CliRunner().invoke(app, ["preprocess", str(good), "--out", str(out), "--pipeline", "sytwu",
                                      "--overwrite", "--no-progress"])
    assert result.exit_code == 0 and "1 done" in result.output


def test_cli_help_and_bad_pipeline(tmp_path, inputs):
    from nanoseg.cli import app

    result = CliRunner().invoke(app, ["preprocess", "--help"])
    assert result.exit_code == 0 and "Example: nanoseg preprocess" in result.output
    spec = tmp_path / "bad.yaml"
    spec.write_text("steps:\n  - name: sharpen\n")
    result = CliRunner().invoke(app, ["preprocess", str(inputs[0]), "--out", str(tmp_path / "o"),
                                      "--pipeline", str(spec)])
    assert isinstance(result.exception, NanosegError) and "valid steps" in str(result.exception)


def test_process_files_npy_sidecar_and_guards(tmp_path, inputs):
    good, _ = inputs
    np.save(tmp_path / "plain.npy", _raw(1))
    out = tmp_path / "npy"
    report = process_files([good, tmp_path / "plain.npy"], out, pipeline="horwath", fmt="npy", progress=False)
    assert report.ok and sorted(report.done) == sorted([str(good), str(tmp_path / "plain.npy")])
    side = json.loads((out / "good.json").read_text())
    assert side["pixel_size_nm"] == pytest.approx(0.05) and side["metadata"]["preprocessing"][0]["name"] == "standardize"
    assert np.load(out / "plain.npy").std() == pytest.approx(1, abs=1e-5)
    # same stem twice → the second one fails instead of overwriting the first
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "b" / "plain.npy", _raw(2))
    report = process_files([tmp_path / "plain.npy", tmp_path / "b" / "plain.npy"], tmp_path / "dup",
                           pipeline="horwath", fmt="npy", progress=False)
    assert len(report.done) == 1 and "same output name" in report.failed[0][1]
    # a folder made with another pipeline is not mixed into
    with pytest.raises(NanosegError, match="different preprocessing pipeline"):
        process_files([good], out, pipeline="sytwu", fmt="npy", progress=False)
    with pytest.raises(NanosegError, match="format"):
        process_files([good], out, fmt="png", progress=False)
    assert output_path("a/b/frame.dm4", "o", "npy").as_posix() == "o/frame.npy"


def test_demo_figure_is_a_png(tmp_path):
    m = Micrograph(_raw(), pixel_size_nm=0.05, dose_e_per_A2=423.0, source="x.tif")
    path = demo_figure(m, tmp_path / "fig" / "pre.png")
    assert path == tmp_path / "fig" / "pre.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["pre.png"]  # no temporary left behind
    assert demo_figure(Micrograph(_raw()), tmp_path / "nocal.png").stat().st_size > 10_000
