"""The seed's results table: the rows stakeholders judge a fine-tune by, one column per model.

The rows are data (``benchmarks/seed_table.yaml``): each names its label, a one-line
explanation, the benchmark / task / metric it reads, and optionally the demo benchmark that
stands in for it when the real one has no run. After them come every other headline metric
scored (the first primary metric of each zero-shot and retrieval task).

:func:`build_seed_table` is pure: the latest metrics frame (``store.latest_metrics``), the
model names (baseline first), the comparisons of ``evalsuite.verdicts`` (one
:class:`ModelComparison` per candidate, or why there is none) and why each missing benchmark
has no run. Every change, marker and p-value is taken from the comparisons, never computed
here. :func:`load_seed_rows` and :func:`missing_benchmark_reasons` read YAML files;
``evalsuite.seed_formats`` writes the table as Markdown, CSV, JSON or a rich table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evalsuite.errors import EvalSuiteError, SpecError
from evalsuite.formatting import MISSING, format_value, is_missing
from evalsuite.labels import PRIMARY_METRICS, TASK_KINDS, metric_label, task_kind, task_words
from evalsuite.spec import DEFAULT_BENCHMARKS_DIR, load_benchmark
from evalsuite.verdicts import NOT_COMPARABLE, MetricVerdict, ModelComparison

SEED_ROWS_FILE = DEFAULT_BENCHMARKS_DIR / "seed_table.yaml"
NOT_SCORED = "not scored"
STAND_IN = "demo stand-in"
Key = tuple[str, str, str]  # benchmark, task, metric


@dataclass(frozen=True)
class StandIn:
    benchmark: str
    task: str
    metric: str
    note: str


@dataclass(frozen=True)
class RowDef:
    """One row of ``seed_table.yaml``."""

    label: str
    explain: str
    benchmark: str
    task: str
    metric: str
    stand_in: StandIn | None = None

    @property
    def key(self) -> Key:
        return (self.benchmark, self.task, self.metric)


@dataclass(frozen=True)
class SeedDefinition:
    rows: tuple[RowDef, ...]
    metrics: Mapping[str, str]  # metric -> one-line explanation (the other headline rows)


@dataclass(frozen=True)
class SeedCell:
    """One model's value on one row; for a candidate, its change against the baseline."""

    model: str
    value: float | None
    maximum: float | None
    text: str  # "274 / 390", "69.50%", "—", "not scored"
    delta: float | None = None
    delta_text: str = ""  # "▲ +25.38 pts", "n/a"; empty for the baseline
    verdict: str | None = None  # better / worse / tied / not comparable
    p_adjusted: float | None = None
    reason: str = ""  # why not comparable

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value, "maximum": self.maximum, "text": self.text,
            "delta": self.delta, "delta_text": self.delta_text, "verdict": self.verdict,
            "p_adjusted": self.p_adjusted, "reason": self.reason,
        }  # fmt: skip


@dataclass(frozen=True)
class SeedRow:
    label: str  # as shown: the seed's words, "(demo stand-in)" when one was used
    explain: str
    benchmark: str  # what the row was read from (the stand-in's when one was used)
    task: str
    metric: str
    cells: tuple[SeedCell, ...]
    seed: bool = True  # a row of the seed's table (else another headline metric)
    stand_in: str = ""  # the stand-in's note when one was used
    reason: str = ""  # why no model has a value

    @property
    def scored(self) -> bool:
        return not self.reason

    @property
    def scored_on(self) -> str:
        """``demo_footwear · article type``, or ``not scored: <why>``."""
        if not self.scored:
            return f"{NOT_SCORED}: {self.reason}"
        return f"{self.benchmark} · {task_words(self.task)}"


@dataclass(frozen=True)
class SeedTable:
    models: tuple[str, ...]  # baseline first
    rows: tuple[SeedRow, ...]
    summaries: tuple[tuple[str, str], ...]  # (candidate, plain-language line)
    compared: bool = True  # the first model is a baseline the others are judged against

    @property
    def baseline(self) -> str:
        return self.models[0]

    def header(self) -> list[str]:
        """``Metric``, ``Scored on``, the baseline, then each candidate and its change."""
        columns = ["Metric", "Scored on"]
        for i, name in enumerate(self.models):
            baseline = i == 0 and len(self.models) > 1 and self.compared
            columns.append(f"{name} (baseline)" if baseline else name)
            if i and self.compared:
                columns.append(f"Δ {name}")
        return columns

    def display_rows(self) -> list[list[str]]:
        """The cells as every format shows them, in :meth:`header`'s order."""
        out = []
        for row in self.rows:
            cells = [row.label, row.scored_on]
            for i, cell in enumerate(row.cells):
                cells.append(cell.text)
                if i and self.compared:
                    cells.append(cell.delta_text)
            out.append(cells)
        return out

    def notes(self) -> list[str]:
        """What the demo's stand-in rows were scored on (rows sharing a stand-in in one
        line), and why a change is not comparable."""
        stand_ins: dict[tuple[str, str], list[str]] = {}
        for r in self.rows:
            if r.stand_in:
                label = r.label.removesuffix(f" ({STAND_IN})")
                stand_ins.setdefault((r.benchmark, r.stand_in), []).append(label)
        lines = [f"Demo stand-in for {', '.join(labels)}: {benchmark}, {note}"
                 for (benchmark, note), labels in stand_ins.items()]  # fmt: skip
        for row in self.rows:
            for cell in row.cells:
                if cell.verdict == NOT_COMPARABLE and cell.reason:
                    lines.append(f"{row.label}, {cell.model}: not comparable ({cell.reason})")
        return lines


# ---------------------------------------------------------------- reading the definitions


def _stand_in(raw: Any, row: Mapping[str, Any], where: str) -> StandIn | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or "benchmark" not in raw or "note" not in raw:
        raise EvalSuiteError(f"{where}: stand_in needs benchmark and note, got {raw!r}")
    return StandIn(
        str(raw["benchmark"]), str(raw.get("task", row["task"])),
        str(raw.get("metric", row["metric"])), " ".join(str(raw["note"]).split()),
    )  # fmt: skip


def parse_seed_rows(raw: Mapping[str, Any], where: str = "seed table") -> SeedDefinition:
    """The definition from parsed YAML; a row missing a field raises, naming it."""
    rows = []
    for i, row in enumerate(raw.get("rows") or []):
        missing = [k for k in ("label", "explain", "benchmark", "task", "metric") if k not in row]
        if missing:
            raise EvalSuiteError(f"{where}: row {i + 1} lacks {', '.join(missing)}")
        rows.append(
            RowDef(
                str(row["label"]), " ".join(str(row["explain"]).split()), str(row["benchmark"]),
                str(row["task"]), str(row["metric"]),
                _stand_in(row.get("stand_in"), row, f"{where}: row {i + 1}"),
            )
        )  # fmt: skip
    if not rows:
        raise EvalSuiteError(f"{where}: no rows")
    metrics = {str(k): " ".join(str(v).split()) for k, v in (raw.get("metrics") or {}).items()}
    return SeedDefinition(tuple(rows), metrics)


def load_seed_rows(path: Path = SEED_ROWS_FILE) -> SeedDefinition:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSuiteError(f"cannot read the seed table's rows {path}: {exc}") from exc
    return parse_seed_rows(raw or {}, str(path))


def not_scored_reason(benchmark: str, path_env: str | None) -> str:
    """``no run of deepfashion in these results: pass --data deepfashion=DIR or set
    EVALSUITE_DEEPFASHION_DIR``."""
    how = f"pass --data {benchmark}=DIR"
    if path_env:
        how += f" or set {path_env}"
    return f"no run of {benchmark} in these results: {how}"


def missing_benchmark_reasons(
    definition: SeedDefinition, metrics: pd.DataFrame, benchmarks_dir: Path | None = None
) -> dict[str, str]:
    """Why each benchmark of the rows has no run in ``metrics``, with the advice its YAML's
    ``dataset.path_env`` gives (read from ``benchmarks/<name>/<name>.yaml``)."""
    scored = set(metrics["benchmark"]) if not metrics.empty else set()
    out = {}
    for row in definition.rows:
        if row.benchmark in scored or row.benchmark in out:
            continue
        try:
            env = load_benchmark(row.benchmark, benchmarks_dir).dataset.path_env
        except SpecError:
            env = None
        out[row.benchmark] = not_scored_reason(row.benchmark, env)
    return out


# ---------------------------------------------------------------- building the table


def _values(metrics: pd.DataFrame) -> dict[tuple[str, str, str, str], tuple[float, Any]]:
    """(model, benchmark, task, metric) -> (value, maximum) of the latest run."""
    if metrics.empty:
        return {}
    frame = metrics.sort_values("started_at") if "started_at" in metrics else metrics
    return {
        (r.model_name, r.benchmark, r.task, r.metric): (float(r.value), r.maximum)
        for r in frame.itertuples(index=False)
        if not is_missing(r.value)
    }


def _verdicts(comparisons: Mapping[str, ModelComparison | str]) -> dict[tuple, MetricVerdict]:
    return {
        (name, v.benchmark, v.task, v.metric): v
        for name, comp in comparisons.items()
        if isinstance(comp, ModelComparison)
        for v in comp.verdicts
    }


def _cells(
    key: Key,
    models: Sequence[str],
    values: Mapping[tuple, tuple[float, Any]],
    verdicts: Mapping[tuple, MetricVerdict],
    failures: Mapping[str, str],
) -> tuple[SeedCell, ...]:
    cells = []
    for i, model in enumerate(models):
        value, maximum = values.get((model, *key), (None, None))
        maximum = None if is_missing(maximum) else float(maximum)
        cell = SeedCell(model, value, maximum, format_value(key[2], value, maximum))
        v = verdicts.get((model, *key)) if i else None
        if v is not None:  # the comparison's change, marker, verdict and p; nothing computed
            change = v.marker if v.verdict == NOT_COMPARABLE else f"{v.marker} {v.delta_text}"
            p = None if is_missing(v.p_adjusted) else v.p_adjusted
            cell = replace(cell, delta=v.delta, delta_text=change, verdict=v.verdict,
                           p_adjusted=p, reason=v.reason)  # fmt: skip
        elif i and model in failures:
            cell = replace(cell, delta_text="n/a", verdict=NOT_COMPARABLE, reason=failures[model])
        elif i:
            cell = replace(cell, delta_text=MISSING)
        cells.append(cell)
    return tuple(cells)


def _seed_row(
    definition: RowDef,
    scored: set[str],
    missing: Mapping[str, str],
    skipped: Mapping[tuple[str, str], str],
) -> SeedRow:
    """Which benchmark the row reads (the real one, else its stand-in) and, when neither
    was scored, why; cells are filled by the caller."""
    use, note = definition.key, ""
    stand_in = definition.stand_in
    if definition.benchmark not in scored and stand_in and stand_in.benchmark in scored:
        use, note = (stand_in.benchmark, stand_in.task, stand_in.metric), stand_in.note
    label = f"{definition.label} ({STAND_IN})" if note else definition.label
    reason = ""
    if use[0] not in scored:
        reason = missing.get(use[0]) or not_scored_reason(use[0], None)
    elif (use[0], use[1]) in skipped:
        reason = f"{use[0]} {task_words(use[1])} was skipped: {skipped[(use[0], use[1])]}"
    return SeedRow(label, definition.explain, *use, (), True, note, reason)


def _task_types(metrics: pd.DataFrame) -> dict[tuple[str, str], str | None]:
    """(benchmark, task) -> its YAML type as recorded (else guessed from its metrics)."""
    out: dict[tuple[str, str], str | None] = {}
    for (benchmark, task), group in metrics.groupby(["benchmark", "task"], sort=False):
        types = group["task_type"].dropna() if "task_type" in group else pd.Series([], dtype=str)
        out[(benchmark, task)] = str(types.iloc[0]) if len(types) else task_kind(group["metric"])
    return out


def headline_keys(metrics: pd.DataFrame, order: Iterable[str] = ()) -> list[Key]:
    """The first primary metric (acc@1, IR hits) of every zero-shot and retrieval task
    scored, benchmarks in ``order`` first, then by name; tasks by name."""
    if metrics.empty:
        return []
    present = set(zip(metrics["benchmark"], metrics["task"], metrics["metric"], strict=True))
    ranked = list(dict.fromkeys(b for b in order if b in set(metrics["benchmark"])))
    ranked += sorted(set(metrics["benchmark"]) - set(ranked))
    out = []
    for (benchmark, task), task_type in sorted(
        _task_types(metrics).items(), key=lambda kv: (ranked.index(kv[0][0]), kv[0][1])
    ):
        kind = TASK_KINDS.get(task_type or "")
        out += [(benchmark, task, m) for m in PRIMARY_METRICS.get(kind or "", ())[:1]
                if (benchmark, task, m) in present]  # fmt: skip
    return out


def _extra_row(key: Key, definition: SeedDefinition, task_type: str | None) -> SeedRow:
    _, task, metric = key
    label = f"{metric_label(metric, task_type)}: {task_words(task)}"
    return SeedRow(label, definition.metrics.get(metric, ""), *key, (), seed=False)


def summary_lines(
    candidates: Sequence[str], comparisons: Mapping[str, ModelComparison | str]
) -> tuple[tuple[str, str], ...]:
    """One plain-language line per candidate: ``ModelComparison.summary_line`` (every
    significant loss, the strongest gain of each task), or why it was not compared."""
    out = []
    for name in candidates:
        comp = comparisons.get(name)
        if isinstance(comp, ModelComparison):
            out.append((name, comp.summary_line(limit=1)))
        elif comp:
            out.append((name, f"not compared with the baseline: {comp}"))
    return tuple(out)


def build_seed_table(
    metrics: pd.DataFrame,
    models: Sequence[str],
    comparisons: Mapping[str, ModelComparison | str],
    missing: Mapping[str, str],
    definition: SeedDefinition,
    skipped: Mapping[tuple[str, str], str] | None = None,
    *,
    compared: bool = True,
) -> SeedTable:
    """The seed's rows in order (read from the real benchmark, else its declared stand-in,
    else "not scored" with the reason in ``missing``: benchmark -> why it has no run), then
    the other headline metrics; one column per model (``models``, baseline first). A
    candidate's change, marker, verdict and p-value come from its comparison in
    ``comparisons`` (name -> :class:`ModelComparison`, or why there is none). ``skipped``:
    (benchmark, task) -> why a run skipped that task. ``compared=False``: no baseline was
    chosen, so the table has no change columns."""
    if not models:
        raise EvalSuiteError("the seed table needs at least one model")
    models = list(models)
    shown = metrics[metrics["model_name"].isin(models)] if not metrics.empty else metrics
    scored = set(shown["benchmark"]) if not shown.empty else set()
    values, verdicts = _values(shown), _verdicts(comparisons)
    failures = {n: c for n, c in comparisons.items() if isinstance(c, str)}
    rows = [_seed_row(d, scored, missing, skipped or {}) for d in definition.rows]
    used = {(r.benchmark, r.task, r.metric) for r in rows}
    types = _task_types(shown) if not shown.empty else {}
    order = [r.benchmark for r in rows]
    for key in headline_keys(shown, order):
        if key not in used:
            rows.append(_extra_row(key, definition, types.get(key[:2])))
    filled = []
    for row in rows:
        cells = _cells((row.benchmark, row.task, row.metric), models, values, verdicts, failures)
        if row.scored and all(c.value is None for c in cells):
            row = replace(row, reason=f"no model here has {metric_label(row.metric)} on "
                                      f"{row.scored_on}")  # fmt: skip
        if not row.scored:
            cells = tuple(SeedCell(m, None, None, NOT_SCORED) for m in models)
        filled.append(replace(row, cells=cells))
    summaries = summary_lines(models[1:], comparisons) if compared else ()
    return SeedTable(tuple(models), tuple(filled), summaries, compared)
