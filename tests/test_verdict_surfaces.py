"""One verdict everywhere: on one results database (a significant regression, a significant
gain, a tie and a not-comparable pair; tests/fixtures/verdict_db.py), the gate, ``evalsuite compare
--json``, the report's Markdown and the leaderboard (AppTest) give the same verdict for every
metric they show."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from test_leaderboard_app import leaderboard_verdicts

from evalsuite.cli import main
from evalsuite.verdicts import compare_models
from tests.fixtures.report_tables import report_verdicts
from tests.fixtures.verdict_db import write_verdict_db

CANDIDATES = ("tuned", "other")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_verdict_db(tmp_path_factory.mktemp("surfaces") / "results.duckdb")


def _compare(db: Path, candidate: str, *flags: str) -> tuple[int, str]:
    """Exit code and stdout of ``evalsuite compare`` (baseline: the marked model)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--db", str(db), "compare", "--candidate", candidate, *flags])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def compare_json(db: Path) -> dict[tuple[str, str, str, str], dict]:
    verdicts = {}
    for candidate in CANDIDATES:
        _, text = _compare(db, candidate, "--json")
        payload = json.loads(text)
        assert payload["baseline"] == "base"
        for m in payload["metrics"]:
            verdicts[(candidate, m["benchmark"], m["task"], m["metric"])] = m
    return verdicts


def test_the_database_holds_every_kind_of_verdict(compare_json: dict) -> None:
    gated = {k: m["verdict"] for k, m in compare_json.items() if m["gated"]}
    assert gated[("tuned", "shoes", "kind", "acc@1")] == "worse"
    assert gated[("tuned", "shoes", "lace", "acc@1")] == "better"
    assert gated[("tuned", "shoes", "search", "ir_hits")] == "tied"
    assert gated[("other", "general", "type", "acc@1")] == "not comparable"


def test_the_gate_fails_on_exactly_the_significant_gated_regressions(
    db: Path, compare_json: dict
) -> None:
    for candidate in CANDIDATES:
        code, text = _compare(db, candidate)
        regressions = {k for k, m in compare_json.items() if k[0] == candidate and m["regression"]}
        worse = {
            k
            for k, m in compare_json.items()
            if k[0] == candidate and m["gated"] and m["verdict"] == "worse"
        }
        assert regressions == worse  # no margins: every significantly worse gated metric
        assert code == (1 if regressions else 0)
        flat = " ".join(text.split())  # rich wraps long lines
        assert flat.count("regression: ") == len(regressions)
        for v in compare_models(db, "base", candidate).regressions:
            assert (candidate, v.benchmark, v.task, v.metric) in regressions
            assert f"regression: {v.sentence()}" in flat
    assert _compare(db, "tuned")[0] == 1 and _compare(db, "other")[0] == 0


def test_the_report_gives_compare_s_verdict_for_every_gated_metric(
    db: Path, tmp_path: Path, compare_json: dict
) -> None:
    assert main(["--db", str(db), "report", "--out", str(tmp_path)]) == 0
    shown = report_verdicts((tmp_path / "report.md").read_text())
    expected = {k: m["verdict"] for k, m in compare_json.items() if m["gated"]}
    assert shown == expected


def test_the_leaderboard_agrees(db: Path, compare_json: dict) -> None:
    shown = leaderboard_verdicts(db)
    assert shown, "the leaderboard showed no verdict"
    for key, verdict in shown.items():
        assert compare_json[key]["verdict"] == verdict, key
    gated = {k for k, m in compare_json.items() if m["gated"]}
    assert gated <= set(shown)  # every gated metric is on the board
