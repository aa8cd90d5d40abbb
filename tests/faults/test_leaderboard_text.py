"""Names written by users (models, classes) show in the leaderboard as themselves: Markdown,
Streamlit's colour directives and LaTeX in a name are escaped wherever the page renders
Markdown (text, captions, alerts, headings, tooltips), and left as they are in plain-text
places (tables, pick lists, image captions)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from test_store import T0, make_model, make_run

from evalsuite import store

NASTY = "**x** # h :red[c] $y$"
# The raw name's syntax (bold, a heading, a colour, LaTeX), looked for once escapes are removed
RAW_SYNTAX = ("**x**", ":red[c]", "$y$", "# h")
APP = Path(__file__).resolve().parents[2] / "dashboards" / "leaderboard.py"


@pytest.fixture(scope="module")
def nasty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base model and a fine-tune called NASTY, with a class called NASTY too."""
    db = tmp_path_factory.mktemp("nasty") / "r.duckdb"
    base = make_model(name="base", fingerprint="fp-base", history=[], training=None)
    store.write_run(db, make_run(model=base))
    tuned = make_model(name=NASTY, fingerprint="fp-nasty")
    store.write_run(db, make_run(model=tuned, started_at=T0 + timedelta(hours=1)))
    with duckdb.connect(str(db)) as con:
        for table in ("confusion", "predictions"):
            con.execute(f"UPDATE {table} SET true_label = ? WHERE true_label = 'Sandals'", [NASTY])
    store.mark_baseline(db, "base")
    return db


def _unescape(markdown: str) -> str:
    """The text CommonMark shows for backslash escapes of ASCII punctuation."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def _markdown_sources(at) -> list[str]:
    """Every string the page hands to Streamlit's Markdown renderer."""
    sources = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title",
                 "header", "subheader"):  # fmt: skip
        sources += [str(e.value) for e in getattr(at, kind)]
    sources += [e.label for e in at.expander]
    for frame in at.dataframe:  # column tooltips are Markdown too (column names are not)
        columns = json.loads(frame.proto.columns or "{}")
        sources += [c["help"] for c in columns.values() if isinstance(c, dict) and "help" in c]
    return sources


@pytest.mark.parametrize("page", [None, "Benchmark", "Retrieval", "Training"])
def test_model_and_class_names_with_markdown_show_literally(
    nasty_db: Path, page: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTML stays off and javascript: links are blocked, so no script ran; but a name could
    render bold, as a heading, in colour or as LaTeX, i.e. not as the name the user gave."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(nasty_db))
    at = AppTest.from_file(str(APP), default_timeout=60)
    if page:
        at.query_params["page"] = page
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page == "Benchmark":  # the confusion matrix and examples of the NASTY model
        at.selectbox(key="bm_one").set_value(NASTY).run()
    sources = _markdown_sources(at)
    shown = [s for s in sources if NASTY in _unescape(s)]
    assert shown, f"the name is not shown on page {page}: {sources}"
    leaks = [s for s in sources if any(raw in re.sub(r"\\.", "", s) for raw in RAW_SYNTAX)]
    assert not leaks, f"unescaped Markdown on page {page}: {leaks}"


def test_report_shows_model_names_as_text(nasty_db: Path, tmp_path: Path) -> None:
    """report.md is Markdown too: a model called NASTY must not render bold, as a heading or
    as LaTeX there either. Outside code spans and the HTML comments that carry data, the name
    only appears escaped."""
    from evalsuite.formatting import md
    from evalsuite.report import write_report

    text = write_report(nasty_db, tmp_path / "rep").read_text()
    shown = re.sub(r"`[^`\n]*`|<!--.*?-->", "", text)
    assert shown.count(md(NASTY)) >= 4, "the name is shown (summary, tables, figures)"
    assert NASTY not in shown
    assert all(syntax not in _unescape(shown).replace(NASTY, "") for syntax in RAW_SYNTAX)
