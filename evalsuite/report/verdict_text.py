"""The verdicts in words: each model's summary paragraph (what it gained on the target, what
it cost elsewhere, the gate's decision) and the "Is the change real?" tables. Every verdict
comes from :mod:`evalsuite.verdicts`; this module only says it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from evalsuite.formatting import is_missing, md
from evalsuite.labels import benchmark_label, metric_label, task_words
from evalsuite.report.data import ModelEntry, ReportData
from evalsuite.report.tables import escape_cell, markdown_table, task_title
from evalsuite.report.tradeoff import tradeoff_point
from evalsuite.verdicts import CORRECTION, NOT_COMPARABLE, MetricVerdict, ModelComparison

VERDICT_TABLE_TAG = "evalsuite-verdicts"  # an HTML comment naming the models of the table


def _change_words(verdict: MetricVerdict) -> str:
    """``▲ +10.10 pts, significantly better``: the change and its verdict in words."""
    words = {
        "better": "significantly better",
        "worse": "significantly worse",
        "tied": "no significant change",
        NOT_COMPARABLE: "not comparable",
    }[verdict.verdict]
    return f"{verdict.marker} {verdict.delta_text}, {words}"


def _phrase(
    data: ReportData, model: ModelEntry, benchmark: str, task: str, named: bool = True
) -> str | None:
    """``article type accuracy 59.66% → 69.76% (▲ +10.10 pts, significantly better)``, the
    benchmark named first when ``named``; None when model or baseline lacks the task."""
    metric = data.primary_metric(benchmark, task)
    verdict = data.verdict(model, benchmark, task, metric) if metric else None
    if verdict is None or is_missing(verdict.baseline) or is_missing(verdict.candidate):
        return None  # one of the two was not scored on it: "Not scored on ..." says so
    what = task_title(data, benchmark, task) if named else task_words(task)
    short = "accuracy" if verdict.metric == "acc@1" else metric_label(verdict.metric)
    before, after = verdict.value_text("baseline"), verdict.value_text("candidate")
    return f"{what} {short} {before} → {after} ({_change_words(verdict)})"


def _changes(
    data: ReportData, model: ModelEntry, benchmarks: Sequence[str], named: bool = True
) -> list[str]:
    """The phrase of every task of ``benchmarks`` scored by both model and baseline."""
    return [
        p for b in benchmarks for t, _ in data.tasks[b] if (p := _phrase(data, model, b, t, named))
    ]


def _not_comparable_sentence(comparison: ModelComparison) -> str | None:
    """``3 gated metrics are not comparable: Fashion-MNIST (scored on different data ...)``."""
    reasons: dict[str, list[str]] = {}
    for v in comparison.verdicts:
        if v.gated and v.verdict == NOT_COMPARABLE:
            tasks = reasons.setdefault(v.reason, [])
            if v.task_text not in tasks:
                tasks.append(v.task_text)
    if not reasons:
        return None
    n = sum(1 for v in comparison.verdicts if v.gated and v.verdict == NOT_COMPARABLE)
    groups = "; ".join(f"{', '.join(tasks)}: {reason}" for reason, tasks in reasons.items())
    are = "metric is" if n == 1 else "metrics are"
    return f"{n} gated {are} not comparable ({groups})."


def _intro(data: ReportData, model: ModelEntry) -> str:
    """``**ft** against **base** (fine-tuned from ...)``: the paragraph's heading line."""
    intro = f"**{md(model.name)}** against **{md(data.baseline.name)}**"
    if model.wise:
        intro += f" (WiSE-FT interpolation, α = {float(model.wise['alpha']):g})"
    elif model.fine_tuned:
        base_spec = model.base_spec
        intro += f" (fine-tuned from {base_spec})" if base_spec else " (fine-tuned)"
    return intro


def _score_sentences(data: ReportData, model: ModelEntry) -> list[str]:
    """The changes on the target, those elsewhere, the benchmarks not scored, and the mean
    change of primary scores on each side."""
    target = data.target if data.target in data.benchmarks else None
    others = [b for b in data.benchmarks if b != target]
    sentences = []
    if target:
        found = _changes(data, model, [target], named=len(data.tasks[target]) == 1)
        if found:
            sentences.append(
                f"On {benchmark_label(target)}, the target benchmark: " + "; ".join(found) + "."
            )
        else:
            sentences.append(
                f"Not comparable on {benchmark_label(target)}, the target "
                "benchmark (one of the two models was not scored on it)."
            )
    found = _changes(data, model, others)
    if found:
        lead = "What fine-tuning cost elsewhere" if model.fine_tuned else "Elsewhere"
        sentences.append(f"{lead}: " + "; ".join(found) + ".")
    missing = [
        benchmark_label(b)
        for b in data.benchmarks
        if data.run_of(model, b) is None and data.run_of(data.baseline, b) is not None
    ]
    if missing:
        sentences.append(f"Not scored on {', '.join(missing)}.")
    point = tradeoff_point(data, model)
    if point is not None:
        sentences.append(
            f"On average over the tasks' primary scores: {point[1]:+.2f} pts on "
            f"{benchmark_label(target or '')} and {point[0]:+.2f} pts elsewhere."
        )
    return sentences


def _gate_sentences(comparison: ModelComparison) -> list[str]:
    """The significant changes, the gated metrics not comparable and the gate's decision."""
    sentences = [
        f"Significant changes (paired tests, {CORRECTION}-corrected): {comparison.summary_line()}."
    ]
    not_comparable = _not_comparable_sentence(comparison)
    if not_comparable:
        sentences.append(not_comparable)
    verdict, _, why = comparison.gate_line().partition(": ")
    sentences.append(f"CI gate (`evalsuite compare`): **{verdict}**, {md(why)}.")
    return sentences


def summary_paragraph(data: ReportData, model: ModelEntry) -> str:
    """What ``model`` gained on the target and what it cost elsewhere, every significant
    change (all losses named) and the gate's decision, in plain words: a heading line and
    one bullet each, so that a reader finds the gate's decision without reading it all."""
    sentences = _score_sentences(data, model)
    comparison = data.comparisons.get(model.name)
    if comparison is not None:
        sentences += _gate_sentences(comparison)
    lines = [f"{_intro(data, model)}:", "", *(f"- {sentence}" for sentence in sentences)]
    if comparison is not None:
        lines += [f"  - Regression: {v.sentence()}." for v in comparison.regressions]
    return "\n".join(lines)


def _verdict_text(verdict: MetricVerdict) -> str:
    """``▼ worse, regression``; ``n/a not comparable: scored on different data``."""
    text = f"{verdict.marker} {verdict.verdict}"
    if verdict.regression:
        return f"{text}, **regression**"
    return f"{text}: {verdict.reason}" if verdict.reason else text


def _report_order(data: ReportData, verdict: MetricVerdict) -> tuple[int, int, int]:
    """Benchmarks, tasks and metrics in the order of the report's tables."""
    benchmark, task, metric = verdict.benchmark, verdict.task, verdict.metric
    tasks = [t for t, _ in data.tasks.get(benchmark, [])]
    metrics = data.metrics_of(benchmark, task) if task in tasks else []
    return (
        data.benchmarks.index(benchmark) if benchmark in data.benchmarks else len(data.benchmarks),
        tasks.index(task) if task in tasks else len(tasks),
        metrics.index(metric) if metric in metrics else len(metrics),
    )


def verdict_table(data: ReportData, model: ModelEntry, comparison: ModelComparison) -> list[str]:
    """The "Is the change real?" table of one model: each gated metric's values, change, paired 95%
    interval of the change, adjusted p-value (Benjamini-Hochberg), minimal detectable difference and
    verdict; the ``Key`` column is the metric as ``--tolerance`` names it."""
    header = [
        "Task", "Metric", f"{md(data.baseline.name)} (baseline)", md(model.name), "Change",
        "95% CI of the change", "p (adjusted)", "Detectable", "Verdict", "Key",
    ]  # fmt: skip
    rows = []
    gated = [v for v in comparison.verdicts if v.gated]
    for v in sorted(gated, key=lambda v: _report_order(data, v)):
        rows.append(
            [
                escape_cell(task_title(data, v.benchmark, v.task)),
                escape_cell(metric_label(v.metric, v.task_type)),
                v.value_text("baseline"),
                v.value_text("candidate"),
                v.delta_text,
                v.interval_text,
                v.p_adjusted_text,
                v.mdd_text,
                escape_cell(_verdict_text(v)),
                f"`{escape_cell(f'{v.benchmark}/{v.task}/{v.metric}')}`",
            ]
        )
    # machine-readable names (display names may be shortened or made unique)
    tag = json.dumps({"baseline": comparison.baseline, "candidate": comparison.candidate})
    tag = tag.replace("--", "-\\u002d")  # "--" may not appear inside an HTML comment
    return [
        f"### {md(model.name)} against {md(data.baseline.name)}",
        "",
        f"<!-- {VERDICT_TABLE_TAG} {tag} -->",
        "",
        markdown_table(header, rows, "llrrrrrrll"),
        "",
        f"{comparison.method_note()}.",
    ]


HOW_TO_READ = (
    "How to read these tables: the change is the model's score minus the baseline's on "
    "the same items (or search queries). Both models are re-scored together on thousands "
    "of random re-draws of those items (a paired bootstrap): the 95% CI is the range the "
    "true change most likely lies in. p is the chance of a change at least this large if "
    "the two models were really equally good (for accuracy, from the exact McNemar test "
    "on the items only one of the two models gets right). Because many metrics are tested "
    f"at once, p is corrected ({CORRECTION}'s method), so a model that changed nothing "
    "fails the gate at most 5% of the time. A change is better (▲) or worse (▼) when its "
    "corrected p is at most 0.05, otherwise tied (≈); a worse gated metric is a "
    "regression and fails `evalsuite compare`. Detectable: the smallest change the "
    "benchmark catches 4 times out of 5; a tie with a large detectable change means the "
    "benchmark is too small to tell, not that nothing changed."
)


def verdict_section(data: ReportData) -> list[str]:
    """``## Is the change real?``: the verdict table of each model compared, then how to
    read them; nothing when no model was compared."""
    tables = [
        verdict_table(data, model, data.comparisons[model.name])
        for model in data.models[1:]
        if model.name in data.comparisons
    ]
    if not tables:
        return []
    lines = ["## Is the change real?", ""]
    for table in tables:
        lines += [*table, ""]
    return [*lines, HOW_TO_READ, ""]
