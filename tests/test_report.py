"""The HTML report: self-contained, escaped, robust to missing figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from nanoseg.report import Section, write_report


def test_report_embeds_figures_and_escapes_text(tmp_path):
    fig_path = tmp_path / "curve.png"
    plt.plot([0, 1], [0, 1])
    plt.savefig(fig_path)
    plt.close()
    table = pd.DataFrame({"train": ["5 nm"], "dice": [0.91234]})
    out = write_report(tmp_path / "r.html", "Study <dose>", [
        Section("Results", text="first para\n\nsecond <b>para</b>", tables=[table],
                figures=[(fig_path, "Dice vs dose"), tmp_path / "missing.png"]),
    ])
    text = out.read_text()
    assert "data:image/png;base64," in text and "Dice vs dose" in text
    assert "0.9123" in text and "&lt;b&gt;para&lt;/b&gt;" in text
    assert "figure missing" in text and "<p>first para</p>" in text
    assert not list(tmp_path.glob(".r.html*"))  # no temp file left behind


def _track_result(n_tracks: int):
    from nanoseg.insitu.stream import TrackResult

    tracks = pd.DataFrame({"frame": [0, 0, 1, 1], "track_id": [0, 1, 0, 1]})
    empty = pd.DataFrame()
    return TrackResult(out_dir=None, particles=tracks, drift=empty, tracks=tracks, events=empty, lineage=empty,
                       stats=empty, fits=empty, bootstrap=empty, psd=empty, growth=empty, verdict=empty,
                       summary={"n_frames": 2, "n_detections": 4, "n_tracks": n_tracks, "warnings": []})


def test_track_summary_counts_the_tracks():
    """The tracks column is ``track_id`` (there is no ``particle`` column): the summary must not say 0."""
    from nanoseg.report.folders import track_sections

    facts = track_sections(_track_result(2))[0].tables[0].set_index("quantity")["value"]
    assert facts["tracks"] == 2 and facts["detections"] == 4 and facts["frames"] == 2


def test_predict_report_out_of_distribution_follows_the_json(tmp_path):
    """A warning (unknown dose) is not an out-of-distribution flag: the table shows what the JSON says."""
    import json

    from nanoseg.workflows.report import predict_sections

    (tmp_path / "a.mask.tif").write_bytes(b"")
    (tmp_path / "a.json").write_text(json.dumps({
        "pixel_size_nm": 0.2, "out_of_distribution": False, "ood": {"pixel_size": False},
        "warnings": ["the file has no dose; the dose check was skipped"]}))
    (tmp_path / "b.json").write_text(json.dumps({
        "pixel_size_nm": 0.05, "out_of_distribution": True, "ood": {"pixel_size": True},
        "warnings": ["pixel size outside the training range"]}))
    table = predict_sections(tmp_path)[0].tables[0].set_index("image")
    assert not table.loc["a", "out_of_distribution"] and table.loc["b", "out_of_distribution"]


def test_predict_report_skips_the_settings_record(tmp_path):
    """predict_settings.json (the resume key) is not an image: no row for it."""
    import json

    from nanoseg.workflows.predict import SETTINGS_FILE
    from nanoseg.workflows.report import predict_sections

    (tmp_path / "a.mask.tif").write_bytes(b"")
    (tmp_path / "a.json").write_text(json.dumps({"pixel_size_nm": 0.2, "out_of_distribution": False}))
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"settings": {"threshold": 0.5}}))
    assert list(predict_sections(tmp_path)[0].tables[0]["image"]) == ["a"]
