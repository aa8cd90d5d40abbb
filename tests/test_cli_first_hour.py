"""The first hour with ``evalsuite`` (issue 18, item 5): errors come before torch loads,
``--db`` goes before or after the sub-command, a fine-tune's output folder points at its
best/, the missing-images error gives the flag and asks about images/, and ``compare``
prints its verdicts with headers, markers, maxima and the names the table uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_prepare_footwear import make_catalogue

from evalsuite.cli import build_parser, main
from evalsuite.data.prepare import prepare_footwear
from evalsuite.errors import DataError
from tests.fixtures.verdict_db import write_verdict_db

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "open_clip", "duckdb")
PROBE = """
import json, sys
from evalsuite.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps([code, [m for m in {heavy!r} if m in sys.modules]]))
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_verdict_db(tmp_path_factory.mktemp("first-hour") / "results.duckdb")


def finetune_output(folder: Path) -> Path:
    """What `finetune` leaves in output.dir: best/ and last/ model folders, no model itself."""
    for name in ("best", "last"):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text("{}")
    (folder / "steps.jsonl").write_text("")
    return folder


def run_cli(argv: list[str]) -> tuple[int, list[str], str]:
    """Exit code, heavy modules loaded, and stderr of ``main(argv)`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), json.dumps(argv)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    code, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return code, heavy, done.stderr


def test_errors_come_before_heavy_imports(tmp_path: Path) -> None:
    missing = str(tmp_path / "nonexistent.duckdb")
    out = finetune_output(tmp_path / "runs" / "footwear")
    cases = {
        "no results database at": ["--db", missing, "compare", "--baseline", "a",
                                   "--candidate", "b"],
        f"(`evalsuite score MODEL --db {missing}`)": ["compare", "--candidate", "b", "--db",
                                                      missing],
        "model folder '/no/such/folder' does not exist": ["score", "/no/such/folder"],
        f"did you mean {out / 'best'}?": ["score", str(out)],
        "no benchmark called 'footwaer' (did you mean 'footwear'": [
            "score", "org/model", "--data", f"footwaer={tmp_path}"],
        f"--data-root {tmp_path / 'x'}: no such folder": [
            "score", "org/model", "--data-root", str(tmp_path / "x")],
        "--images-dir": ["prepare", "footwear", "--images-dir", str(tmp_path / "x"),
                         "--styles", str(tmp_path / "styles.csv")],
        f"no results database at {missing}": ["--results", missing, "list", "runs"],
        f"score a model first (`evalsuite score MODEL --db {missing}`": [
            "report", "--db", missing, "--out", str(tmp_path / "rep")],
    }  # fmt: skip
    for message, argv in cases.items():
        code, heavy, err = run_cli(argv)
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
        assert heavy == [], (argv, heavy)  # validated before torch, transformers, duckdb


def test_finetune_output_folder_names_its_best(tmp_path: Path) -> None:
    from evalsuite.errors import ModelLoadError
    from evalsuite.models import load_model

    out = finetune_output(tmp_path / "run")
    with pytest.raises(ModelLoadError, match=r"best/ and last/: did you mean .*run/best\?"):
        load_model(out)  # the library says it too, for finetune's model.spec


def test_db_before_or_after_the_command(db: Path, capsys: pytest.CaptureFixture) -> None:
    parse = build_parser().parse_args
    assert parse(["--db", "a", "list"]).db == Path("a")
    assert parse(["list", "--db", "b"]).db == Path("b")
    assert parse(["list", "--results", "c"]).db == Path("c")
    assert parse(["--db", "a", "list", "--results", "b"]).db == Path("b")
    assert parse(["list"]).db is None
    assert main(["list", "models", "--db", str(db)]) == 0
    assert "tuned" in capsys.readouterr().out
    assert main(["compare", "--candidate", "other", "--results", str(db)]) == 0
    assert main(["--db", str(db), "compare", "--candidate", "other"]) == 0


def test_missing_images_name_the_flag_and_images_folder(tmp_path: Path) -> None:
    images, styles = make_catalogue(tmp_path / "kaggle")
    (images / "105.jpg").unlink()
    with pytest.raises(DataError, match=r"1 image.*pass --on-missing-image skip to leave"):
        prepare_footwear(images, styles, tmp_path / "out")
    with pytest.raises(DataError, match=f"did you mean {images}\\?"):
        prepare_footwear(images.parent, styles, tmp_path / "out")  # the folder above images/
    other = tmp_path / "pictures"
    other.mkdir()
    with pytest.raises(DataError, match="should --images-dir end in images/"):
        prepare_footwear(other, styles, tmp_path / "out")


def _compare(db: Path, capsys: pytest.CaptureFixture, *flags: str) -> tuple[int, str]:
    code = main(["--db", str(db), "compare", "--candidate", "tuned", *flags])
    return code, capsys.readouterr().out


def test_compare_shows_verdicts_with_headers_markers_and_maxima(
    db: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.commands.console import console

    monkeypatch.setattr(console, "width", 300)  # one line per row and header
    code, out = _compare(db, capsys)
    assert code == 1
    header = next(line for line in out.splitlines() if "metric" in line)
    titles = [cell.strip() for cell in header.split("┃")[1:-1]]
    assert titles == ["benchmark / task", "metric", "baseline", "candidate", "change",
                      "95% CI of change", "p (adjusted)", "detectable", "verdict"]  # fmt: skip
    assert "▲ better" in out and "≈ tied" in out and "▼ worse" in out and " ok" not in out
    assert "1742 / 2000" in out and "127 / 400" in out  # counts keep their maxima
    regressions = [line for line in out.splitlines() if line.startswith("regression:")]
    assert regressions and all("acc@1" not in line.split("(key")[0] for line in regressions)
    assert "regression: shoes kind: zero-shot accuracy" in out
    assert "(key shoes/kind/acc@1)" in " ".join(out.split())  # what --tolerance takes
    code, out = _compare(db, capsys, "--tolerance", "shoes/kind/acc@1=0.5")
    assert "▼ worse (within margin 50.00 pts)" in out


def test_leaderboard_runs_the_dashboards_server_as_a_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`evalsuite leaderboard` starts `python -m dashboards.serve` (the core never imports the
    dashboards), which calls serve.main with what the command was given."""
    from dashboards import serve
    from evalsuite.commands import leaderboard

    started = []

    class FakeServer:
        def __init__(self, args: list[str]) -> None:
            started.append(args)

        def wait(self, timeout: float | None = None) -> int:
            return 3

    monkeypatch.setattr(leaderboard.subprocess, "Popen", FakeServer)
    db = tmp_path / "r.duckdb"
    argv = ["--db", str(db), "leaderboard", "--baseline", "base", "--target", "a/b/c"]
    assert main(argv) == 3  # streamlit's exit status
    (command,) = started
    assert command[:3] == [sys.executable, "-m", "dashboards.serve"]
    seen = {}
    monkeypatch.setattr(serve, "main", lambda db, **kwargs: seen.update(db=db, **kwargs) or 0)
    assert serve.cli(command[3:]) == 0
    assert seen == {"db": str(db), "port": 8501, "headless": True, "baseline": "base",
                    "target": "a/b/c"}  # fmt: skip
