"""dashboards.views and dashboards.overview on hand-made store frames: no Streamlit, no
database. Verdicts are hand-made ``MetricVerdict``s: the overview must show whatever verdict
``evalsuite.verdicts`` gives, never judge a difference itself."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from dashboards import (
    charts,
    images,
    model_table,
    overview,
    page_tables,
    run_provenance,
    table_columns,
    training,
    views,
    wise_curves,
)
from evalsuite.verdicts import (
    BETTER,
    NOT_COMPARABLE,
    TIED,
    WORSE,
    MetricVerdict,
    ModelComparison,
    choose_baseline,
)

METRIC_COLUMNS = [
    "model_name",
    "fingerprint",
    "benchmark",
    "task",
    "metric",
    "value",
    "maximum",
    "ci_low",
    "ci_high",
    "higher_is_better",
    "run_id",
    "started_at",
    "data_manifest_hash",
    "benchmark_hash",
    "code_version",
]


# fingerprint (weights) -> model name: the leaderboard keys models by name
NAMES = {"base": "FashionCLIP", "clip": "openai-clip", "ft": "ft", "w5": "ft-wise0.5",
         "w2": "ft-wise0.2", "vec": "prod-vectors"}  # fmt: skip
BASE = NAMES["base"]


def metric(fp, benchmark, task, name, value, lo=None, hi=None, maximum=None, dm="dm1", bh="bh1"):
    return {
        "model_name": NAMES.get(fp, fp.upper()),
        "fingerprint": fp,
        "benchmark": benchmark,
        "task": task,
        "metric": name,
        "value": value,
        "maximum": maximum,
        "ci_low": lo,
        "ci_high": hi,
        "higher_is_better": True,
        "run_id": f"{fp}-{benchmark}",
        "started_at": None,
        "data_manifest_hash": dm,
        "benchmark_hash": bh,
        "code_version": "v1",
    }


def models_frame(*rows: dict) -> pd.DataFrame:
    base = {
        "spec": None,
        "backend": "hf",
        "base_model": None,
        "base_fingerprint": None,
        "parameter_count": 1_000_000,
        "training": None,
    }
    return pd.DataFrame([{**base, **row} for row in rows])


WISE_FT = "/ckpt/ft"


def sample():
    models = models_frame(
        {"fingerprint": "base", "name": "FashionCLIP", "spec": "patrickjohncyh/fashion-clip"},
        {"fingerprint": "clip", "name": "openai-clip", "spec": "openai/clip-vit-base-patch32"},
        {
            "fingerprint": "ft",
            "name": "ft",
            "spec": WISE_FT,
            "training": {
                "run_name": "ft",
                "history": [{"epoch": 1, "seconds": 60.0}, {"epoch": 2, "seconds": 60.0}],
            },
        },
        {
            "fingerprint": "w5",
            "name": "ft-wise0.5",
            "spec": "/ckpt/w5",
            "training": {
                "wise": {
                    "alpha": 0.5,
                    "base_spec": "patrickjohncyh/fashion-clip",
                    "finetuned_spec": WISE_FT + "/",
                }
            },
        },
        {
            "fingerprint": "w2",
            "name": "ft-wise0.2",
            "spec": "/ckpt/w2",
            "training": {
                "wise": {
                    "alpha": 0.2,
                    "base_spec": "patrickjohncyh/fashion-clip",
                    "finetuned_spec": WISE_FT,
                }
            },
        },
    )
    rows = []
    values = {
        "base": (0.70, 0.80, 200),
        "clip": (0.60, 0.82, 180),
        "ft": (0.80, 0.75, 240),
        "w5": (0.77, 0.79, 230),
        "w2": (0.71, 0.803, 210),
    }
    for fp, (acc, fm, hits) in values.items():
        rows += [
            metric(fp, "footwear", "article_type", "acc@1", acc, acc - 0.03, acc + 0.03),
            metric(fp, "footwear", "article_type", "f1_macro", acc - 0.1),
            metric(
                fp,
                "footwear",
                "article_type",
                "pretest",
                acc * 1000,
                acc * 1000 - 20,
                acc * 1000 + 20,
                maximum=1000,
            ),
            metric(fp, "footwear", "text_search", "ir_hits", hits, hits - 10, hits + 10, 390),
            metric(fp, "footwear", "text_search", "MRR", 0.5),
            metric(fp, "fmnist", "label", "acc@1", fm, fm - 0.01, fm + 0.01),
        ]
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    return model_table.model_table(models, metrics), metrics


# ---------------------------------------------------------------- baseline


def judged(
    metrics: pd.DataFrame,
    baseline: str,
    verdicts: dict[tuple[str, str, str], str] | None = None,
    reason: str = "",
) -> dict[str, ModelComparison]:
    """A ModelComparison per other model (by name) whose verdicts are
    ``verdicts[(name, task, metric)]`` (else tied), as ``evalsuite.verdicts`` would return
    them."""
    look = metrics.set_index(["model_name", "benchmark", "task", "metric"])["value"]
    out = {}
    for name in sorted(set(metrics["model_name"]) - {baseline}):
        rows = []
        for (model, benchmark, task, metric), value in look.items():
            if model != name or (baseline, benchmark, task, metric) not in look.index:
                continue
            verdict = (verdicts or {}).get((name, task, metric), TIED)
            rows.append(MetricVerdict(
                benchmark, task, metric, float(look[(baseline, benchmark, task, metric)]),
                float(value), verdict, metric == "acc@1", p_value=0.01, p_adjusted=0.02,
                ci_low=-0.01, ci_high=0.02, mdd=0.031,
                reason=reason if verdict == NOT_COMPARABLE else "",
            ))  # fmt: skip
        out[name] = ModelComparison(baseline, name, tuple(rows))
    return out


SAMPLE_VERDICTS = {
    ("ft", "article_type", "acc@1"): BETTER,
    ("ft", "article_type", "f1_macro"): BETTER,
    ("ft", "text_search", "ir_hits"): BETTER,
    ("ft", "label", "acc@1"): WORSE,
}


def test_the_baseline_is_never_guessed_from_names():
    """The leaderboard uses evalsuite.verdicts.choose_baseline: a marked model, else the one
    base of the fine-tunes; a model called FashionCLIP is no baseline for its name."""
    assert not hasattr(views, "choose_baseline") and not hasattr(views, "is_fashion_clip")
    frame = models_frame(
        {"fingerprint": "base", "name": "FashionCLIP", "spec": "patrickjohncyh/fashion-clip"},
        {"fingerprint": "clip", "name": "openai-clip"},
    )
    assert choose_baseline(frame) is None  # the page asks the user to choose
    frame["is_baseline"] = [False, True]
    assert choose_baseline(frame) == "openai-clip"  # the baseline is a name


def test_model_table_kinds_labels_and_cost():
    models, _ = sample()
    kinds = dict(zip(models["fingerprint"], models["kind"], strict=True))
    assert kinds == {
        "base": "base",
        "clip": "base",
        "ft": "fine-tuned",
        "w5": "WiSE-FT α=0.50",
        "w2": "WiSE-FT α=0.20",
    }
    assert models.set_index("fingerprint").loc["ft", "train_seconds"] == 120.0
    assert models["name"].tolist() == ["FashionCLIP", "ft", "ft-wise0.2", "ft-wise0.5",
                                       "openai-clip"]  # fmt: skip


def test_two_names_of_the_same_weights_are_two_models():
    """A WiSE-FT at alpha 0 has its base's weights: two names, two models, two rows, each
    with its own values and verdicts; the page can say that they share their weights."""
    _, metrics = sample()
    wise = {"base_fingerprint": "base", "finetuned_spec": WISE_FT, "finetuned_fingerprint": "ft"}
    raw = models_frame(
        {"fingerprint": "base", "name": BASE, "same_weights_as": ["ft-wise0"]},
        {"fingerprint": "base", "name": "ft-wise0", "base_fingerprint": "base",
         "same_weights_as": [BASE], "training": {"wise": {**wise, "alpha": 0.0}}},
        {"fingerprint": "w5", "name": "ft-wise0.5", "base_fingerprint": "base",
         "training": {"wise": {**wise, "alpha": 0.5}}},
        {"fingerprint": "ft", "name": "ft", "spec": WISE_FT, "training": {"run_name": "ft"}},
    )  # fmt: skip
    metrics = metrics[metrics["model_name"].isin([BASE, "ft", "ft-wise0.5"])]
    twin = metrics[metrics["model_name"] == BASE].assign(model_name="ft-wise0", value=0.5)
    metrics = pd.concat([metrics, twin], ignore_index=True)
    models = model_table.model_table(raw, metrics)
    assert models["name"].tolist() == [BASE, "ft", "ft-wise0", "ft-wise0.5"]
    assert models["fingerprint"].tolist() == ["base", "ft", "base", "w5"]
    assert models.set_index("name").loc["ft-wise0", "kind"] == "WiSE-FT α=0.00"
    assert model_table.same_weights_note(models) == "FashionCLIP and ft-wise0 have the same weights"
    columns = table_columns.metric_columns(metrics)
    comp = overview.comparison(metrics, models, BASE, columns, judged(metrics, BASE))
    table, _ = overview.styled_overview(comp, models, columns)
    row = table.set_index("Model")
    assert row.loc["ft-wise0", "Zero-shot accuracy (footwear type)"] == pytest.approx(50.0)
    assert row.loc["ft-wise0", "Δ Zero-shot accuracy (footwear type)"] == pytest.approx(-20.0)
    assert row.loc[BASE, "Δ Zero-shot accuracy (footwear type)"] == 0.0
    status = comp.set_index(["model", "column"])["status"]
    assert status[("ft-wise0", "Zero-shot accuracy (footwear type)")] == TIED  # not the baseline
    # of the names of the base's weights, a curve's end is the one not derived itself
    assert wise_curves._match_model(models, None, "base") == BASE
    assert wise_curves._match_model(models, None, "base", "ft-wise0") == "ft-wise0"  # name recorded
    # the curve joins alpha 0 (the interpolation itself, not its base again), 0.5 and 1
    curve = wise_curves.wise_curves(models)
    assert list(zip(curve["alpha"], curve["name"], strict=True)) == [
        (0.0, "ft-wise0"), (0.5, "ft-wise0.5"), (1.0, "ft")]  # fmt: skip
    target = ("footwear", "article_type", "acc@1")
    pts = overview.tradeoff_points(comp, models, target, [("fmnist", "label", "acc@1")])
    line = pts[pts["curve"].notna()]
    assert line["model"].tolist() == ["ft-wise0", "ft-wise0.5", "ft"]
    assert line["target_gain"].tolist()[0] == pytest.approx(-20.0)


# ---------------------------------------------------------------- labels and columns


def test_plain_language_labels():
    assert views.metric_label("footwear", "article_type", "acc@1") == (
        "Zero-shot accuracy (footwear type)"
    )
    assert views.metric_label("footwear", "text_search", "ir_hits", 390) == (
        "Text search hits / 390"
    )
    assert views.metric_label("footwear", "image_search", "ir_by_position", 130.0) == (
        "Image search by-position score / 130"
    )
    assert views.metric_label("fmnist", "label", "acc@1") == "Zero-shot accuracy (Fashion-MNIST)"
    assert views.metric_label("demo", "colour", "Recall@10") == "demo colour recall@10"
    assert views.short_label("footwear", "text_search", "ir_hits") == "text search hits"


def test_headline_columns_main_numbers_first_and_all_metrics_on_demand():
    _, metrics = sample()
    labels = [c.label for c in table_columns.metric_columns(metrics)]
    assert labels == [
        "Zero-shot accuracy (footwear type)",
        "Text search hits / 390",
        "Zero-shot accuracy (Fashion-MNIST)",
        "F1 macro (footwear type)",
        "Pretest score (footwear type) / 1,000",
    ]
    every = [c.label for c in table_columns.metric_columns(metrics, all_metrics=True)]
    assert "Text search MRR" in every and len(every) == 6


def test_default_target_prefers_lace_colour_then_footwear_type():
    _, metrics = sample()
    assert table_columns.default_target(metrics) == ("footwear", "article_type", "acc@1")
    lace = pd.concat(
        [metrics, pd.DataFrame([metric("ft", "footwear", "lace_colour", "acc@1", 0.5)])]
    )
    assert table_columns.default_target(lace) == ("footwear", "lace_colour", "acc@1")
    general_only = metrics[metrics["benchmark"] == "fmnist"]
    assert table_columns.default_target(general_only) == ("fmnist", "label", "acc@1")


# ---------------------------------------------------------------- deltas and noise


def test_deltas_against_the_baseline_with_verdicts_and_units():
    models, metrics = sample()
    columns = table_columns.metric_columns(metrics)
    verdicts = judged(metrics, BASE, SAMPLE_VERDICTS)
    comp = overview.comparison(metrics, models, BASE, columns, verdicts)
    comp = comp.set_index(["model", "column"])
    ft = comp.loc[("ft", "Zero-shot accuracy (footwear type)")]
    assert ft["value"] == pytest.approx(80.0) and ft["delta"] == pytest.approx(10.0)
    assert (ft["status"], ft["marker"], ft["colour"]) == ("better", "▲", "green")
    assert ft["change_ci_low"] == pytest.approx(-1.0)  # the verdict's interval, in points
    assert ft["mdd_text"] == "3.10 pts" and "p = 0.010" in ft["sentence"]
    w2 = comp.loc[("ft-wise0.2", "Zero-shot accuracy (footwear type)")]
    assert w2["delta"] == pytest.approx(1.0) and w2["status"] == "tied"
    fm = comp.loc[("ft", "Zero-shot accuracy (Fashion-MNIST)")]
    assert fm["delta"] == pytest.approx(-5.0) and fm["status"] == "worse"
    hits = comp.loc[("ft", "Text search hits / 390")]
    assert hits["value"] == 240 and hits["delta"] == 40  # counts stay counts
    assert hits["delta_points"] == pytest.approx(100 * 40 / 390)
    assert comp.loc[("FashionCLIP", "Zero-shot accuracy (footwear type)"), "status"] == ("baseline")


def test_cells_show_value_change_and_the_verdicts_marker_and_colour():
    models, metrics = sample()
    columns = table_columns.metric_columns(metrics)
    verdicts = judged(metrics, BASE, SAMPLE_VERDICTS)
    comp = overview.comparison(metrics, models, BASE, columns, verdicts)
    table, styler = overview.styled_overview(comp, models, columns)
    html = styler.to_html()
    assert "80.0  (▲ +10.0)" in html
    assert "71.0  (≈ +1.0)" in html
    assert "75.0  (▼ −5.0)" in html
    assert "240  (▲ +40)" in html
    assert ">70.0<" in html  # the baseline: its value alone
    assert "±" not in html  # no per-model intervals to compare by eye
    assert overview.CELL_CSS["green"].split(";")[0] in html
    assert overview.CELL_CSS["red"].split(";")[0] in html
    row = table.set_index("Model")
    assert row.loc["ft", "Δ Zero-shot accuracy (footwear type)"] == pytest.approx(10.0)
    assert row.loc["ft", "Fine-tuning time"] == "2 min"
    assert row.loc["ft", "Parameters"] == "1.0 M"


def test_a_large_change_the_verdict_calls_tied_is_not_coloured():
    """The view does not judge: +10 points judged tied (say, a tiny benchmark) is ≈, grey."""
    models, metrics = sample()
    columns = table_columns.metric_columns(metrics)
    comp = overview.comparison(metrics, models, BASE, columns, judged(metrics, BASE))
    cell = comp.set_index(["model", "column"]).loc[("ft", "Zero-shot accuracy (footwear type)")]
    assert cell["delta"] == pytest.approx(10.0) and cell["status"] == "tied"
    assert overview.cell_text(cell, columns[0]) == "80.0  (≈ +10.0)"
    html = overview.styled_overview(comp, models, columns)[1].to_html()
    assert overview.CELL_CSS["green"].split(";")[0] not in html


def test_switching_baseline_changes_deltas():
    models, metrics = sample()
    columns = table_columns.metric_columns(metrics)
    comp = overview.comparison(metrics, models, "ft", columns, judged(metrics, "ft"))
    comp = comp.set_index(["model", "column"])
    assert comp.loc[("FashionCLIP", "Zero-shot accuracy (footwear type)"), "delta"] == (
        pytest.approx(-10.0)
    )
    assert comp.loc[("ft", "Zero-shot accuracy (footwear type)"), "status"] == "baseline"


def test_missing_values_missing_baseline_values_and_no_baseline():
    models, metrics = sample()
    metrics = metrics[~((metrics["fingerprint"] == "base") & (metrics["benchmark"] == "fmnist"))]
    metrics = metrics[~((metrics["fingerprint"] == "clip") & (metrics["metric"] == "pretest"))]
    columns = table_columns.metric_columns(metrics)
    comp = overview.comparison(metrics, models, BASE, columns, judged(metrics, BASE))
    comp = comp.set_index(["model", "column"])
    assert comp.loc[("ft", "Zero-shot accuracy (Fashion-MNIST)"), "status"] == "none"
    assert comp.loc[("openai-clip", "Pretest score (footwear type) / 1,000"), "status"] == (
        "missing"
    )
    _, styler = overview.styled_overview(comp.reset_index(), models, columns)
    assert "–" in styler.to_html()
    nobody = overview.comparison(metrics, models, None, columns, {})
    assert set(nobody["status"]) <= {"none", "missing"}  # no baseline: values, no verdicts
    assert (
        "("
        not in overview.styled_overview(nobody, models, columns)[1]
        .to_html()
        .split("<tbody>")[1]
        .split("Δ")[0]
    )


def test_a_model_without_a_comparison_is_not_comparable_with_why():
    models, metrics = sample()
    columns = table_columns.metric_columns(metrics)
    verdicts = {"ft": "models 'base' and 'ft' share no scored metric"}
    comp = overview.comparison(metrics, models, BASE, columns, verdicts)
    cell = comp.set_index(["model", "column"]).loc[("ft", "Zero-shot accuracy (footwear type)")]
    assert cell["status"] == NOT_COMPARABLE and "share no scored metric" in cell["reason"]
    assert overview.summary_lines(verdicts) == [
        "**ft**: not comparable (models 'base' and 'ft' share no scored metric)"
    ]


def test_csv_table_has_raw_numbers_and_the_verdicts():
    models, metrics = sample()
    columns = table_columns.metric_columns(metrics)
    verdicts = judged(metrics, BASE, SAMPLE_VERDICTS)
    comp = overview.comparison(metrics, models, BASE, columns, verdicts)
    csv = overview.csv_table(comp, "FashionCLIP")
    row = csv[(csv["model"] == "ft") & (csv["metric"] == "acc@1") & (csv["task"] == "article_type")]
    assert row["stored_value"].iloc[0] == 0.8 and row["delta"].iloc[0] == pytest.approx(10.0)
    assert row["verdict"].iloc[0] == "better" and row["p_adjusted"].iloc[0] == 0.02
    assert set(csv["baseline"]) == {"FashionCLIP"}
    assert "noise" not in csv.columns and "status" not in csv.columns


def test_summary_lines_and_method_notes_come_from_the_comparisons():
    _, metrics = sample()
    verdicts = judged(metrics, BASE, SAMPLE_VERDICTS)
    lines = overview.summary_lines(verdicts)
    ft = next(line for line in lines if line.startswith("**ft**: "))
    assert ft == "**ft**: " + verdicts["ft"].summary_line()
    assert "worse on fashion-mnist label" in ft and "footwear article type (zero-shot" in ft
    assert any(line.startswith("**openai-clip**: no significant change") for line in lines)
    notes = overview.method_notes(verdicts)
    assert all("Benjamini-Hochberg-corrected" in note for note in notes)


def test_rank_table_labels_ties_and_shows_the_detectable_difference():
    _, metrics = sample()
    bands = pd.DataFrame({
        "fingerprint": ["ft", "w5", "base", "clip"],
        "model_name": ["ft", "ft-wise0.5", "FashionCLIP", "openai-clip"],
        "value": [0.80, 0.77, 0.70, 0.60], "band": [1, 1, 2, None],
        "p_adjusted": [math.nan, 0.3, math.nan, math.nan],
        "note": ["", "statistically tied", "", "scored on different data"],
    })  # fmt: skip
    target = ("footwear", "article_type", "acc@1")
    table = overview.rank_table(bands, target, judged(metrics, BASE), False)
    rows = table.set_index("Model")
    assert rows.loc["ft", "Band"] == rows.loc["ft-wise0.5", "Band"] == "statistically tied"
    assert rows.loc["FashionCLIP", "Band"] == "" and rows.loc["FashionCLIP", "Rank"] == 2
    assert rows.loc["openai-clip", "Band"] == "not comparable (scored on different data)"
    assert rows.loc["ft", "Score"] == pytest.approx(80.0)
    assert rows.loc["ft", "Detectable difference"] == "3.10 pts"
    assert rows.loc["FashionCLIP", "Detectable difference"] == ""


# ---------------------------------------------------------------- trade-off and WiSE-FT


def test_wise_curve_groups_by_finetuned_spec_sorted_by_alpha_with_both_ends():
    models, _ = sample()
    curves = wise_curves.wise_curves(models)
    assert curves["name"].tolist() == ["FashionCLIP", "ft-wise0.2", "ft-wise0.5", "ft"]
    assert curves["alpha"].tolist() == [0.0, 0.2, 0.5, 1.0]
    assert curves["curve"].nunique() == 1  # "/ckpt/ft/" and "/ckpt/ft" are the same fine-tune


def test_wise_curves_of_two_finetunes_stay_apart():
    models = model_table.model_table(
        models_frame(
            {
                "fingerprint": "a5",
                "name": "a5",
                "training": {"wise": {"alpha": 0.5, "finetuned_spec": "/a"}},
            },
            {
                "fingerprint": "b5",
                "name": "b5",
                "training": {"wise": {"alpha": 0.5, "finetuned_spec": "/b"}},
            },
            {
                "fingerprint": "b3",
                "name": "b3",
                "training": {"wise": {"alpha": 0.3, "finetuned_spec": "/b"}},
            },
        )
    )
    curves = wise_curves.wise_curves(models)
    assert curves.groupby("curve")["name"].apply(list).to_dict() == {
        "WiSE-FT of a": ["a5"],
        "WiSE-FT of b": ["b3", "b5"],
    }


def test_tradeoff_points_and_chart():
    models, metrics = sample()
    columns = table_columns.metric_columns(metrics, all_metrics=True)
    comp = overview.comparison(metrics, models, BASE, columns, judged(metrics, BASE))
    target = ("footwear", "article_type", "acc@1")
    pts = overview.tradeoff_points(comp, models, target, [("fmnist", "label", "acc@1")])
    singles = pts[pts["curve"].isna()].set_index("model")
    assert singles.loc["ft", "target_gain"] == pytest.approx(10.0)
    assert singles.loc["ft", "general_change"] == pytest.approx(-5.0)
    assert singles.loc["FashionCLIP", ["target_gain", "general_change"]].tolist() == [0, 0]
    curve = pts[pts["curve"].notna()]
    assert curve["model"].tolist() == ["FashionCLIP", "ft-wise0.2", "ft-wise0.5", "ft"]
    spec = charts.tradeoff_chart(pts, "footwear type accuracy", "Fashion-MNIST").to_dict()
    assert len(spec["layer"]) == 6
    assert overview.tradeoff_points(comp, models, None, []).empty


# ---------------------------------------------------------------- provenance


def runs_frame(rows):
    base = {
        "benchmark_version": "1",
        "code_version": "v1",
        "device": "cpu",
        "precision": "fp32",
        "seconds": 1.0,
        "status": "ok",
        "n_items": 10,
        "n_skipped": 0,
        "started_at": pd.Timestamp("2026-11-20 09:00"),
        "finished_at": None,
        "extra": {},
        "data_root": None,
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def test_provenance_mismatch_detects_different_data_and_benchmark():
    runs = runs_frame(
        [
            {
                "run_id": "1",
                "model_fingerprint": "base",
                "model_name": "FashionCLIP",
                "benchmark": "footwear",
                "benchmark_hash": "bh1",
                "data_manifest_hash": "dm1",
            },
            {
                "run_id": "2",
                "model_fingerprint": "ft",
                "model_name": "ft",
                "benchmark": "footwear",
                "benchmark_hash": "bh1",
                "data_manifest_hash": "dm2",
            },
            {
                "run_id": "3",
                "model_fingerprint": "w5",
                "model_name": "w5",
                "benchmark": "footwear",
                "benchmark_hash": "bh2",
                "data_manifest_hash": "dm1",
            },
            {
                "run_id": "4",
                "model_fingerprint": "ok",
                "model_name": "ok",
                "benchmark": "footwear",
                "benchmark_hash": "bh1",
                "data_manifest_hash": "dm1",
            },
            {
                "run_id": "5",
                "model_fingerprint": "ft",
                "model_name": "ft",
                "benchmark": "fmnist",
                "benchmark_hash": "x",
                "data_manifest_hash": "y",
            },  # no baseline run: nothing to say
        ]
    )
    found = run_provenance.provenance_mismatches(runs, "FashionCLIP")
    assert [(m["model"], m["field"]) for m in found] == [
        ("ft", "data_manifest_hash"),
        ("w5", "benchmark_hash"),
    ]
    messages = run_provenance.mismatch_messages(found, "FashionCLIP")
    assert messages[0].startswith("ft vs FashionCLIP on footwear: different data (dm2 vs dm1)")
    assert run_provenance.provenance_mismatches(runs, "FashionCLIP", ["w5"])[0]["model"] == "w5"
    raw = models_frame(
        {"fingerprint": "base", "name": "FashionCLIP", "same_weights_as": ["ok"]},
        {"fingerprint": "base", "name": "ok", "same_weights_as": ["FashionCLIP"]},
    )
    runs.loc[runs["model_name"] == "ok", "model_fingerprint"] = "base"
    table = run_provenance.provenance_table(runs, model_table.model_table(raw))
    assert table.columns[:6].tolist() == [
        "Model",
        "Benchmark",
        "Data manifest",
        "Benchmark hash",
        "Code version",
        "Scored at (UTC)",
    ]
    row = table[table["Model"] == "ok"].iloc[0]
    assert (row["Weights"], row["Same weights as"]) == ("base", "FashionCLIP")


def test_runs_the_verdicts_call_not_comparable_are_never_coloured():
    models, metrics = sample()
    metrics.loc[metrics["model_name"] == "ft", "data_manifest_hash"] = "other"
    columns = table_columns.metric_columns(metrics)
    reason = "scored on different data (data manifest hashes differ)"
    verdicts = judged(metrics, BASE, {("ft", "article_type", "acc@1"): NOT_COMPARABLE}, reason)
    comp = overview.comparison(metrics, models, BASE, columns, verdicts)
    cell = comp.set_index(["model", "column"]).loc[("ft", "Zero-shot accuracy (footwear type)")]
    assert cell["status"] == "not comparable" and cell["reason"] == reason
    assert cell["colour"] == "grey" and cell["marker"] == "n/a"
    _, styler = overview.styled_overview(comp, models, columns)
    assert "80.0  (n/a: not comparable)" in styler.to_html()
    notes = overview.column_notes(comp)
    assert notes["Zero-shot accuracy (footwear type)"] == f"not comparable for ft: {reason}"


# ---------------------------------------------------------------- image path guard


@pytest.fixture()
def roots(tmp_path: Path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"jpg")
    (root / "notes.txt").write_text("not an image")
    (tmp_path / "secret.png").write_bytes(b"png")
    (root / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    return tmp_path, root


def test_image_guard_accepts_files_inside_recorded_roots(roots):
    _, root = roots
    allowed = [root]
    assert images.safe_image_path("images/a.jpg", str(root), allowed) == root / "images" / "a.jpg"
    assert images.safe_image_path(str(root / "images" / "a.jpg"), None, allowed) is not None
    assert images.safe_image_path("images/../images/a.jpg", root, allowed) is not None


def test_image_guard_rejects_escapes_outside_roots_and_non_images(roots):
    tmp, root = roots
    allowed = [root]
    assert images.safe_image_path("../secret.png", root, allowed) is None  # ../ escape
    assert images.safe_image_path("images/../../secret.png", root, allowed) is None
    assert images.safe_image_path(str(tmp / "secret.png"), root, allowed) is None  # absolute
    assert images.safe_image_path("images/link.png", root, allowed) is None  # symlink out
    assert images.safe_image_path("/etc/passwd", root, allowed) is None
    assert images.safe_image_path("notes.txt", root, allowed) is None  # not an image
    assert images.safe_image_path("images/missing.jpg", root, allowed) is None
    assert images.safe_image_path("images/a.jpg", None, allowed) is None  # relative, no root
    assert images.safe_image_path(None, root, allowed) is None
    assert images.safe_image_path(float("nan"), root, allowed) is None
    assert images.safe_image_path("images/a.jpg", root, []) is None  # no recorded root
    assert images.safe_image_path(str(tmp / "secret.png"), "/", ["/"]) is None  # "/" never counts


def test_allowed_roots_come_from_runs(roots):
    tmp, root = roots
    runs = pd.DataFrame(
        {
            "data_root": [str(root), None, "/"],
            "extra": [{}, {"image_roots": [str(tmp / "imgs")]}, None],
        }
    )
    found = images.allowed_roots(runs)
    assert root.resolve() in found and (tmp / "imgs").resolve() in found
    assert Path("/") not in found


# ---------------------------------------------------------------- benchmark, retrieval, training


def test_class_f1_table_and_confusion_grid():
    per_class = pd.DataFrame(
        {
            "run_id": ["r1", "r1", "r2", "r2"],
            "task": ["t"] * 4,
            "class_name": ["Heels", "Flats", "Heels", "Flats"],
            "precision": [0.5] * 4,
            "recall": [0.5] * 4,
            "f1": [0.9, 0.4, 0.8, 0.6],
            "support": [10, 12, 10, 12],
        }
    )
    table = page_tables.class_f1_table(per_class, {"r1": "base", "r2": "ft"})
    assert table.columns.tolist() == ["Class", "Items", "base", "ft"]
    assert table["Class"].tolist() == ["Flats", "Heels"]  # worst of the first model first
    assert table.set_index("Class").loc["Flats", "ft"] == pytest.approx(60.0)
    long = page_tables.class_f1_long(per_class, {"r1": "base", "r2": "ft"})
    assert charts.class_f1_chart(long).to_dict()["mark"]["type"] == "bar"
    cells = pd.DataFrame(
        {"true_label": ["a", "a", "b"], "predicted_label": ["a", "b", "b"], "count": [3, 1, 4]}
    )
    grid = page_tables.confusion_grid(cells, ["a", "b", "c"])
    assert len(grid) == 9
    share = grid.set_index(["true_label", "predicted_label"])["share"]
    assert share[("a", "a")] == pytest.approx(75.0) and share[("c", "c")] == 0.0
    assert page_tables.most_confused(cells)["predicted_label"].tolist() == ["b"]


def test_query_score_matches_the_ir_definitions():
    rows = pd.DataFrame({"rank": range(1, 11), "relevant": [True, False, True] + [False] * 7})
    score = page_tables.query_score(rows)
    assert score["hits"] == 2 and score["k"] == 10
    assert score["by_position"] == pytest.approx(10 * (10 + 8) / 55)
    assert page_tables.query_score(rows.iloc[0:0])["hits"] == 0
    assert page_tables.query_label("t01", "black shoes") == "t01 — black shoes"
    assert page_tables.query_label("i01", "i01") == "i01"


def test_history_long_and_training_summary():
    models, _ = sample()
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [2.0, 1.5],
            "val_loss": [1.9, None],
            "val_accuracy": [0.7, 0.8],
            "lr": [1e-5, 5e-6],
            "seconds": [60, 60],
            "extra": [{}, {}],
        }
    )
    long = training.history_long({"ft": history, "empty": pd.DataFrame()})
    assert set(long["key"]) == {"train_loss", "val_loss", "val_accuracy", "lr"}
    assert len(long) == 7  # the missing validation loss is dropped
    chart = training.history_chart(long, ["train_loss", "val_loss"], "Loss").to_dict()
    assert chart["mark"]["type"] == "line"
    summary = training.training_summary(models).set_index("Model")
    assert summary.loc["ft", "Fine-tuning time"] == "2 min"
    assert summary.loc["ft-wise0.5", "Base model"] == "patrickjohncyh/fashion-clip"


def test_formatting_helpers():
    assert views.fmt_delta(-5.04, False) == "−5.0"
    assert views.fmt_delta(12.0, True) == "+12"
    assert views.fmt_duration(4000) == "67 min" and views.fmt_duration(None) == ""
    assert views.fmt_params(151_277_313) == "151.3 M"
    assert os.sep not in views.short_hash("abcdef0123456789")


def test_query_comparison_side_by_side():
    a = pd.DataFrame({"query_id": ["t01", "t02"], "query_text": ["x", "y"], "n_relevant": [3, 5]})
    b = pd.DataFrame({"query_id": ["t01", "t02"], "query_text": ["x", "y"], "n_relevant": [4, 1]})
    table = page_tables.query_comparison(a, b, "base", "ft")
    assert table.columns.tolist() == ["Id", "Query", "Hits: base", "Hits: ft", "Difference"]
    assert table["Difference"].tolist() == [1, -4]
    assert page_tables.query_comparison(a, a, "base", "base").columns.tolist() == [
        "Id",
        "Query",
        "Hits: base",
    ]


def test_not_applicable_cells_of_precomputed_embeddings():
    """A run of precomputed image embeddings: its skipped text tasks read "n/a" with the
    reason, its kNN accuracy is named as such, and it is never the default baseline."""
    models, metrics = sample()
    vectors = models_frame(
        {"fingerprint": "vec", "name": "prod-vectors", "spec": "/v", "backend": "precomputed"}
    )
    models = model_table.model_table(pd.concat([models, vectors], ignore_index=True))
    extra = pd.DataFrame(
        [
            metric("vec", "footwear", "knn_article_type", "acc@1", 0.9, 0.88, 0.92),
            metric("base", "footwear", "knn_article_type", "acc@1", 0.8, 0.78, 0.82),
        ]
    )
    metrics = pd.concat([metrics, extra], ignore_index=True)
    runs = pd.DataFrame(
        [
            {
                "model_fingerprint": "vec",
                "model_name": "prod-vectors",
                "benchmark": "footwear",
                "extra": {
                    "tasks": {"knn_article_type": {"type": "knn"}},
                    "skipped_tasks": {"article_type": "not applicable: no text encoder"},
                },
            }
        ]
    )
    types = table_columns.task_types(runs)
    columns = table_columns.metric_columns(metrics, task_types=types)
    labels = [c.label for c in columns]
    assert "kNN accuracy (footwear knn article type)" in labels
    assert "Zero-shot accuracy (footwear type)" in labels
    skipped = table_columns.skipped_tasks(runs)
    comp = overview.comparison(metrics, models, BASE, columns, judged(metrics, BASE), skipped)
    cell = comp.set_index(["model", "column"]).loc[
        ("prod-vectors", "Zero-shot accuracy (footwear type)")
    ]
    assert cell["status"] == "not_applicable" and "no text encoder" in cell["reason"]
    table, styler = overview.styled_overview(comp, models, columns)
    assert ">n/a<" in styler.to_html()
    assert pd.isna(
        table.set_index("Model").loc["prod-vectors", "Zero-shot accuracy (footwear type)"]
    )
    notes = overview.column_notes(comp)
    assert notes["Zero-shot accuracy (footwear type)"] == (
        "n/a for prod-vectors: not applicable: no text encoder"
    )
    assert "not_applicable" not in set(overview.csv_table(comp, "FashionCLIP")["verdict"])
    kinds = models.set_index("name")["kind"]
    assert kinds["prod-vectors"] == "precomputed embeddings"
