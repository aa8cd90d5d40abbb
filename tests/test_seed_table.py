"""The seed's results table (evalsuite.seed_table) on hand-built metrics frames and
comparisons: the seed's row order, maxima, "not scored" with the reason, demo stand-ins that
say so, and every change and marker taken from the comparisons; its formats (Markdown, CSV,
JSON parse back to the same rows); and what a fine-tune cost (evalsuite.training_cost)."""

from __future__ import annotations

import csv
import io
import json
import re

import pandas as pd
import pytest

from evalsuite.errors import EvalSuiteError
from evalsuite.seed_formats import render, seed_csv, seed_json, seed_markdown
from evalsuite.seed_table import (
    NOT_SCORED,
    build_seed_table,
    load_seed_rows,
    missing_benchmark_reasons,
    parse_seed_rows,
)
from evalsuite.training_cost import NOT_RECORDED, training_cost
from evalsuite.verdicts import MetricVerdict, ModelComparison

SEED_LABELS = [
    "Zero-shot accuracy",
    "Pretest score",
    "FMNIST",
    "DEEP",
    "CUSTOM",
    "IR score",
    "IR by position",
    "IR by position (only shoelaces)",
    "IR image search (only shoelaces)",
    "IR by position image search (only shoelaces)",
]
BASE, TUNED = "FashionCLIP", "lace-ft"

# (benchmark, task, task type, metric, maximum, base value, tuned value)
REAL = [
    ("footwear", "article_type", "zeroshot", "acc@1", None, 0.695, 0.6325),
    ("footwear", "article_type", "zeroshot", "pretest", 2000.0, 1502.0, 1402.0),
    ("footwear", "base_colour", "zeroshot", "acc@1", None, 0.5588, 0.5214),
    ("footwear", "lace_colour", "zeroshot", "acc@1", None, 0.1553, 0.4091),
    ("footwear", "text_search", "text_to_image", "ir_hits", 390.0, 247.0, 274.0),
    ("footwear", "text_search", "text_to_image", "ir_by_position", 390.0, 201.4, 230.6),
    ("footwear", "lace_search", "text_to_image", "ir_by_position", 390.0, 80.0, 120.0),
    ("footwear", "lace_search", "text_to_image", "ir_hits", 390.0, 90.0, 130.0),
    ("footwear", "lace_image_search", "image_to_image", "ir_hits", 130.0, 40.0, 44.0),
    ("footwear", "lace_image_search", "image_to_image", "ir_by_position", 130.0, 38.2, 41.0),
    ("footwear", "knn_article_type", "knn", "acc@1", None, 0.72, 0.71),
    ("fmnist", "label", "zeroshot", "acc@1", None, 0.70, 0.65),
]


def frame(rows=REAL, models=(BASE, TUNED)) -> pd.DataFrame:
    out = []
    for benchmark, task, task_type, metric, maximum, *values in rows:
        for i, (model, value) in enumerate(zip(models, values, strict=False)):
            out.append({
                "model_name": model, "fingerprint": f"fp-{model}", "benchmark": benchmark,
                "task": task, "metric": metric, "value": value, "maximum": maximum,
                "run_id": f"{model}-{benchmark}", "task_type": task_type,
                "started_at": pd.Timestamp("2026-11-01") + pd.Timedelta(minutes=i),
            })  # fmt: skip
    return pd.DataFrame(out)


def verdict(benchmark, task, metric, base, tuned, word, maximum=None, **kw) -> MetricVerdict:
    return MetricVerdict(benchmark, task, metric, base, tuned, word, gated=True,
                         maximum=maximum, p_adjusted=kw.pop("p", 0.01), **kw)  # fmt: skip


def comparison(rows=REAL, words: dict | None = None) -> ModelComparison:
    """Verdicts for every row; ``words`` picks some (the rest: tied)."""
    words = words or {}
    found = tuple(
        verdict(b, t, m, base, tuned, words.get((b, t, m), "tied"), mx)
        for b, t, _, m, mx, base, tuned in rows
    )
    return ModelComparison(BASE, TUNED, found)


@pytest.fixture(scope="module")
def definition():
    return load_seed_rows()


def build(definition, metrics, comparisons=None, **kw):
    comparisons = {TUNED: comparison()} if comparisons is None else comparisons
    models = kw.pop("models", [BASE, TUNED])
    missing = missing_benchmark_reasons(definition, metrics)
    return build_seed_table(metrics, models, comparisons, missing, definition, **kw)


def rows_by_label(table):
    return {row.label: row for row in table.rows}


def test_rows_in_the_seed_order_then_other_headline_metrics(definition):
    table = build(definition, frame())
    labels = [row.label for row in table.rows]
    assert labels[: len(SEED_LABELS)] == SEED_LABELS
    extra = labels[len(SEED_LABELS) :]
    # the first primary metric of every other zero-shot / retrieval task; no probe (kNN)
    assert extra == [
        "Zero-shot accuracy: base colour",
        "Zero-shot accuracy: lace colour",
        "IR score (hits): lace search",
    ]
    assert all(row.seed for row in table.rows[:10]) and not any(r.seed for r in table.rows[10:])
    assert table.header() == ["Metric", "Scored on", f"{BASE} (baseline)", TUNED, f"Δ {TUNED}"]


def test_values_show_maxima_and_percentages(definition):
    rows = rows_by_label(build(definition, frame()))
    assert [c.text for c in rows["IR score"].cells] == ["247 / 390", "274 / 390"]
    assert [c.text for c in rows["IR by position"].cells] == ["201.4 / 390", "230.6 / 390"]
    assert rows["IR image search (only shoelaces)"].cells[1].text == "44 / 130"
    assert [c.text for c in rows["Pretest score"].cells] == ["1502 / 2000", "1402 / 2000"]
    assert [c.text for c in rows["Zero-shot accuracy"].cells] == ["69.50%", "63.25%"]
    assert rows["IR score"].scored_on == "footwear · text search"


def test_benchmarks_without_runs_are_not_scored_with_the_reason(definition):
    rows = rows_by_label(build(definition, frame()))
    for label, benchmark, env in (
        ("DEEP", "deepfashion", "EVALSUITE_DEEPFASHION_DIR"),
        ("CUSTOM", "custom", "EVALSUITE_CUSTOM_DIR"),
    ):
        row = rows[label]
        assert not row.scored
        assert row.reason == (
            f"no run of {benchmark} in these results: pass --data {benchmark}=DIR or set {env}"
        )
        assert [c.text for c in row.cells] == [NOT_SCORED, NOT_SCORED]
        assert row.scored_on.startswith("not scored: no run of")


def test_a_task_no_model_has_is_not_scored_with_why(definition):
    rows = [r for r in REAL if r[1] != "lace_image_search"]
    skipped = {("footwear", "lace_image_search"): "needs the field lace_colour"}
    table = rows_by_label(
        build(definition, frame(rows), {TUNED: comparison(rows)}, skipped=skipped)
    )
    row = table["IR image search (only shoelaces)"]
    assert row.reason == "footwear lace image search was skipped: needs the field lace_colour"
    row = rows_by_label(build(definition, frame(rows), {TUNED: comparison(rows)}))[
        "IR by position image search (only shoelaces)"
    ]
    assert row.reason == ("no model here has IR score by position on footwear · lace image search")


def test_changes_and_markers_come_from_the_comparison_never_recomputed(definition):
    words = {
        ("footwear", "article_type", "acc@1"): "worse",
        ("footwear", "text_search", "ir_hits"): "tied",  # +27 hits, judged tied: shown tied
        ("fmnist", "label", "acc@1"): "not comparable",
    }
    found = list(comparison(words=words).verdicts)
    found[-1] = verdict("fmnist", "label", "acc@1", 0.70, 0.65, "not comparable",
                        reason="scored on different data")  # fmt: skip
    comp = ModelComparison(BASE, TUNED, tuple(found))
    rows = rows_by_label(build(definition, frame(), {TUNED: comp}))
    cell = rows["Zero-shot accuracy"].cells[1]
    assert (cell.verdict, cell.delta_text) == ("worse", "▼ -6.25 pts")
    assert cell.delta == pytest.approx(-0.0625) and cell.p_adjusted == 0.01
    assert rows["IR score"].cells[1].delta_text == "≈ +27"
    fmnist = rows["FMNIST"].cells[1]
    assert (fmnist.delta_text, fmnist.verdict) == ("n/a", "not comparable")
    table = build(definition, frame(), {TUNED: comp})
    assert "FMNIST, lace-ft: not comparable (scored on different data)" in table.notes()
    assert rows["Zero-shot accuracy"].cells[0].delta_text == ""  # the baseline: no change
    # the summary line is the comparison's own
    assert dict(table.summaries)[TUNED] == comp.summary_line(limit=1)


def test_a_candidate_without_comparison_reads_not_comparable(definition):
    table = build(definition, frame(), {TUNED: "models share no scored metric"})
    cell = rows_by_label(table)["IR score"].cells[1]
    assert (cell.delta_text, cell.reason) == ("n/a", "models share no scored metric")
    assert dict(table.summaries)[TUNED].startswith("not compared with the baseline")


def test_no_baseline_means_no_change_columns(definition):
    table = build(definition, frame(), {}, compared=False)
    assert table.header() == ["Metric", "Scored on", BASE, TUNED]
    assert all(len(row) == 4 for row in table.display_rows())
    assert table.summaries == ()


DEMO = [
    ("demo_footwear", "article_type", "zeroshot", "acc@1", None, 0.695, 0.6325),
    ("demo_footwear", "article_type", "zeroshot", "pretest", 2000.0, 1502.0, 1402.0),
    ("demo_footwear", "lace_colour", "zeroshot", "acc@1", None, 0.1553, 0.4091),
    ("demo_footwear", "text_search", "text_to_image", "ir_hits", 390.0, 84.0, 79.0),
    ("demo_footwear", "text_search", "text_to_image", "ir_by_position", 390.0, 80.0, 75.0),
    ("demo_footwear", "lace_search", "text_to_image", "ir_by_position", 390.0, 9.0, 15.0),
    ("demo_footwear", "lace_image_search", "image_to_image", "ir_hits", 130.0, 20.0, 30.0),
    ("demo_footwear", "lace_image_search", "image_to_image", "ir_by_position", 130.0, 18, 29),
    ("demo_general", "kind", "zeroshot", "acc@1", None, 0.70, 0.3562),
    ("demo_general", "colour", "zeroshot", "acc@1", None, 0.95, 1.0),
]


def test_demo_stand_ins_fill_every_seed_row_and_say_so(definition):
    table = build(definition, frame(DEMO), {TUNED: comparison(DEMO)})
    seed = table.rows[: len(SEED_LABELS)]
    assert all(row.scored for row in seed)
    assert [row.label for row in seed] == [f"{label} (demo stand-in)" for label in SEED_LABELS]
    rows = rows_by_label(table)
    assert rows["FMNIST (demo stand-in)"].scored_on == "demo_general · kind"
    assert rows["DEEP (demo stand-in)"].scored_on == "demo_general · kind"
    assert rows["CUSTOM (demo stand-in)"].scored_on == "demo_general · colour"
    assert rows["Zero-shot accuracy (demo stand-in)"].scored_on == "demo_footwear · article type"
    assert "Fashion-MNIST is not in the demo" in rows["FMNIST (demo stand-in)"].stand_in
    notes = table.notes()
    assert notes[0].startswith(
        "Demo stand-in for Zero-shot accuracy, Pretest score, IR score, IR by position, IR by "
        "position (only shoelaces), IR image search (only shoelaces), IR by position image "
        "search (only shoelaces): demo_footwear, the demo's procedural shoes"
    )
    assert notes[1].startswith("Demo stand-in for FMNIST: demo_general, the demo's")
    # stand-ins are not repeated as other headline rows; the lace colour (the target) is one
    assert [r.label for r in table.rows[len(SEED_LABELS) :]] == ["Zero-shot accuracy: lace colour"]


def test_a_real_benchmark_wins_over_its_stand_in(definition):
    table = build(definition, frame(REAL + DEMO), {TUNED: comparison(REAL + DEMO)})
    row = rows_by_label(table)["FMNIST"]
    assert (row.benchmark, row.task, row.stand_in) == ("fmnist", "label", "")


def test_row_definitions_fail_loudly():
    with pytest.raises(EvalSuiteError, match="row 1 lacks metric"):
        parse_seed_rows({"rows": [{"label": "x", "explain": "y", "benchmark": "b", "task": "t"}]})
    with pytest.raises(EvalSuiteError, match="stand_in needs benchmark and note"):
        parse_seed_rows({"rows": [{"label": "x", "explain": "y", "benchmark": "b", "task": "t",
                                   "metric": "m", "stand_in": {"benchmark": "d"}}]})  # fmt: skip
    with pytest.raises(EvalSuiteError, match="no rows"):
        parse_seed_rows({})


def test_every_row_explains_itself_and_names_real_benchmarks(definition):
    from evalsuite.spec import list_benchmarks

    known = set(list_benchmarks())
    for row in definition.rows:
        assert row.explain and row.benchmark in known
        if row.stand_in:
            assert row.stand_in.benchmark in known and row.stand_in.note
    assert set(definition.metrics) >= {"acc@1", "pretest", "ir_hits", "ir_by_position"}


# ---------------------------------------------------------------- formats


def markdown_rows(text: str) -> list[list[str]]:
    """The table's rows (header first) of Markdown written by seed_markdown, unescaped."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        inner = line.strip()[1:-1]
        cells = re.split(r"(?<!\\)\|", inner)
        rows.append([re.sub(r"\\(.)", r"\1", c.strip()) for c in cells])
    return rows


def test_markdown_csv_and_json_hold_the_same_rows(definition):
    table = build(definition, frame(), {TUNED: comparison(words={
        ("footwear", "article_type", "acc@1"): "worse"})})  # fmt: skip
    expected = [table.header(), *table.display_rows()]
    assert markdown_rows(seed_markdown(table)) == expected
    assert list(csv.reader(io.StringIO(seed_csv(table)))) == expected
    payload = json.loads(seed_json(table))
    assert [payload["columns"], *(r["display"] for r in payload["rows"])] == expected
    assert payload["baseline"] == BASE and payload["models"] == [BASE, TUNED]
    first = payload["rows"][0]
    assert (first["benchmark"], first["task"], first["metric"]) == (
        "footwear",
        "article_type",
        "acc@1",
    )
    assert first["cells"][TUNED]["verdict"] == "worse"
    assert first["cells"][TUNED]["value"] == pytest.approx(0.6325)
    deep = next(r for r in payload["rows"] if r["label"] == "DEEP")
    assert deep["status"] == NOT_SCORED and "EVALSUITE_DEEPFASHION_DIR" in deep["reason"]
    assert render(table, "markdown").startswith(f"- **{TUNED}**: ")
    with pytest.raises(ValueError, match="unknown format"):
        render(table, "html")


def test_markdown_escapes_names():
    weird = "**x** | :red[y]"
    definition = load_seed_rows()
    metrics = frame(REAL, models=(BASE, weird))
    table = build_seed_table(metrics, [BASE, weird], {}, {}, definition)
    rows = markdown_rows(seed_markdown(table))
    assert rows[0][3] == weird


# ---------------------------------------------------------------- training cost


def test_training_cost_from_training_json():
    record = {
        "epoch": 8, "global_step": 200, "train_samples": 12800,
        "trainable_parameters": {"trainable": 1_200_000, "total": 2_400_000},
        "device": {"type": "cuda", "name": "NVIDIA H100", "processes": 2,
                   "mixed_precision": "bf16"},
        "history": [{"epoch": 0, "seconds": 2.0}, *({"epoch": e, "seconds": 30.0}
                                                     for e in range(1, 9))],
    }  # fmt: skip
    cost = training_cost("ft", record)
    texts = cost.texts()
    assert texts == {
        "Training time": "4 min 02 s",
        "Epochs": "8",
        "Steps": "200",
        "Samples seen": "12,800",
        "Trainable parameters": "1.2 M of 2.4 M (50%)",
        "Device": "2 x NVIDIA H100 (cuda), bf16",
    }


def test_training_cost_says_not_recorded():
    old = {"history": [{"epoch": 1, "seconds": 310.0}, {"epoch": 2, "seconds": 311.0}]}
    texts = training_cost("ft", old).texts()
    assert texts["Training time"] == "10 min 21 s" and texts["Epochs"] == "2"
    for column in ("Steps", "Samples seen", "Trainable parameters", "Device"):
        assert texts[column] == NOT_RECORDED
    assert training_cost("base", None).kind == ""
    wise = training_cost("w", {"wise": {"alpha": 0.5}})
    assert wise.texts()["Training time"] == "none: WiSE-FT interpolation"
