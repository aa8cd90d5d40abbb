"""A model is what the user named it; the fingerprint of its weights is provenance (issue 17).

Scoring a WiSE-FT sweep used to rename the base model to "...-wise-0" (the alpha-0 checkpoint
has the base's weights) and take over its runs, so the next `compare --baseline` failed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from faults.faultkit import write_benchmarks, write_images_csv

from evalsuite import store
from evalsuite.cli import main
from evalsuite.verdicts import compare_models
from finetune.wise import main as wise_main
from testkit.tiny import build_tiny_hf

BENCH = "colours"


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bench")
    csv = write_images_csv(work / "images", per_colour=2)
    return write_benchmarks(work / "benchmarks", csv, (BENCH,))


@pytest.fixture
def bench_dir(bench_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench_root))
    return bench_root


@pytest.fixture(scope="module")
def finetuned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny HF CLIP (seed 1) standing in for a fine-tune of the tiny base."""
    path = build_tiny_hf(tmp_path_factory.mktemp("ft") / "shoes-ft", seed=1)
    training = {"run_name": "shoes-ft", "epoch": 3, "base_model": {"spec": "tiny"}}
    (path / "training.json").write_text(json.dumps(training))
    return path


def score(db: Path, model: Path, *extra: str) -> int:
    return main(["--db", str(db), "score", str(model), "--benchmarks", BENCH, "--workers", "0",
                 "--bootstrap", "20", "--no-cache", *extra])  # fmt: skip


def test_a_wise_sweep_keeps_the_base_model_and_its_runs(
    tiny_hf_dir: Path, finetuned_dir: Path, bench_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "results.duckdb"
    assert score(db, tiny_hf_dir, "--name", "tiny-hf-base", "--mark-baseline") == 0
    base_runs = store.list_runs(db, "tiny-hf-base")["run_id"].tolist()
    sweep = tmp_path / "wise"
    assert wise_main(["--base", str(tiny_hf_dir), "--finetuned", str(finetuned_dir),
                      "--out", str(sweep), "--alphas", "0,0.5,1"]) == 0  # fmt: skip
    for alpha in ("0", "0.5", "1"):
        assert score(db, sweep / f"alpha-{alpha}") == 0
    models = store.list_models(db).set_index("name")
    assert sorted(models.index) == [
        "shoes-ft-wise-0", "shoes-ft-wise-0.5", "shoes-ft-wise-1", "tiny-hf-base"
    ]  # fmt: skip
    assert models.loc["tiny-hf-base", "same_weights_as"] == ["shoes-ft-wise-0"]
    assert models.loc["shoes-ft-wise-0", "fingerprint"] == models.loc["tiny-hf-base", "fingerprint"]
    assert bool(models.loc["tiny-hf-base", "is_baseline"])
    assert store.list_runs(db, "tiny-hf-base")["run_id"].tolist() == base_runs
    comparison = compare_models(db, "tiny-hf-base", "shoes-ft-wise-1", n_resamples=50)
    assert (comparison.baseline, comparison.candidate) == ("tiny-hf-base", "shoes-ft-wise-1")
    assert main(["--db", str(db), "compare", "--candidate", "shoes-ft-wise-0.5"]) in (0, 1)

    from dashboards import model_table, wise_curves

    curves = wise_curves.wise_curves(model_table.model_table(store.list_models(db)))
    assert curves["curve"].nunique() == 1
    assert curves.sort_values("alpha")["alpha"].tolist() == [0.0, 0.5, 1.0]
    assert set(curves["name"]) == {"shoes-ft-wise-0", "shoes-ft-wise-0.5", "shoes-ft-wise-1"}


def test_rescoring_a_name_with_other_weights_keeps_its_runs_and_says_so(
    tiny_hf_dir: Path, finetuned_dir: Path, bench_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    db = tmp_path / "results.duckdb"
    assert score(db, tiny_hf_dir, "--name", "FashionCLIP") == 0
    first = store.list_runs(db)["run_id"].tolist()
    with caplog.at_level(logging.WARNING):
        assert score(db, tiny_hf_dir, "--name", "FashionCLIP") == 0  # the same again
    assert "replaced the earlier run " + first[0] in caplog.text
    caplog.clear()
    old = store.list_runs(db)
    with caplog.at_level(logging.WARNING):
        assert score(db, finetuned_dir, "--name", "FashionCLIP") == 0  # other weights
    assert "FashionCLIP was scored before with other weights" in caplog.text
    assert "replaced" not in caplog.text
    runs = store.list_runs(db)
    assert len(runs) == 2 and set(old["run_id"]) < set(runs["run_id"])  # kept
    assert runs.set_index("run_id").loc[old["run_id"].iloc[0], "current"] == False  # noqa: E712
    latest = store.latest_metrics(db)
    new_weights = store.list_models(db)["fingerprint"].tolist()
    assert set(latest["fingerprint"]) == set(new_weights) and len(new_weights) == 1
    assert int(store.list_models(db)["n_earlier_runs"].iloc[0]) == 1
