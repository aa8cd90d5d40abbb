"""evalsuite.labels: what the benchmark YAMLs say of their display (labels, role, headline
and gated metrics), the defaults for a benchmark without a YAML, and the gate reading the
gated metrics from the benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite import labels
from evalsuite.errors import SpecError
from evalsuite.spec import BENCHMARKS_ENV, load_benchmark, spec_hash
from evalsuite.verdicts import compare_models
from tests.fixtures.verdict_db import write_verdict_db

SHOES = """\
name: shoes
version: 1
{display}
dataset: {{reader: labelled_csv, path: nowhere}}
tasks:
  - type: zeroshot
    name: kind
    field: label
{task_display}
  - type: zeroshot
    name: lace
    field: lace
"""


def write_shoes(root: Path, display: str = "", task_display: str = "") -> Path:
    folder = root / "shoes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shoes.yaml"
    path.write_text(SHOES.format(display=display, task_display=task_display), encoding="utf-8")
    return path


def test_shipped_benchmarks_say_their_labels_and_roles() -> None:
    assert labels.benchmark_label("footwear") == "Footwear"
    assert labels.benchmark_label("fmnist") == "Fashion-MNIST"
    assert labels.benchmark_label("custom") == "Custom"
    assert labels.task_label("footwear", "article_type") == "footwear type"
    assert labels.task_label("footwear", "text_search") == "Text search"
    assert labels.task_label("fmnist", "label") == "Fashion-MNIST"
    assert labels.task_label("custom", "label") == "custom set"
    general = [b for b in ("footwear", "fmnist", "deepfashion", "custom", "demo_general")
               if labels.is_general(b)]  # fmt: skip
    assert general == ["fmnist", "deepfashion", "custom", "demo_general"]
    names = ["demo_general", "custom", "fmnist", "footwear", "deepfashion", "catalogue"]
    assert sorted(names, key=labels.benchmark_order) == [
        "footwear", "fmnist", "deepfashion", "custom", "catalogue", "demo_general",
    ]  # fmt: skip
    assert labels.target_benchmark(["fmnist", "demo_footwear", "footwear"]) == "footwear"
    assert labels.target_tasks("footwear") == ("lace_colour", "article_type")


def test_the_demo_keeps_footwears_tasks_but_not_its_names() -> None:
    """demo_footwear includes footwear's tasks: same headline and gate, its own name."""
    assert labels.benchmark_label("demo_footwear") == "demo_footwear"
    assert labels.task_label("demo_footwear", "article_type") == "demo_footwear article type"
    present = ["acc@1", "f1_macro", "f1_weighted", "pretest"]
    assert labels.shown_by_default("demo_footwear", "lace_colour", present) == present[:2]
    assert not labels.is_general("demo_footwear")
    assert labels.benchmark_order("demo_footwear") > labels.benchmark_order("custom")


def test_headline_and_gated_defaults_without_a_yaml() -> None:
    assert labels.benchmark_labels("no_such_bench") == labels.BenchmarkLabels()
    assert labels.benchmark_label("no_such_bench") == "no_such_bench"
    assert labels.task_label("no_such_bench", "kind") == "no_such_bench kind"
    assert labels.gated_metrics("no_such_bench", "kind") == labels.DEFAULT_GATED
    present = ["acc@1", "f1_macro", "pretest"]
    assert labels.shown_by_default("no_such_bench", "kind", present) == ["acc@1"]
    assert labels.shown_by_default("no_such_bench", "stats", ["effective_rank"]) == [
        "effective_rank"
    ]
    assert labels.shown_by_default("footwear", "base_colour", present) == []  # headline: []
    assert labels.metric_order("footwear", "lace_colour", "zeroshot") == (
        "acc@1", "f1_macro", "f1_weighted", "pretest",
    )  # fmt: skip


def test_one_spelling_of_each_metric() -> None:
    assert labels.metric_label("f1_macro") == "F1 macro"
    assert labels.metric_label("f1_weighted") == "F1 weighted"
    assert labels.metric_label("acc@1", "knn") == "kNN accuracy"
    assert labels.metric_words("ir_hits") == "hits"
    assert labels.metric_words("Recall@10") == "recall@10"
    assert labels.metric_words("f1_macro") == "F1 macro"


def test_display_fields_are_not_part_of_the_hash(tmp_path: Path) -> None:
    plain = spec_hash(load_benchmark(write_shoes(tmp_path / "a")))
    shown = write_shoes(
        tmp_path / "b",
        "label: Shoes\nrole: general\ndisplay_order: 3\ntarget_tasks: [kind]",
        "    label: shoe kind\n    headline: [acc@1]\n    gated: [acc@1]",
    )
    assert spec_hash(load_benchmark(shown)) == plain


def test_target_tasks_must_name_tasks(tmp_path: Path) -> None:
    path = write_shoes(tmp_path, "target_tasks: [kinds]")
    with pytest.raises(SpecError, match="target_tasks: no task named kinds"):
        load_benchmark(path)


def test_an_invalid_yaml_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_shoes(tmp_path, "labels: Shoes")
    monkeypatch.setenv(BENCHMARKS_ENV, str(tmp_path))
    with pytest.raises(SpecError, match="labels: unknown field"):
        labels.benchmark_label("shoes")


def test_the_gate_judges_what_the_benchmark_gates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = write_verdict_db(tmp_path / "v.duckdb")
    before = {
        (v.task, v.metric): v.gated
        for v in compare_models(db, "base", "tuned", n_resamples=50).verdicts
    }
    assert before[("kind", "f1_macro")] and not before[("kind", "acc@3")]
    write_shoes(tmp_path / "benchmarks", task_display="    gated: [acc@1, acc@3]")
    monkeypatch.setenv(BENCHMARKS_ENV, str(tmp_path / "benchmarks"))
    after = compare_models(db, "base", "tuned", n_resamples=50)
    gated = {(v.task, v.metric): v.gated for v in after.verdicts}
    assert gated[("kind", "acc@1")] and gated[("kind", "acc@3")]
    assert not gated[("kind", "f1_macro")] and not gated[("kind", "pretest")]
    assert {k: g for k, g in gated.items() if k[0] != "kind"} == {
        k: g for k, g in before.items() if k[0] != "kind"
    }  # the other tasks keep the default
    only = compare_models(db, "base", "tuned", gated=["pretest"], n_resamples=50)  # --metric
    assert {v.metric for v in only.verdicts if v.gated} == {"pretest"}


def test_a_misspelt_gated_metric_in_a_yaml_stops_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalsuite.cli import main

    db = write_verdict_db(tmp_path / "v.duckdb")
    write_shoes(tmp_path / "benchmarks", task_display="    gated: [acc@1, acc@33]")
    monkeypatch.setenv(BENCHMARKS_ENV, str(tmp_path / "benchmarks"))
    args = ["--db", str(db), "compare", "--baseline", "base", "--candidate", "tuned",
            "--resamples", "50"]  # fmt: skip
    assert main(args) == 2  # not 0 with the misspelt metric silently left out of the gate
    err = capsys.readouterr().err
    assert "benchmark shoes, task kind: its YAML gates acc@33" in err
    write_shoes(tmp_path / "benchmarks", task_display="    gated: [acc@1, acc@3]")
    assert main(args) in (0, 1)  # judged: pass or regression, never a usage error
