"""`evalsuite report` and the seed's results table: printed in the terminal beside report.md,
written alone with --format markdown|csv|json (to --out FILE or standard output; the three
hold the same rows), and each fine-tune's training cost; on the leaderboard's sample
database (footwear and Fashion-MNIST; no DeepFashion, no custom run)."""

from __future__ import annotations

import csv
import functools
import io
import json
from pathlib import Path

import pytest
from test_seed_table import SEED_LABELS, markdown_rows

from evalsuite import report
from evalsuite.cli import main
from tests.fixtures.leaderboard_sample import write_sample_results

BASE = "FashionCLIP-tiny"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report-seed")
    db = tmp / "sample.duckdb"
    write_sample_results(db, tmp / "data" / "footwear")
    return db


@pytest.fixture(autouse=True)
def fewer_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdicts with 500 paired resamples instead of 10,000 (the same code path)."""
    load = functools.partial(report.load_report_data, n_resamples=500)
    monkeypatch.setattr(report, "load_report_data", load)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_formats_hold_the_same_rows(sample: Path, capsys, tmp_path: Path) -> None:
    code, markdown, _ = run(capsys, "--db", str(sample), "report", "--format", "markdown")
    assert code == 0
    rows = markdown_rows(markdown.split("<details>")[0])  # then come the training costs
    assert rows[0][:3] == ["Metric", "Scored on", f"{BASE} (baseline)"]
    assert [r[0] for r in rows[1:11]] == SEED_LABELS
    code, text, _ = run(capsys, "--db", str(sample), "report", "--format", "csv")
    assert code == 0 and list(csv.reader(io.StringIO(text))) == rows
    out = tmp_path / "pr" / "seed.json"
    code, said, _ = run(
        capsys, "--db", str(sample), "report", "--format", "json", "--out", str(out)
    )
    assert code == 0 and "json table written to" in said
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert [payload["columns"], *(r["display"] for r in payload["rows"])] == rows
    deep = next(r for r in payload["rows"] if r["label"] == "DEEP")
    assert deep["status"] == "not scored" and "--data deepfashion=DIR" in deep["reason"]
    costs = {c["model"]: c for c in payload["training_cost"]}
    assert costs["footwear-ft"]["seconds"] == pytest.approx(936.0)  # 311 + 312 + 313 s
    # a PR comment: the Markdown also carries the training cost
    assert "| footwear-ft | 15 min 36 s | 3 | 27 | not recorded |" in markdown  # steps logged


def test_format_out_must_be_a_file(sample: Path, capsys, tmp_path: Path) -> None:
    code, _, err = run(
        capsys, "--db", str(sample), "report", "--format", "csv", "--out", str(tmp_path)
    )
    assert code == 2 and "names the file to write" in err


def test_report_prints_the_seed_table_and_training_cost(sample: Path, capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "--db", str(sample), "report", "--out", str(tmp_path / "r"))
    assert code == 0
    text = " ".join(out.split())  # rich wraps long cells
    for label in ("Zero-shot accuracy", "Pretest score", "FMNIST", "IR by position"):
        assert label in text
    assert "79.90%" in text and "▲ +10.10 pts" in text and "▼ -5.00 pts" in text
    assert "251 / 390" in text and "not scored" in text
    assert "Training cost" in text and "15 min 36 s" in text and "not recorded" in text
    assert "No training record: FashionCLIP-tiny" in text
    assert text.rstrip().endswith(f"report written to {tmp_path / 'r' / 'report.md'}")
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    section = md.split("## Results at a glance (the seed's table)")[1].split("## Headline")[0]
    rows = markdown_rows(section.split("## Training cost")[0])
    assert [r[0] for r in rows[1:11]] == SEED_LABELS
    assert "## Training cost" in section and "footwear-ft" in section.split("## Training cost")[1]
