"""Gain against forgetting: each model's mean change of primary scores on the target
benchmark and elsewhere (:func:`tradeoff_point`), WiSE-FT checkpoints in order of alpha
(:func:`wise_lines`), and the trade-off chart that places them. The summary and the sweep
section use the same numbers, so the text and the charts agree."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evalsuite.labels import benchmark_label
from evalsuite.report.chart_style import axis_limits, legend_label, model_colours, shorten
from evalsuite.report.data import ModelEntry, ReportData
from evalsuite.report.files import save_figure

Point = tuple[float, float]  # (change elsewhere, change on the target), in pts


def _task_changes(data: ReportData, model: ModelEntry, benchmark: str) -> list[float]:
    """Change of the primary score (0..1) of each task scored by both model and baseline."""
    changes = []
    for task, _ in data.tasks[benchmark]:
        _, base = data.primary(data.baseline, benchmark, task)
        _, other = data.primary(model, benchmark, task)
        if base is not None and other is not None and base.metric == other.metric:
            changes.append(other.scaled()[0] - base.scaled()[0])
    return changes


def tradeoff_point(data: ReportData, model: ModelEntry) -> Point | None:
    """(mean change elsewhere, mean change on the target) of primary scores, in points of a
    percentage; elsewhere = the mean of each other benchmark's mean, so that every benchmark
    weighs the same. None when either side cannot be measured."""
    if data.target is None:
        return None
    gains = _task_changes(data, model, data.target)
    others = [
        np.mean(c)
        for b in data.benchmarks
        if b != data.target
        for c in [_task_changes(data, model, b)]
        if c
    ]
    if not gains or not others:
        return None
    return float(np.mean(others)) * 100, float(np.mean(gains)) * 100


def _same_spec(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def _find_spec(
    models: Sequence[ModelEntry], spec: str | None, fingerprint: str | None = None
) -> ModelEntry | None:
    for model in models:
        if (fingerprint and model.fingerprint == fingerprint) or _same_spec(model.spec, spec):
            return model
    return None


def wise_lines(data: ReportData) -> list[list[tuple[ModelEntry, float]]]:
    """WiSE-FT interpolations: per fine-tuned model, [(model, alpha)] sorted by alpha, from
    the zero-shot base (alpha 0) to the fine-tune (alpha 1) when those are in the report."""
    groups: dict[str, list[tuple[ModelEntry, float]]] = {}
    for model in data.models:
        if model.wise:
            key = str(model.wise.get("finetuned_spec") or "")
            groups.setdefault(key, []).append((model, float(model.wise["alpha"])))
    lines = []
    for spec, points in groups.items():
        finetuned = _find_spec(data.models, spec)
        # an end already on the curve (e.g. alpha 0, with the base's weights) is not added twice
        if finetuned is not None and all(m is not finetuned and a != 1.0 for m, a in points):
            points.append((finetuned, 1.0))
        ref = points[0][0]
        base = _find_spec(data.models, ref.base_spec, ref.base_fingerprint)
        if base is None and finetuned is not None:
            base = _find_spec(data.models, finetuned.base_spec, finetuned.base_fingerprint)
        if base is not None and all(m is not base and a != 0.0 for m, a in points):
            points.append((base, 0.0))
        lines.append(sorted(points, key=lambda p: p[1]))
    return lines


def _draw_wise_lines(ax: Any, data: ReportData, points: dict[str, Point | None]) -> None:
    """Each WiSE-FT curve dashed, its inner checkpoints labelled by alpha."""
    for line in wise_lines(data):
        xy = [points[m.name] for m, _ in line if points[m.name] is not None]
        if len(xy) >= 2:
            ax.plot(
                *zip(*xy, strict=True),
                color="#555555",
                lw=1.2,
                ls="--",
                zorder=1,
                label="WiSE-FT (weight interpolation)",
            )
        for model, alpha in line:
            p = points[model.name]
            if p is not None and 0 < alpha < 1:
                ax.annotate(
                    f"α={alpha:g}",
                    p,
                    xytext=(6, -10),
                    textcoords="offset points",
                    fontsize=7,
                    color="#555555",
                )


def _draw_models(ax: Any, data: ReportData, points: dict[str, Point | None]) -> None:
    """One labelled dot per model with a position, the baseline a larger square."""
    colours = model_colours(data.models)
    for model in data.models:
        p = points[model.name]
        if p is None:
            continue
        is_base = model is data.baseline
        ax.scatter(
            *p,
            s=90 if is_base else 60,
            marker="s" if is_base else "o",
            zorder=3,
            color=colours[model.name],
            edgecolor="black",
            linewidth=0.6,
        )
        ax.annotate(
            shorten(legend_label(data, model), 36),
            p,
            xytext=(6, 5),
            textcoords="offset points",
            fontsize=8,
        )


def _axes_and_quadrants(ax: Any, xs: list[float], ys: list[float]) -> None:
    """Limits around every point and the origin, the axes through it, and the quadrants
    shaded: gained on the target at a cost elsewhere (yellow), gained on both (green)."""
    (x0, x1), (y0, y1) = axis_limits(xs), axis_limits(ys)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(0, color="black", lw=0.8)
    if x0 < 0 < y1:
        ax.fill_between([x0, 0], 0, y1, color="#fff3cd", alpha=0.5, zorder=0, lw=0)
    if x1 > 0 and y1 > 0:
        ax.fill_between([0, x1], 0, y1, color="#d4edda", alpha=0.5, zorder=0, lw=0)


def tradeoff_chart(data: ReportData, path: Path) -> bool:
    """Scatter: x = change on the other benchmarks, y = gain on the target, both against the
    baseline (at the origin); WiSE-FT checkpoints joined by a line in order of alpha."""
    points = {m.name: tradeoff_point(data, m) for m in data.models}
    if sum(p is not None for p in points.values()) < 2:
        return False
    fig = Figure(figsize=(7.5, 5.6), layout="constrained")
    ax = fig.add_subplot()
    _draw_wise_lines(ax, data, points)
    _draw_models(ax, data, points)
    shown = [p for p in points.values() if p is not None]
    _axes_and_quadrants(ax, [p[0] for p in shown], [p[1] for p in shown])
    others = [benchmark_label(b) for b in data.benchmarks if b != data.target]
    ax.set_xlabel(
        f"change elsewhere, pts (mean of {', '.join(others)})\n← forgets          better →",
        fontsize=9,
    )
    ax.set_ylabel(
        f"gain on {benchmark_label(data.target or '')}, pts (mean over tasks)\n"
        "← worse          better →",
        fontsize=9,
    )
    ax.set_title(
        f"What fine-tuning gained vs what it cost (against {shorten(data.baseline.name, 30)})",
        fontsize=11,
    )
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles[:1], labels[:1], fontsize=8, loc="lower right")
    save_figure(fig, path)
    return True
