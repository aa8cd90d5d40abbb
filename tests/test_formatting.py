"""How metric values, intervals and changes print (shared by the CLI, report, leaderboard)."""

from __future__ import annotations

import pytest

from evalsuite.formatting import format_delta, format_interval, format_value, is_fraction
from evalsuite.labels import (
    METRIC_LABELS,
    benchmark_label,
    headline_metrics,
    metric_label,
    task_kind,
)


@pytest.mark.parametrize(
    ("metric", "value", "maximum", "expected"),
    [
        ("acc@1", 0.6976, None, "69.76%"),
        ("acc@5", 1.0, None, "100.00%"),
        ("balanced_accuracy", 0.5, None, "50.00%"),
        ("f1_macro", 0.01234, None, "1.23%"),
        ("f1_weighted", 0.0, None, "0.00%"),
        ("P@10", 0.35, None, "35.00%"),
        ("Recall@10", 0.875, None, "87.50%"),
        ("recall@10", 0.875, None, "87.50%"),  # names are case-insensitive
        ("MRR", 0.6123, None, "61.23%"),
        ("NDCG@10", 0.5, None, "50.00%"),
        ("MAP@10", 0.25, None, "25.00%"),
        ("pretest", 5622.0, 4420.0, "5622 / 4420"),
        ("ir_hits", 274.0, 390.0, "274 / 390"),
        ("ir_hits", 274.0, 390.00000001, "274 / 390"),  # integral-ish maximum
        ("ir_by_position", 127.0, 390.0, "127 / 390"),
        ("ir_by_position", 127.02, 390.0, "127 / 390"),  # within 0.05 of a whole number
        ("ir_by_position", 127.36, 390.0, "127.4 / 390"),
        ("ir_by_position", 127.36, 97.5, "127.4 / 97.5"),
        ("pretest", 27.0, None, "27"),  # points without a stored maximum
        ("seconds", 12.3456, None, "12.35"),  # unknown metric: plain number
        ("acc@1", None, None, "—"),
        ("acc@1", float("nan"), None, "—"),
        ("ir_hits", float("nan"), 390.0, "—"),
        ("pretest", 10.0, float("nan"), "10"),  # NaN maximum = no maximum (database NULL)
    ],
)
def test_format_value(metric: str, value: float, maximum: float | None, expected: str) -> None:
    assert format_value(metric, value, maximum) == expected


@pytest.mark.parametrize(
    ("metric", "low", "high", "maximum", "expected"),
    [
        ("acc@1", 0.66894, 0.72612, None, "[66.9, 72.6]"),
        ("MRR", 0.5, 0.55, None, "[50.0, 55.0]"),
        ("ir_hits", 251.6, 296.2, 390.0, "[252, 296]"),
        ("pretest", 6148.95, 6615.05, 22215.0, "[6149, 6615]"),
        ("acc@1", None, 0.7, None, ""),
        ("acc@1", float("nan"), float("nan"), None, ""),
    ],
)
def test_format_interval(
    metric: str, low: float, high: float, maximum: float | None, expected: str
) -> None:
    assert format_interval(metric, low, high, maximum) == expected


@pytest.mark.parametrize(
    ("metric", "delta", "maximum", "expected"),
    [
        ("acc@1", 0.101, None, "+10.10 pts"),
        ("f1_macro", -0.0625, None, "-6.25 pts"),
        ("acc@1", 0.00001, None, "0.00 pts"),  # rounds to nothing: no sign
        ("acc@1", -0.00001, None, "0.00 pts"),
        ("pretest", 27.0, 4420.0, "+27"),
        ("ir_hits", -3.0, 390.0, "-3"),
        ("ir_by_position", 24.2, 390.0, "+24.2"),
        ("ir_hits", 0.0, 390.0, "0"),
        ("acc@1", None, None, "—"),
        ("acc@1", float("nan"), None, "—"),
    ],
)
def test_format_delta(metric: str, delta: float, maximum: float | None, expected: str) -> None:
    assert format_delta(metric, delta, maximum) == expected


def test_labels() -> None:
    assert METRIC_LABELS["acc@1"] == "Zero-shot accuracy"
    assert METRIC_LABELS["pretest"] == "Pretest score"
    assert METRIC_LABELS["ir_hits"] == "IR score (hits)"
    assert METRIC_LABELS["ir_by_position"] == "IR score by position"
    assert metric_label("recall@10") == "Recall@10"
    assert metric_label("acc@7") == "Top-7 accuracy"
    assert metric_label("NDCG@5") == "NDCG@5"
    assert metric_label("P@3") == "Precision@3"
    assert metric_label("something_new") == "something_new"
    assert benchmark_label("fmnist") == "Fashion-MNIST"
    assert benchmark_label("demo-shoes") == "demo-shoes"


def test_fraction_detection() -> None:
    for name in (
        "acc@1",
        "acc@5",
        "balanced_accuracy",
        "f1_macro",
        "f1_weighted",
        "P@1",
        "Recall@5",
        "MRR",
        "mrr",
        "NDCG@10",
        "MAP@10",
    ):
        assert is_fraction(name), name
    for name in ("pretest", "ir_hits", "ir_by_position", "seconds", "n_queries"):
        assert not is_fraction(name), name


def test_headline_metrics() -> None:
    pairs = headline_metrics()
    assert ("zeroshot", "acc@1") in pairs and ("zeroshot", "pretest") in pairs
    assert ("zeroshot", "f1_macro") in pairs and ("zeroshot", "f1_weighted") in pairs
    assert {"ir_hits", "ir_by_position", "MRR", "Recall@10"} == {
        m for kind, m in pairs if kind == "retrieval"
    }
    assert headline_metrics("text_to_image") == headline_metrics("retrieval")
    assert headline_metrics("image_to_image") == headline_metrics("retrieval")
    assert [m for _, m in headline_metrics("zeroshot")] == [
        "acc@1",
        "f1_macro",
        "f1_weighted",
        "pretest",
    ]
    assert task_kind(["acc@1", "pretest"]) == "zeroshot"
    assert task_kind(["ir_hits", "MRR"]) == "retrieval"
    assert task_kind(["seconds"]) is None
