"""`evalsuite score` on the real CLIP ViT-B/32 image embeddings of ../shared/data (2,000
catalogue items, no text encoder): rows in DuckDB, text tasks not applicable, items without
an embedding counted, and the leaderboard showing the run beside a model's with n/a cells."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.results import MetricValue, ModelInfo, RunResult

EMBEDDINGS = "clip-vit-b32-image-embeddings"
PROBES = ("knn_article_type", "knn_base_colour", "linear_probe_article_type")
PROBES += ("linear_probe_base_colour",)
SEARCHES = ("image_search_article_type", "image_search_base_colour")


@pytest.fixture(scope="module")
def scored(catalogue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = catalogue_dir / EMBEDDINGS
    if not (folder / "embeddings.npy").is_file():
        pytest.skip(f"real CLIP embeddings not found at {folder}")
    work = tmp_path_factory.mktemp("precomputed")
    db = work / "results.duckdb"
    argv = ["--db", str(db), "score", str(folder), "--benchmarks", "catalogue"]
    argv += ["--data-root", str(catalogue_dir.parent), "--bootstrap", "100", "--json"]
    return {"db": db, "argv": argv}


def test_score_real_embeddings_into_duckdb(scored: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(scored["argv"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["benchmark"] == "catalogue" and run["n_items"] == 8231
    assert run["precomputed"]["n_items_with_embedding"] == 2000
    assert run["precomputed"]["n_items_without_embedding"] == 6231
    skipped = run["skipped_tasks"]
    assert set(skipped) == {"article_type", "base_colour"}  # zero-shot needs a text encoder
    assert all(reason.startswith("not applicable") for reason in skipped.values())
    values = {(m["task"], m["name"]): m["value"] for m in run["metrics"]}
    # the reference figures of ../shared/data/README.md: each item's most similar other item
    assert values[("embedding_stats", "nn_agreement:articleType")] == pytest.approx(0.751)
    assert values[("embedding_stats", "nn_agreement:masterCategory")] == pytest.approx(0.984)
    for task in PROBES:
        assert 0.3 < values[(task, "acc@1")] <= 1.0, task  # far above chance (0.05 / 0.10)
    for task in SEARCHES:
        assert values[(task, "ir_hits")] > 0
    with duckdb.connect(str(scored["db"]), read_only=True) as con:
        tasks = {t for (t,) in con.execute("SELECT DISTINCT task FROM metrics").fetchall()}
        assert tasks == {*PROBES, *SEARCHES, "embedding_stats"}  # nothing stored as zero
        assert not con.execute(
            "SELECT count(*) FROM metrics WHERE task IN ('article_type', 'base_colour')"
        ).fetchone()[0]
        per_task = dict(
            con.execute("SELECT task, count(*) FROM predictions GROUP BY task").fetchall()
        )
        assert set(per_task) == set(PROBES) and min(per_task.values()) > 300  # test split
        assert con.execute("SELECT count(*) FROM class_metrics").fetchone()[0] > 0
        extra = json.loads(con.execute("SELECT extra FROM runs").fetchone()[0])
        assert extra["skipped_tasks"] == skipped
        assert extra["probe_splits"]["train"] > extra["probe_splits"]["test"] > 300
        # the three splits partition the catalogue; the items without a vector are counted
        missing = extra["probe_splits_not_embedded"]
        assert sum(extra["probe_splits"].values()) == 2000
        assert sum(missing.values()) == 6231 and min(missing.values()) > 0
        backend = con.execute("SELECT backend FROM models").fetchone()[0]
        assert backend == "precomputed"


def _model_run(fingerprint: str) -> RunResult:
    """A model's run on the same benchmark (hand-made: scoring 8,231 images takes minutes)."""
    info = ModelInfo(fingerprint=fingerprint, name="FashionCLIP", spec="fashion-clip", backend="hf")
    run = RunResult(
        model=info,
        benchmark="catalogue",
        benchmark_version="1",
        benchmark_hash="bh",
        data_manifest_hash="dm",
        data_root=None,
        code_version="test",
        device="cpu",
        precision="fp32",
        seconds=1.0,
        n_items=8231,
        extra={
            "tasks": {"knn_article_type": {"type": "knn"}, "article_type": {"type": "zeroshot"}}
        },
    )
    run.metrics += [
        MetricValue("acc@1", 0.62, None, 0.60, 0.64, True, "article_type"),
        MetricValue("acc@1", 0.80, None, 0.78, 0.82, True, "knn_article_type"),
    ]
    return run


def test_leaderboard_marks_not_applicable_cells(
    scored: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    db = scored["db"]
    if not db.is_file():
        assert main(scored["argv"]) == 0
    store.write_run(db, _model_run("fp-fashionclip"))
    store.mark_baseline(db, "FashionCLIP")  # the baseline is marked, never guessed by name
    monkeypatch.setenv("EVALSUITE_DB", str(db))
    app = Path(__file__).resolve().parents[1] / "dashboards" / "leaderboard.py"
    at = AppTest.from_file(str(app), default_timeout=60).run()
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "Model" in d.value.columns)
    rows = table.set_index("Model")
    assert set(rows.index) == {"FashionCLIP", EMBEDDINGS}
    assert rows.loc[EMBEDDINGS, "Type"] == "precomputed embeddings"
    assert rows.loc["FashionCLIP", "Type"] == "base"
    assert table["Model"].iloc[0] == "FashionCLIP"  # the marked baseline comes first
    zero_shot = "Zero-shot accuracy (catalogue article type)"
    knn = "kNN accuracy (catalogue knn article type)"
    assert rows.loc["FashionCLIP", zero_shot] == pytest.approx(62.0)
    assert rows.loc[EMBEDDINGS, knn] > 30
    frame = next(d for d in at.dataframe if "Model" in d.value.columns)
    shown = _display_values(frame)
    cell = shown.loc[list(table["Model"]).index(EMBEDDINGS), zero_shot]
    assert cell == "n/a"  # marked, not blank and not zero
    helps = [c for c in at.caption if "n/a without a score: the task does not apply" in c.value]
    assert helps, "the n/a cells are explained"
    config = json.loads(frame.proto.columns)
    assert "not applicable: precomputed image embeddings" in config[zero_shot]["help"]


def _display_values(element):
    """The text each cell of a Styler-rendered dataframe shows."""
    import pyarrow as pa

    styler = element.proto.arrow_data.styler
    return pa.ipc.open_stream(styler.display_values).read_all().to_pandas()
