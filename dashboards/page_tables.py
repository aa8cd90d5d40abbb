"""What the benchmark and retrieval pages tabulate: their tasks, per-class F1, confusion
matrices and per-query hits of the runs shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from dashboards.views import task_sort
from evalsuite.labels import is_classification_metric

# ---------------------------------------------------------------- benchmark page


def classification_tasks(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    """(benchmark, task) pairs with classification metrics, in display order."""
    part = metrics[metrics["metric"].map(is_classification_metric)]
    pairs = set(zip(part["benchmark"], part["task"], strict=True))
    return sorted(pairs, key=lambda bt: task_sort(*bt))


def retrieval_tasks(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    part = metrics[~metrics["metric"].map(is_classification_metric)]
    pairs = set(zip(part["benchmark"], part["task"], strict=True))
    return sorted(pairs, key=lambda bt: task_sort(*bt))


def run_of(metrics: pd.DataFrame, name: str, benchmark: str) -> str | None:
    """The run shown for the model called ``name`` on ``benchmark``, or None."""
    part = metrics[(metrics["model_name"] == name) & (metrics["benchmark"] == benchmark)]
    return None if part.empty else str(part["run_id"].iloc[0])


def class_f1_table(class_metrics: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Per-class F1 (percent) side by side: one row per class, one column per model (run),
    plus the number of test items; worst classes of the first model first."""
    if class_metrics.empty:
        return pd.DataFrame(columns=["Class", "Items"])
    frame = class_metrics.assign(
        model=class_metrics["run_id"].map(labels), f1=lambda f: 100.0 * f["f1"]
    )
    wide = frame.pivot_table(index="class_name", columns="model", values="f1", aggfunc="first")
    order = [labels[r] for r in labels if labels[r] in wide.columns]
    wide = wide[order]
    support = frame.groupby("class_name")["support"].max()
    wide.insert(0, "Items", support.reindex(wide.index).astype("Int64"))
    wide = wide.sort_values(order[0]) if order else wide
    return wide.rename_axis(None, axis=1).rename_axis("Class").reset_index()


def class_f1_long(class_metrics: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Long format for a grouped bar chart: Class, Model, F1 (percent), Items."""
    return pd.DataFrame(
        {
            "Class": class_metrics["class_name"],
            "Model": class_metrics["run_id"].map(labels),
            "F1": 100.0 * class_metrics["f1"],
            "Items": class_metrics["support"],
        }
    )


def confusion_grid(cells: pd.DataFrame, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Every (true, predicted) pair with its count and the share of the true class (percent);
    cells the store left out (zero) are filled in."""
    labels = (
        list(classes)
        if classes is not None
        else sorted(set(cells["true_label"]) | set(cells["predicted_label"]))
    )
    full = pd.MultiIndex.from_product([labels, labels], names=["true_label", "predicted_label"])
    counts = (
        cells.groupby(["true_label", "predicted_label"])["count"]
        .sum()
        .reindex(full, fill_value=0)
        .reset_index()
    )
    totals = counts.groupby("true_label")["count"].transform("sum")
    counts["share"] = (100.0 * counts["count"] / totals.where(totals > 0)).fillna(0.0)
    return counts


def most_confused(cells: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    wrong = cells[cells["true_label"] != cells["predicted_label"]]
    return wrong.sort_values("count", ascending=False).head(n).reset_index(drop=True)


# ---------------------------------------------------------------- retrieval page


def query_label(query_id: Any, query_text: Any) -> str:
    text = "" if query_text is None or pd.isna(query_text) else str(query_text)
    return f"{query_id} — {text}" if text and text != str(query_id) else str(query_id)


def query_score(rows: pd.DataFrame, k: int | None = None) -> dict[str, float]:
    """Hits and position-weighted points of one query's ranked list (as the IR scores count
    them: K - r + 1 weights scaled to at most K)."""
    if rows.empty:
        return {"hits": 0, "by_position": 0.0, "k": k or 0}
    k = int(k or rows["rank"].max())
    top = rows[rows["rank"] <= k]
    relevant = top.loc[top["relevant"].astype(bool), "rank"].astype(int)
    weights = k * (k + 1) / 2.0
    return {
        "hits": len(relevant),
        "by_position": float(k * sum(k - r + 1 for r in relevant) / weights),
        "k": k,
    }


def query_comparison(a: pd.DataFrame, b: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    """Per-query relevant hits of two runs side by side (from ``store.queries`` frames)."""
    left = a[["query_id", "query_text", "n_relevant"]].rename(columns={"n_relevant": "a"})
    right = b[["query_id", "n_relevant"]].rename(columns={"n_relevant": "b"})
    both = left.merge(right, on="query_id", how="outer")
    out = pd.DataFrame(
        {"Id": both["query_id"], "Query": both["query_text"], f"Hits: {label_a}": both["a"]}
    )
    if label_a != label_b:
        out[f"Hits: {label_b}"] = both["b"]
        out["Difference"] = both["b"] - both["a"]
    return out
