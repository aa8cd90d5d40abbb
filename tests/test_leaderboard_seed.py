"""The leaderboard's first view: the seed's results table (dashboards/seed_view.py), rendered
with AppTest on the sample database, and its HTML on its own."""

from __future__ import annotations

import html
import re

import pytest
from test_leaderboard_app import app, no_errors
from test_seed_table import BASE, REAL, SEED_LABELS, TUNED, comparison, frame

from dashboards.seed_view import seed_html
from evalsuite.seed_table import build_seed_table, load_seed_rows, missing_benchmark_reasons


def seed_markup(at) -> str:
    found = [str(m.value) for m in at.markdown if 'id="seed-table"' in str(m.value)]
    assert len(found) == 1, "one seed table on the first view"
    return found[0]


def shown_labels(markup: str) -> list[str]:
    return re.findall(r'<tr data-row="([^"]*)"', markup)


def shown_models(markup: str) -> list[str]:
    return re.findall(r'<th data-model="([^"]*)"', markup)


def test_first_view_shows_the_seed_table(sample_db, monkeypatch):
    db, info = sample_db
    at = app(db, monkeypatch)
    no_errors(at)
    markup = seed_markup(at)
    assert shown_labels(markup)[: len(SEED_LABELS)] == SEED_LABELS
    models = shown_models(markup)
    assert models[0] == "FashionCLIP-tiny"  # the baseline first
    assert set(models) == set(info["names"])  # four models: all shown by default
    assert "79.90%" in markup and "▲ +10.10 pts" in markup and "▼ -5.00 pts" in markup
    assert "251 / 390" in markup
    assert "not scored&#58; no run of deepfashion" in markup  # with the reason
    assert 'title="Footwear article type with partial credit' in markup  # pretest explained
    assert 'id="seed-table-note-2"' in markup
    # the wide grid is one click away
    assert any(e.label.startswith("Every metric, one column each") for e in at.expander)


def test_the_table_shows_the_chosen_models(sample_db, monkeypatch):
    db, _ = sample_db
    at = app(db, monkeypatch)
    at.multiselect(key="seed_models").set_value(["footwear-ft"]).run()
    no_errors(at)
    assert shown_models(seed_markup(at)) == ["FashionCLIP-tiny", "footwear-ft"]  # + baseline


def test_seed_html_escapes_names_and_keeps_one_html_block():
    weird = "**x** :red[y] $z$ <b>"
    definition = load_seed_rows()
    metrics = frame(REAL, models=(BASE, weird))
    comp = comparison()
    comp = type(comp)(BASE, weird, comp.verdicts)
    table = build_seed_table(
        metrics, [BASE, weird], {weird: comp}, missing_benchmark_reasons(definition, metrics),
        definition,
    )  # fmt: skip
    markup = seed_html(table)
    assert "\n\n" not in markup  # Markdown would end the HTML block there
    assert "&#60;b&#62;" in markup and "&#58;red&#91;y&#93;" in markup and "&#36;z&#36;" in markup
    assert shown_models(markup)[1] == "".join(f"&#{ord(c)};" if c in "*:[]$<>" else c
                                              for c in "**x** :red[y] $z$ <b>")  # fmt: skip
    assert html.unescape(shown_models(markup)[1]) == "**x** :red[y] $z$ <b>"  # the name, shown


@pytest.mark.parametrize("compared", [True, False])
def test_seed_html_without_a_baseline_has_no_changes(compared):
    definition = load_seed_rows()
    metrics = frame()
    table = build_seed_table(
        metrics, [BASE, TUNED], {TUNED: comparison()} if compared else {},
        missing_benchmark_reasons(definition, metrics), definition, compared=compared,
    )  # fmt: skip
    markup = seed_html(table)
    assert ("≈ " in markup) is compared
    assert ("baseline" in markup) is compared
