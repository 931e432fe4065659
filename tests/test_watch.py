"""``nanoseg watch`` (issue #18 item 5): frames written into a folder by another process are segmented as they
arrive; truncated files are retried then skipped; stop (signal, idle, max frames) writes the kinetics; a restart
resumes and refuses other settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nanoseg.errors import NanosegError
from nanoseg.insitu.watch import watch_folder
from nanoseg.io import write_tiff

#: a writer process: ImageJ TIFF frames of 128² px (0.1 nm/px, discs of growing/shrinking size), written in two halves with a
#: pause (as a camera export does), one file left truncated; argv: folder, first frame, number of frames, truncated?
WRITER = textwrap.dedent("""
    import sys, time, tempfile, pathlib
    import numpy as np
    import tifffile
    folder, first, count, truncated = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    yy, xx = np.mgrid[:128, :128]
    centres = [(30, 30), (30, 90), (90, 30), (90, 90), (60, 60)]
    for i in range(first, first + count):
        img = np.zeros((128, 128), np.float32)
        for k, (cy, cx) in enumerate(centres):
            r = 6 + (0.4 * i if k % 2 == 0 else -0.3 * i) + k * 0.5
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1.0
        path = f"{folder}/frame_{i:04d}.tif"
        staging = pathlib.Path(tempfile.mkdtemp()) / "frame.tif"  # outside the watched folder
        tifffile.imwrite(staging, img, imagej=True, resolution=(10.0, 10.0), metadata={"unit": "nm"})
        data = staging.read_bytes()
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2]); fh.flush(); time.sleep(0.1); fh.write(data[len(data) // 2:])
        time.sleep(0.05)
    if truncated:
        with open(f"{folder}/broken.tif", "wb") as fh:
            fh.write(data[: len(data) // 2])
""")


def _threshold(micrograph):
    return (micrograph.data > 0.5).astype(np.float32)


def _write(folder, first, count, *, truncated=False):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(first), str(count),
                             "1" if truncated else "0"])


def _watch(folder, out, **kw):
    options = dict(predict_fn=_threshold, frame_interval_s=2.0, poll_s=0.1, retries=2, idle_timeout_s=1.2,
                   n_boot=0, figures=False, report_every_s=60)
    options.update(kw)
    return watch_folder(folder, out, **options)


def test_writer_process_frames_truncated_file_stop_and_restart(tmp_path):
    folder, out = tmp_path / "camera", tmp_path / "live"
    folder.mkdir()
    writer = _write(folder, 0, 6, truncated=True)
    try:
        result = _watch(folder, out)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert result.n_frames == 6 and result.n_new == 6 and result.stopped_by == "idle_timeout"
    assert [s["file"] for s in result.skipped] == ["broken.tif"]
    assert "truncated" in result.skipped[0]["reason"]
    frames = pd.read_csv(out / "watch" / "frames.csv")
    assert frames["file"].tolist() == [f"frame_{i:04d}.tif" for i in range(6)]  # arrival order
    assert frames["time_s"].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]  # --dt
    assert (frames["n_particles"] == 5).all()
    particles = pd.read_csv(out / "watch" / "particles.csv")
    assert len(particles) == 30 and set(particles["frame"]) == set(range(6))
    # stopped: the kinetics of the frames so far, in nanoseg track's files
    kinetics = pd.read_csv(out / "kinetics.csv")
    assert kinetics["frame"].tolist() == list(range(6))
    assert (out / "fits.csv").exists() and (out / "tracks.csv").exists()
    report = (out / "report.html").read_text()
    assert "Live acquisition" in report and "Frames arrive every 2 s" in report and "it keeps up" in report
    assert result.frames_per_s > 0

    # restart: the frames already done are not redone, new ones are appended
    writer = _write(folder, 6, 2)
    try:
        again = _watch(folder, out)
    finally:
        writer.wait(timeout=60)
    assert again.n_frames == 8 and again.n_new == 2
    frames = pd.read_csv(out / "watch" / "frames.csv")
    assert frames["frame"].tolist() == list(range(8)) and frames["file"].is_unique
    assert len(pd.read_csv(out / "watch" / "particles.csv")) == 40
    assert pd.read_csv(out / "kinetics.csv")["frame"].tolist() == list(range(8))

    # other settings: refused, naming what changed
    with pytest.raises(NanosegError, match="threshold: 0.5 → 0.3"):
        _watch(folder, out, threshold=0.3)


def test_sigterm_finishes_the_frame_and_writes_kinetics(tmp_path):
    folder, out = tmp_path / "camera", tmp_path / "live"
    folder.mkdir()
    subprocess.run([sys.executable, "-c", WRITER, str(folder), "0", "6", "0"], check=True, timeout=60)

    def stop_after_fourth(row):
        if row["frame"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    result = _watch(folder, out, idle_timeout_s=None, on_frame=stop_after_fourth, report_every_s=0)
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert result.stopped_by == "signal" and result.n_frames == 4
    assert pd.read_csv(out / "kinetics.csv")["frame"].tolist() == [0, 1, 2, 3]
    assert json.loads((out / "summary.json").read_text())["n_frames"] == 4


def test_half_appended_frame_is_cut_off_on_restart(tmp_path):
    """A crash between the particle append and the state commit leaves extra bytes: the restart drops them."""
    folder, out = tmp_path / "camera", tmp_path / "live"
    folder.mkdir()
    subprocess.run([sys.executable, "-c", WRITER, str(folder), "0", "2", "0"], check=True, timeout=60)
    _watch(folder, out, idle_timeout_s=0.5)
    csv = out / "watch" / "particles.csv"
    with open(csv, "a") as fh:
        fh.write("1,2,3,half a row")
    subprocess.run([sys.executable, "-c", WRITER, str(folder), "2", "1", "0"], check=True, timeout=60)
    result = _watch(folder, out, idle_timeout_s=0.5)
    assert result.n_frames == 3
    table = pd.read_csv(csv)
    assert len(table) == 15 and table["frame"].tolist() == sorted(table["frame"].tolist())


def test_time_axis_policy(tmp_path):
    folder = tmp_path / "camera"
    folder.mkdir()
    write_tiff(folder / "a.tif", np.zeros((64, 64), np.float32), pixel_size_nm=0.1)
    with pytest.raises(NanosegError, match="no timestamps.*frame_interval_s="):
        _watch(folder, tmp_path / "live", frame_interval_s=None)
    assert not (tmp_path / "live" / "watch" / "particles.csv").exists()
    with pytest.raises(NanosegError, match="not both"):
        _watch(folder, tmp_path / "live2", assume_dt_s=1.0)


def test_frame_of_another_size_is_skipped_and_reported(tmp_path):
    folder, out = tmp_path / "camera", tmp_path / "live"
    folder.mkdir()
    img = np.zeros((64, 64), np.float32)
    img[20:30, 20:30] = 1
    write_tiff(folder / "a.tif", img, pixel_size_nm=0.1)
    os.utime(folder / "a.tif", ns=(1_000_000_000, 1_000_000_000))
    write_tiff(folder / "b.tif", np.zeros((32, 32), np.float32), pixel_size_nm=0.1)
    result = _watch(folder, out, idle_timeout_s=0.5)
    assert result.n_frames == 1
    assert result.skipped[0]["file"] == "b.tif" and "32×32" in result.skipped[0]["reason"]
    assert "kinetics not fitted" in " ".join(result.warnings)  # one frame: nothing to fit, said, no crash


SHARED_DM4 = Path(__file__).resolve().parents[1].parent / "shared" / "vendor" / "dm" / "JEOL HAADF Image.dm4"
COPIER = textwrap.dedent("""
    import sys, time
    source, folder = sys.argv[1], sys.argv[2]
    data = open(source, "rb").read()
    for name in ("a.dm4", "b.dm4"):  # a camera export: written in two parts
        with open(f"{folder}/{name}", "wb") as fh:
            fh.write(data[: len(data) // 3]); fh.flush(); time.sleep(0.1); fh.write(data[len(data) // 3:])
    with open(f"{folder}/c.dm4", "wb") as fh:  # an export cut short
        fh.write(data[: len(data) // 2])
""")


@pytest.mark.skipif(not SHARED_DM4.exists(), reason="needs ../shared/vendor (real DigitalMicrograph files)")
def test_real_dm4_exports_with_their_timestamps(tmp_path):
    """A real DM4 (JEOL HAADF, 112², acquired 2018-08-17 16:32:56) copied in by a writer process: read with its
    calibration and timestamp (no --dt needed); the copy cut short is skipped with the reader's reason."""
    folder, out = tmp_path / "camera", tmp_path / "live"
    folder.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", COPIER, str(SHARED_DM4), str(folder)])
    try:
        result = _watch(folder, out, frame_interval_s=None, predict_fn=lambda m: m.data > np.median(m.data),
                        idle_timeout_s=1.5)
    finally:
        writer.wait(timeout=60)
    frames = pd.read_csv(out / "watch" / "frames.csv")
    assert frames["file"].tolist() == ["a.dm4", "b.dm4"]
    assert frames["timestamp_s"].tolist() == [1534523576.0, 1534523576.0] and frames["time_s"].tolist() == [0, 0]
    assert json.loads((out / "watch" / "state.json").read_text())["pixel_size_nm"] == pytest.approx(1.249, abs=1e-3)
    assert [s["file"] for s in result.skipped] == ["c.dm4"]


# ------------------------------------------------------------------------------------------------ the CLI


def test_cli_watch_with_the_default_model(tmp_path):
    """`nanoseg watch` end to end with the shipped model on two tiny frames; stops at --max-frames, exit 0."""
    from typer.testing import CliRunner

    from conftest import disks_image
    from nanoseg.cli import app

    folder, out = tmp_path / "camera", tmp_path / "live"
    folder.mkdir()
    for i in range(2):
        write_tiff(folder / f"f{i}.tif", disks_image((64, 64), seed=i)[0], pixel_size_nm=0.05)
    result = CliRunner().invoke(app, ["watch", str(folder), "--out", str(out), "--dt", "0.5", "--max-frames", "2",
                                      "--poll", "0.1", "--bootstrap", "0", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "2 frames, 2 new" in result.output and "frames/s" in result.output
    assert len(pd.read_csv(out / "watch" / "frames.csv")) == 2
    assert (out / "kinetics.csv").exists() and (out / "report.html").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    from nanoseg.cli import main

    folder = tmp_path / "camera"
    folder.mkdir()
    write_tiff(folder / "a.tif", np.zeros((64, 64), np.float32), pixel_size_nm=0.1)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    cases = [(["watch", str(folder), "--out", str(blocker / "out")], "choose another --out"),
             (["watch", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o1")], "does not exist"),
             (["watch", str(folder), "--out", str(tmp_path / "o2"), "--poll", "0.05", "--idle-timeout", "2"],
              "--frame-interval-s SECONDS")]
    for argv, expected in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert "Traceback" not in err and len(lines) == 1 and expected in lines[0], err


def test_nanoseg_report_on_a_watch_folder_keeps_the_live_section(tmp_path):
    """`nanoseg report OUT` on a watch folder: while it runs (no kinetics yet) and after the stop."""
    from nanoseg.workflows.report import folder_kind, report_folder

    folder, out = tmp_path / "camera", tmp_path / "live"
    folder.mkdir()
    subprocess.run([sys.executable, "-c", WRITER, str(folder), "0", "5", "0"], check=True, timeout=60)
    _watch(folder, out, idle_timeout_s=0.5)
    assert folder_kind(out) == "watch"
    html = report_folder(out, out=tmp_path / "after.html").read_text()
    assert "Live acquisition" in html and "Kinetics fits" in html
    for name in ("summary.json", "tracks.csv"):  # as if the watch were still running: no kinetics yet
        (out / name).unlink()
    html = report_folder(out, out=tmp_path / "during.html").read_text()
    assert "Live acquisition" in html and "Kinetics fits" not in html
