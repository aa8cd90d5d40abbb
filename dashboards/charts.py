"""The leaderboard's Altair charts: the gain/forgetting trade-off, per-class F1 and
confusion matrices (Altair is imported when a chart is drawn: the pure modules stay light)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _curve_layers(curves: pd.DataFrame, x: Any, y: Any, tooltip: list) -> list:
    """Dashed zero lines (the baseline), then each WiSE-FT curve with its alphas labelled."""
    import altair as alt

    zero = pd.DataFrame({"v": [0.0]})
    layers = [
        alt.Chart(zero).mark_rule(color="#9aa0a6", strokeDash=[4, 4]).encode(x="v:Q"),
        alt.Chart(zero).mark_rule(color="#9aa0a6", strokeDash=[4, 4]).encode(y="v:Q"),
    ]
    if not curves.empty:
        layers.append(
            alt.Chart(curves)
            .mark_line(point=True, strokeWidth=2)
            .encode(
                x=x,
                y=y,
                color=alt.Color("curve:N", title="WiSE-FT curve"),
                order="alpha:Q",
                tooltip=[*tooltip, alt.Tooltip("alpha:Q", title="α")],
            )
        )
        labels = curves.assign(text=curves["alpha"].map(lambda a: f"α={a:g}"))
        layers.append(
            alt.Chart(labels)
            .mark_text(dy=-10, fontSize=11, color="#555")
            .encode(x=x, y=y, text="text:N")
        )
    return layers


def tradeoff_chart(
    points_frame: pd.DataFrame, target_title: str, general_title: str, colour_title: str = ""
):
    """Gain on the target (y) against change on the general benchmarks (x), one point per
    model, WiSE-FT alphas of one fine-tune joined as a line; zero lines mark the baseline.
    A ``colour`` column (e.g. a hyper-parameter's value, titled ``colour_title``) colours
    the points."""
    import altair as alt

    singles = points_frame[points_frame["curve"].isna()]
    curves = points_frame[points_frame["curve"].notna()]
    x = alt.X(
        "general_change:Q",
        title=f"Change on {general_title} (pts vs baseline)",
        scale=alt.Scale(zero=False, padding=20),
    )
    y = alt.Y(
        "target_gain:Q",
        title=f"Gain on {target_title} (pts vs baseline)",
        scale=alt.Scale(zero=False, padding=20),
    )
    tooltip = [
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("kind:N", title="Type"),
        alt.Tooltip("target_gain:Q", title="Target gain (pts)", format="+.1f"),
        alt.Tooltip("general_change:Q", title="General change (pts)", format="+.1f"),
    ]
    layers = _curve_layers(curves, x, y, tooltip)
    layers.append(
        alt.Chart(singles)
        .mark_circle(size=140)
        .encode(
            x=x,
            y=y,
            shape=alt.Shape("kind:N", title="Type"),
            color=alt.Color("colour:N", title=colour_title)
            if "colour" in singles
            else alt.value("#1f6feb"),
            tooltip=[*tooltip, alt.Tooltip("colour:N", title=colour_title)]
            if "colour" in singles
            else tooltip,
        )
    )
    layers.append(
        alt.Chart(singles)
        .mark_text(align="left", dx=9, dy=4, fontSize=12)
        .encode(x=x, y=y, text="model:N")
    )
    return alt.layer(*layers).properties(height=420)


def class_f1_chart(long: pd.DataFrame):
    """Grouped horizontal bars: per-class F1 of each selected model."""
    import altair as alt

    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("Class:N", sort="ascending", title=None),
            yOffset="Model:N",
            x=alt.X("F1:Q", title="F1 (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("Model:N", legend=alt.Legend(orient="top")),
            tooltip=["Class", "Model", alt.Tooltip("F1:Q", format=".1f"), "Items"],
        )
        .properties(height=alt.Step(14))
    )


def confusion_chart(grid: pd.DataFrame):
    """Heatmap of a confusion matrix: share of each true class (row) per predicted class."""
    import altair as alt

    base = alt.Chart(grid).encode(
        x=alt.X("predicted_label:N", title="Predicted", axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("true_label:N", title="True class"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("share:Q", title="% of class", scale=alt.Scale(scheme="blues")),
        tooltip=[
            alt.Tooltip("true_label:N", title="True"),
            alt.Tooltip("predicted_label:N", title="Predicted"),
            "count:Q",
            alt.Tooltip("share:Q", title="% of class", format=".1f"),
        ],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.condition("datum.count > 0", "count:Q", alt.value("")),
        color=alt.condition("datum.share > 50", alt.value("white"), alt.value("black")),
    )
    n = max(grid["true_label"].nunique(), 1)
    return (rect + text).properties(height=min(60 + 28 * n, 900))
