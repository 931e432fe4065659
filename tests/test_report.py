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
