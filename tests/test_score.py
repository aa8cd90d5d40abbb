"""`evalsuite score` end to end on real data, the database it writes, and the CI gate."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.images import item_content_hash
from evalsuite.runner import ScoreOptions, score_model
from evalsuite.spec import load_benchmark
from evalsuite.spec_data import resolve_dataset
from testkit.tiny import build_tiny_hf

TABLES = ("runs", "metrics", "class_metrics", "confusion", "predictions", "retrievals")


@pytest.fixture(scope="module")
def footwear_dir(catalogue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "footwear"
    code = main(
        [
            "prepare",
            "footwear",
            "--images-dir",
            str(catalogue_dir / "images"),
            "--styles",
            str(catalogue_dir / "styles.csv"),
            "--out",
            str(out),
        ]
    )
    assert code == 0 and (out / "manifest.json").is_file()
    return out


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_hf(tmp_path_factory.mktemp("models") / "tiny-b", seed=1)


def _options(db: Path, footwear_dir: Path, shared_data: Path, cache: Path, **kw) -> ScoreOptions:
    return ScoreOptions(
        benchmarks=("footwear", "fmnist"),
        db_path=db,
        data_root=shared_data,
        data_overrides={"footwear": footwear_dir},
        cache_dir=cache,
        progress=False,
        n_bootstrap=200,
        **kw,
    )


def _counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_score_real_data_once_per_distinct_image(
    tiny_hf_dir: Path,
    footwear_dir: Path,
    catalogue_dir: Path,
    shared_data: Path,
    fmnist_dir: Path,
    tmp_path: Path,
) -> None:
    db = tmp_path / "results.duckdb"
    opts = _options(db, footwear_dir, shared_data, tmp_path / "cache", name="tiny-a")
    runs = score_model(tiny_hf_dir, opts)
    assert [r.benchmark for r in runs] == ["footwear", "fmnist"]

    distinct = set()
    for name in ("footwear", "fmnist"):
        items = resolve_dataset(
            load_benchmark(name), shared_data, footwear_dir if name == "footwear" else None
        ).load()
        distinct |= {item_content_hash(item) for item in items}
    assert sum(r.extra["images_forwarded"] for r in runs) == len(distinct)

    footwear = runs[0]
    assert footwear.n_items == 884 and footwear.n_skipped_images == 0
    values = {(m.task, m.name): m for m in footwear.metrics}
    assert values[("text_search", "ir_hits")].maximum == 390
    assert values[("image_search", "ir_hits")].maximum == 130
    assert values[("article_type", "pretest")].maximum == 5 * 884
    for m in footwear.metrics:
        assert m.ci_low is not None and m.ci_low <= m.value + 1e-9 <= m.ci_high + 2e-9
    assert set(footwear.extra["skipped_tasks"]) == {
        "lace_colour",
        "lace_search",
        "lace_image_search",
    }
    formula = footwear.extra["score_formula"]  # the CLIP's own softmax at its own scale
    assert formula["kind"] == "softmax" and formula["logit_bias"] is None
    assert formula["logit_scale"] == pytest.approx(np.exp(2.6592), rel=1e-5)
    # thumbnails are served only from here: the Kaggle images folder, not the prepared one
    assert footwear.extra["image_roots"] == [str((catalogue_dir / "images").resolve())]

    counts = _counts(db)
    assert counts["runs"] == 2
    assert counts["retrievals"] == 39 * 10 + 13 * 10
    # each query's value of every retrieval metric, for paired verdicts; they add up to the
    # stored metric (IR hits: a sum over queries)
    per_query = store.query_values(db, [footwear.run_id])
    hits = per_query[(per_query["task"] == "text_search") & (per_query["metric"] == "ir_hits")]
    assert len(hits) == 39 and hits["value"].sum() == values[("text_search", "ir_hits")].value
    assert set(per_query["metric"]) >= {"ir_hits", "ir_by_position", "MRR", "P@5", "Recall@10"}
    scored = [t["n_scored"] for r in runs for t in r.extra["tasks"].values() if "n_scored" in t]
    assert counts["predictions"] == sum(scored)
    assert scored[0] == 884 and 0.9 * 884 < scored[1] < 884  # base_colour: its 14 classes
    again = score_model(tiny_hf_dir, opts)  # same model, same data: replaced, no forwards
    assert sum(r.extra["images_forwarded"] for r in again) == 0
    assert _counts(db) == counts
    assert score_model(tiny_hf_dir, opts, skip_existing=True) == []


def test_a_crashed_run_leaves_the_database_as_it_was(
    tiny_hf_dir: Path,
    footwear_dir: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "results.duckdb"
    opts = _options(db, footwear_dir, shared_data, tmp_path / "cache")
    score_model(tiny_hf_dir, opts)
    before = _counts(db)

    from evalsuite.tasks import retrieval

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(retrieval, "top_k", crash)
    with pytest.raises(RuntimeError, match="killed mid-run"):
        score_model(tiny_hf_dir, opts, benchmarks=("footwear",))
    assert _counts(db) == before


def test_cli_score_json_and_regression_gate(
    tiny_hf_dir: Path,
    second_model: Path,
    shared_data: Path,
    fmnist_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = str(tmp_path / "results.duckdb")
    common = [
        "--benchmarks",
        "fmnist",
        "--data-root",
        str(shared_data),
        "--bootstrap",
        "200",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(["--db", db, "score", str(tiny_hf_dir), "--name", "base", *common]) == 0
    capsys.readouterr()
    assert main(["--db", db, "score", str(second_model), "--name", "cand", "--json", *common]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload[0]["benchmark"] == "fmnist" and payload[0]["model"] == "cand"
    # Nothing to redo: stdout is still one JSON document (the message goes to stderr).
    again = ["--db", db, "score", str(second_model), "--name", "cand", "--json", "--skip-existing"]
    assert main([*again, *common]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [] and "nothing scored" in out.err

    gate = ["--metric", "acc@1", "--resamples", "500"]
    for a, b in (("base", "cand"), ("cand", "base")):
        code = main(["--db", db, "compare", "--baseline", a, "--candidate", b, *gate, "--json"])
        verdicts = json.loads(capsys.readouterr().out)
        worse = [m for m in verdicts["metrics"] if m["verdict"] == "worse" and m["gated"]]
        assert code == (1 if worse else 0) and verdicts["passed"] == (not worse)
        assert all(m["regression"] for m in worse)  # no margin: worse is a regression
        assert {m["metric"] for m in verdicts["metrics"] if m["gated"]} == {"acc@1"}
    pair = ["--db", db, "compare", "--baseline", "base", "--candidate", "cand", *gate]
    main([*pair, "--json"])
    rows = json.loads(capsys.readouterr().out)["metrics"]
    assert {r["task"]: r["task_type"] for r in rows} == {"label": "zeroshot", "knn_label": "knn"}
    assert all(r["unit"] == "items" and r["n_units"] > 0 for r in rows)  # paired on items
    main(pair)  # a probe's acc@1 is named as such, not as zero-shot accuracy
    table = capsys.readouterr().out
    assert "kNN accuracy" in table and "Zero-shot accuracy" in table
    assert main(["--db", db, "compare", "--baseline", "base", "--candidate", "base"]) == 0
    assert main(["--db", db, "compare", "--baseline", "base", "--candidate", "nope"]) == 2
    with pytest.raises(SystemExit) as usage:  # a malformed margin: argparse's usage error
        main(["--db", db, "compare", "--baseline", "base", "--candidate", "cand",
              "--tolerance", "acc@1"])  # fmt: skip
    assert usage.value.code == 2
    loose = ["--tolerance", "acc@1=1", "--metric", "acc@1"]
    assert (
        main(
            [
                "--db",
                db,
                "score",
                str(second_model),
                "--name",
                "cand",
                "--baseline",
                "base",
                "--fail-on-regression",
                *loose,
                *common,
            ]
        )
        == 0
    )
    with pytest.raises(SystemExit) as usage:
        main(["--db", db, "compare", "--baseline", "base"])
    assert usage.value.code == 2
    assert main(["--db", str(tmp_path / "missing.duckdb"), "list"]) == 2
