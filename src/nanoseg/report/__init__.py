"""Self-contained HTML reports: text, tables and figures in one file (images embedded as base64).

Every producer (demo, predict, track, study, explain) describes its results as a list of
:class:`Section`; :func:`write_report` renders them with Jinja2 into one HTML file that can be mailed
or archived without its folder.

Example
-------
>>> import pandas as pd, tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
>>> section = Section("Dice", text="Hard Dice per test set.", tables=[pd.DataFrame({"dice": [0.9]})])
>>> write_report(out, "Example", [section]).name
'report.html'
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, select_autoescape

from nanoseg._util import atomic_path

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #345}h2{margin-top:2em;color:#234}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eef}figure{display:inline-block;margin:.5em;vertical-align:top}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;max-width:520px}.meta{color:#777;font-size:.85em}.warn{color:#a50}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
</style></head><body>
<h1>{{ title }}</h1>
<p class="meta">nanoseg {{ version }} · {{ created }}</p>
{% if intro %}<p>{{ intro }}</p>{% endif %}
{% for s in sections %}<section><h2>{{ s.title }}</h2>
{% for w in s.warnings %}<p class="warn">⚠ {{ w }}</p>{% endfor %}
{% if s.text %}{% for para in s.text.split("\n\n") %}<p>{{ para }}</p>{% endfor %}{% endif %}
{% for t in s.tables_html %}{{ t | safe }}{% endfor %}
{% for f in s.figures_html %}<figure><img src="{{ f.src }}" alt="{{ f.caption }}"><figcaption>{{ f.caption }}</figcaption></figure>{% endfor %}
{% if s.code %}<pre>{{ s.code }}</pre>{% endif %}
</section>{% endfor %}
</body></html>
"""


@dataclass
class Section:
    """One titled part of a report: paragraphs (blank-line separated), tables, figures (paths), code."""

    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: list[str | Path | tuple[str | Path, str]] = field(default_factory=list)  # path or (path, caption)
    warnings: list[str] = field(default_factory=list)
    code: str = ""


def embed_image(path: str | Path) -> str:
    """A ``data:`` URI holding the file's bytes, so the report needs no side files."""
    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _table_html(table: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    return table.to_html(index=False, border=0, float_format=lambda v: float_format.format(v), escape=True)


def render_report(title: str, sections: list[Section], *, intro: str = "") -> str:
    """Render sections to an HTML string (figures embedded)."""
    from nanoseg import __version__

    prepared = []
    for section in sections:
        figures = []
        for item in section.figures:
            path, caption = item if isinstance(item, tuple) else (item, Path(item).stem.replace("_", " "))
            if Path(path).exists():
                figures.append({"src": embed_image(path), "caption": caption})
            else:
                section.warnings.append(f"figure missing: {path}")
        prepared.append(
            {"title": section.title, "text": section.text, "warnings": section.warnings, "code": section.code,
             "tables_html": [_table_html(t) for t in section.tables], "figures_html": figures}
        )
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_TEMPLATE).render(
        title=html.unescape(title), intro=intro, sections=prepared, version=__version__,
        created=_dt.datetime.now().isoformat(timespec="seconds"),
    )


def write_report(path: str | Path, title: str, sections: list[Section], *, intro: str = "") -> Path:
    """Write a self-contained HTML report atomically and return its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_report(title, sections, intro=intro), encoding="utf-8")
    return path


__all__ = ["Section", "embed_image", "render_report", "write_report"]
