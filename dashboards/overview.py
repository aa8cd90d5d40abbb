"""The overview's table, summary lines, rank bands and trade-off points, as pure functions.

Every verdict shown here (better / worse / tied / not comparable, its marker and colour) is
read from ``evalsuite.verdicts``: one :class:`ModelComparison` per model against the
baseline, computed by ``dashboards/leaderboard.py``. This module only lays the verdicts out;
it never decides whether a difference is real.

Units as in ``dashboards.views``: rates are shown in percent (changes in points), counts as
counts out of their maximum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dashboards.table_columns import Column
from dashboards.views import (
    _fmt_max,
    fmt_delta,
    fmt_duration,
    fmt_number,
    fmt_params,
    is_count,
    points,
    shown,
)
from dashboards.wise_curves import wise_curves
from evalsuite.formatting import md
from evalsuite.verdicts import BETTER, NOT_COMPARABLE, TIED, WORSE, MetricVerdict, ModelComparison
from evalsuite.verdicts.core import COLOURS, MARKERS

VERDICTS = (BETTER, WORSE, TIED, NOT_COMPARABLE)
# Cell states that are not verdicts: the baseline itself, no value, a task the run skipped,
# and a value the baseline has nothing to compare with.
BASELINE, MISSING, NOT_APPLICABLE, NO_BASELINE = "baseline", "missing", "not_applicable", "none"
CELL_CSS = {  # by the verdict's colour, or by a state that is not a verdict
    "green": "background-color: #d9f2df; color: #0f5132",
    "red": "background-color: #f8d7da; color: #842029",
    "grey": "color: #8a8f98",
    BASELINE: "background-color: #eef1f5",
    NOT_APPLICABLE: "color: #8a8f98; font-style: italic",
}
LEGEND = (
    "▲ significantly better, ▼ significantly worse (paired test, Benjamini-Hochberg-corrected), "
    "≈ no significant difference; n/a not comparable"
)
NO_VERDICT = "no paired verdict was computed for this metric"
Comparisons = Mapping[str, "ModelComparison | str"]  # model name -> comparison or why none


def verdict_lookup(comparisons: Comparisons) -> dict[tuple[str, str, str, str], MetricVerdict]:
    """(candidate name, benchmark, task, metric) -> its verdict."""
    return {
        (name, v.benchmark, v.task, v.metric): v
        for name, comp in comparisons.items()
        if isinstance(comp, ModelComparison)
        for v in comp.verdicts
    }


def _lookup(metrics: pd.DataFrame) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {
        (r["model_name"], r["benchmark"], r["task"], r["metric"]): r
        for r in metrics.to_dict("records")
    }


def _judged(verdict: MetricVerdict | None, failure: str | None, count: bool) -> dict[str, Any]:
    """The columns a verdict fills in a cell's row; a missing verdict is "not comparable"
    (with why), never a colour of its own."""
    if verdict is None:
        reason = failure or NO_VERDICT
        return {"status": NOT_COMPARABLE, "marker": MARKERS[NOT_COMPARABLE],
                "colour": COLOURS[NOT_COMPARABLE], "reason": reason}  # fmt: skip
    scale = 1.0 if count else 100.0  # the change's interval in the cell's units
    return {
        "status": verdict.verdict,
        "marker": verdict.marker,
        "colour": verdict.colour,
        "reason": verdict.reason,
        "change_ci_low": scale * verdict.ci_low,
        "change_ci_high": scale * verdict.ci_high,
        "p_value": verdict.p_value,
        "p_adjusted": verdict.p_adjusted,
        "mdd": verdict.mdd,
        "mdd_text": verdict.mdd_text,
        "sentence": verdict.sentence(),
    }


def comparison(
    metrics: pd.DataFrame,
    models: pd.DataFrame,
    baseline: str | None,
    columns: Sequence[Column],
    comparisons: Comparisons,
    not_applicable: Mapping[tuple[str, str, str], str] | None = None,
) -> pd.DataFrame:
    """Tidy comparison: one row per (model, column) with the value, the change against the
    baseline (a model name) and the verdict of that change from ``comparisons`` (by name).
    ``model`` is the model's name, ``fingerprint`` the weights it was scored with.

    ``status`` is a verdict ("better", "worse", "tied", "not comparable", with ``marker``,
    ``colour`` and ``reason`` from the verdict), or "baseline", "missing" (no value),
    "not_applicable" (the run recorded why the task does not apply to it, in ``reason``) or
    "none" (no baseline chosen, or the baseline has no value to compare with).
    """
    look, judged = _lookup(metrics), verdict_lookup(comparisons)
    rows = []
    for model in models.to_dict("records"):
        name = model["name"]
        failure = comparisons.get(name) if isinstance(comparisons.get(name), str) else None
        for col in columns:
            cand = look.get((name, *col.key))
            row = {"model": name, "fingerprint": model["fingerprint"], "kind": model["kind"],
                   "column": col.label, "benchmark": col.benchmark, "task": col.task,
                   "metric": col.metric, "count": col.count}  # fmt: skip
            reason = (not_applicable or {}).get((name, col.benchmark, col.task))
            if cand is None:
                status = NOT_APPLICABLE if reason else MISSING
                rows.append({**row, "status": status, "reason": reason})
                continue
            maximum = cand.get("maximum")
            row.update(value=shown(cand["value"], maximum), raw_value=cand["value"],
                       maximum=maximum, points=points(cand["value"], maximum),
                       run_id=cand.get("run_id"))  # fmt: skip
            base = look.get((baseline, *col.key)) if baseline else None
            if name == baseline:
                rows.append({**row, "status": BASELINE, "delta": 0.0, "delta_points": 0.0})
            elif base is None:
                rows.append({**row, "status": NO_BASELINE})
            else:
                rows.append({
                    **row,
                    "baseline_value": shown(base["value"], base.get("maximum")),
                    "delta": row["value"] - shown(base["value"], base.get("maximum")),
                    "delta_points": row["points"] - points(base["value"], base.get("maximum")),
                    **_judged(judged.get((name, *col.key)), failure, is_count(maximum)),
                })  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)


COMPARISON_COLUMNS = [
    "model", "fingerprint", "kind", "column", "benchmark", "task", "metric", "count", "value",
    "raw_value", "maximum", "points", "baseline_value", "delta", "delta_points", "status",
    "marker", "colour", "reason", "change_ci_low", "change_ci_high", "p_value", "p_adjusted",
    "mdd", "mdd_text", "sentence", "run_id",
]  # fmt: skip


def cell_text(row: Mapping[str, Any], column: Column) -> str:
    """ "79.9  (▲ +10.1)", "70.2  (≈ −0.3)", "75.0  (n/a: not comparable)"; the value alone
    for the baseline; "n/a" for a task the run skipped; "–" without a value."""
    status = row.get("status")
    if status == NOT_APPLICABLE:
        return "n/a"
    if status == MISSING or pd.isna(row.get("value")):
        return "–"
    text = fmt_number(row["value"], column.count)
    if column.count and column.maximum is None and is_count(row.get("maximum")):
        text = f"{text} / {_fmt_max(row['maximum'])}"
    if status == NOT_COMPARABLE:
        return f"{text}  ({row['marker']}: not comparable)"
    if status in VERDICTS:
        return f"{text}  ({row['marker']} {fmt_delta(row['delta'], column.count)})"
    return text


def column_notes(comp: pd.DataFrame) -> dict[str, str]:
    """Column label -> why some of its cells have no verdict (a task the run skipped, runs
    that are not comparable): the column title's tooltip."""
    rows = comp[comp["status"].isin([NOT_APPLICABLE, NOT_COMPARABLE])]
    notes: dict[str, list[str]] = {}
    for row in rows.to_dict("records"):
        what = "n/a" if row["status"] == NOT_APPLICABLE else "not comparable"
        line = f"{what} for {md(row['model'])}: {row['reason']}"  # a Markdown tooltip
        if line not in notes.setdefault(row["column"], []):
            notes[row["column"]].append(line)
    return {column: "\n\n".join(lines) for column, lines in notes.items()}


COST_COLUMNS = ("Fine-tuning time", "Parameters")


def delta_name(column: Column) -> str:
    return f"Δ {column.label}"


def overview_frame(
    comp: pd.DataFrame, models: pd.DataFrame, columns: Sequence[Column]
) -> pd.DataFrame:
    """Wide numeric frame behind the overview: Model, Type, one column per metric (displayed
    units), one hidden "Δ <metric>" column per metric, then the cost columns."""
    table = pd.DataFrame({"Model": models["name"], "Type": models["kind"]})
    for field, name in (("value", lambda c: c.label), ("delta", delta_name)):
        for col in columns:
            part = comp[comp["column"] == col.label].set_index("model")
            table[name(col)] = table["Model"].map(part[field]).astype(float)
    table[COST_COLUMNS[0]] = [fmt_duration(s) for s in models["train_seconds"]]
    table[COST_COLUMNS[1]] = [fmt_params(p) for p in models["parameter_count"]]
    return table.reset_index(drop=True)


def _css(row: Mapping[str, Any]) -> str:
    status = row.get("status")
    if status in VERDICTS:
        return CELL_CSS[row["colour"]]
    return CELL_CSS.get(status or "", "")


def styled_overview(
    comp: pd.DataFrame, models: pd.DataFrame, columns: Sequence[Column]
) -> tuple[pd.DataFrame, Any]:
    """(numeric frame, pandas Styler showing "value (marker change)" in the verdict's colour).

    Sorting the table sorts by the numbers; the Styler only changes what the cells show.
    """
    table = overview_frame(comp, models, columns)
    styler = table.style
    records = {(r["model"], r["column"]): r for r in comp.to_dict("records")}
    css = pd.DataFrame("", index=table.index, columns=table.columns)
    for i, model in enumerate(table["Model"]):
        for col in columns:
            row = records.get((model, col.label), {"status": MISSING})
            text = cell_text(row, col)
            styler = styler.format(lambda _v, text=text: text, subset=([i], [col.label]))
            css.loc[i, col.label] = _css(row)
    for col in columns:
        styler = styler.format(
            lambda v, count=col.count: fmt_delta(v, count), subset=[delta_name(col)]
        )
    return table, styler.apply(lambda _frame: css, axis=None)


def csv_table(comp: pd.DataFrame, baseline_label: str | None) -> pd.DataFrame:
    """Plain table for the CSV download: one row per model and metric, raw numbers, and the
    verdict of the change with its paired interval, p-values and detectable difference."""
    out = comp[~comp["status"].isin([MISSING, NOT_APPLICABLE])].copy()
    out = out.rename(columns={"column": "metric_label", "status": "verdict"})
    out["baseline"] = baseline_label
    out["verdict"] = out["verdict"].replace({NO_BASELINE: "", BASELINE: "baseline"})
    keep = [
        "model", "kind", "benchmark", "task", "metric", "metric_label", "raw_value", "maximum",
        "value", "baseline", "baseline_value", "delta", "change_ci_low", "change_ci_high",
        "p_value", "p_adjusted", "mdd", "verdict", "reason", "run_id",
    ]  # fmt: skip
    return out[keep].rename(columns={"raw_value": "stored_value", "value": "shown_value"})


# ---------------------------------------------------------------- summary lines


def _not_comparable_tasks(comp: ModelComparison) -> list[str]:
    tasks = {v.task_text: v.reason for v in comp.verdicts if v.verdict == NOT_COMPARABLE}
    return [f"{task} ({reason})" for task, reason in tasks.items()]


def summary_lines(comparisons: Comparisons, limit: int | None = 3) -> list[str]:
    """One line per compared model from ``ModelComparison.summary_line()``: every significant
    loss and the strongest ``limit`` gains of each task, whatever columns the table shows;
    then the tasks whose runs cannot be compared."""
    lines = []
    for name, comp in comparisons.items():
        if not isinstance(comp, ModelComparison):
            lines.append(f"**{md(name)}**: not comparable ({md(comp)})")
            continue
        text = comp.summary_line(limit)
        missing = _not_comparable_tasks(comp)
        if missing:
            text += "; not comparable on " + "; ".join(missing)
        lines.append(f"**{md(name)}**: {md(text)}")
    return lines


def method_notes(comparisons: Comparisons) -> list[str]:
    """How the verdicts were reached (number of comparisons, the correction): one note when every
    comparison has the same, else one per model."""
    notes = {n: c.method_note() for n, c in comparisons.items() if isinstance(c, ModelComparison)}
    if len(set(notes.values())) <= 1:
        return list(dict.fromkeys(notes.values()))
    return [f"{md(name)}: {note}" for name, note in notes.items()]


# ---------------------------------------------------------------- rank bands


def rank_table(
    bands: pd.DataFrame,
    target: tuple[str, str, str],
    comparisons: Comparisons,
    count: bool,
) -> pd.DataFrame:
    """Ranks on the target metric from ``evalsuite.verdicts.rank_bands``: models not
    significantly different from a band's best share its rank ("statistically tied"); beside
    each, the smallest change its comparison with the baseline could detect.

    Columns: Rank, Model, Score (displayed units), Band, Detectable difference.
    """
    judged = verdict_lookup(comparisons)
    sizes = bands["band"].value_counts()
    rows = []
    for row in bands.to_dict("records"):
        band = row["band"]
        if band is None or pd.isna(band):
            band_text = f"not comparable ({row['note']})"
        else:
            band_text = "statistically tied" if sizes[band] > 1 else ""
        verdict = judged.get((row["model_name"], *target))
        rows.append({
            "Rank": None if band is None or pd.isna(band) else int(band),
            "Model": row["model_name"],
            "Score": shown(row["value"], 1.0 if count else None),
            "Band": band_text,
            "Detectable difference": verdict.mdd_text if verdict else "",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["Rank", "Model", "Score", "Band", "Detectable difference"])


# ---------------------------------------------------------------- trade-off


def tradeoff_points(
    comp: pd.DataFrame,
    models: pd.DataFrame,
    target: tuple[str, str, str] | None,
    general: Sequence[tuple[str, str, str]],
) -> pd.DataFrame:
    """One point per model: gain on the target metric (pts of the maximum, vs the baseline)
    against the change on the general benchmarks (mean of those both runs have). A change is
    a position on the chart, not a verdict: ``comparable`` is False when a verdict said the
    runs cannot be compared.

    Columns: model, fingerprint, kind, target_gain, general_change, n_general, curve, alpha,
    comparable. Models without the target or any general benchmark are left out.
    """
    columns = ["model", "fingerprint", "kind", "target_gain", "general_change", "n_general",
               "curve", "alpha", "comparable"]  # fmt: skip
    if comp.empty or target is None or not general:
        return pd.DataFrame(columns=columns)
    usable = comp[comp["status"].isin([BASELINE, *VERDICTS])]
    key = list(zip(usable["benchmark"], usable["task"], usable["metric"], strict=True))
    usable = usable.assign(key=key)
    rows = []
    for model in models.to_dict("records"):
        mine = usable[usable["model"] == model["name"]]
        tgt = mine[mine["key"].isin([tuple(target)])]
        gen = mine[mine["key"].isin([tuple(g) for g in general])]
        if tgt.empty or gen.empty:
            continue
        rows.append({
            "model": model["name"], "fingerprint": model["fingerprint"], "kind": model["kind"],
            "target_gain": float(tgt["delta_points"].iloc[0]),
            "general_change": float(gen["delta_points"].mean()), "n_general": len(gen),
            "curve": None, "alpha": math.nan,
            "comparable": bool((pd.concat([tgt, gen])["status"] != NOT_COMPARABLE).all()),
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=columns)
    curves = wise_curves(models).rename(columns={"name": "model"})
    lines = curves.merge(out.drop(columns=["curve", "alpha"]), on="model")
    return pd.concat([out, lines[columns]], ignore_index=True) if not lines.empty else out
