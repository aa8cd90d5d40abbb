"""Where the report's numbers come from: the ``## Models`` table (spec, base, fingerprint,
notes), the ``## Provenance`` table of every run shown (data and benchmark hashes, code
version, time, device), the tasks skipped, and warnings when compared runs scored different
data or benchmark definitions."""

from __future__ import annotations

from typing import Any

import pandas as pd

from evalsuite.formatting import MISSING, is_missing, md
from evalsuite.labels import benchmark_label, task_words
from evalsuite.report.data import ModelEntry, ReportData
from evalsuite.report.tables import escape_cell, markdown_table

PROVENANCE_HEADER = [
    "Benchmark",
    "Model",
    "Data hash",
    "Benchmark hash",
    "Code version",
    "Scored at",
    "Items",
    "Device",
    "Run",
]


def _model_notes(data: ReportData, model: ModelEntry) -> list[str]:
    """``baseline``, ``fine-tuned``, ``WiSE-FT α = ...``, shared weights, epochs logged,
    seed and run name."""
    training = model.training or {}
    notes = []
    if model is data.baseline:
        notes.append("baseline")
    if model.wise:
        notes.append(
            f"WiSE-FT α = {float(model.wise['alpha']):g} of "
            f"`{model.wise.get('finetuned_spec', '?')}`"
        )
    elif model.fine_tuned:
        notes.append("fine-tuned")
    if model.same_weights_as:  # e.g. WiSE-FT at alpha 0: its base's weights
        notes.append("same weights as " + ", ".join(md(n) for n in model.same_weights_as))
    if model.history is not None:
        notes.append(f"{len(model.history)} epochs logged")
    for key in ("seed", "run_name"):
        if key in training:
            notes.append(f"{key} {training[key]}")
    return notes


def models_section(data: ReportData) -> list[str]:
    rows = [
        [
            md(model.name),
            f"`{escape_cell(model.spec)}`" if model.spec else "",
            f"`{escape_cell(model.base_spec)}`" if model.base_spec else "",
            f"`{model.fingerprint[:12]}`",
            escape_cell(", ".join(_model_notes(data, model))),
        ]
        for model in data.models
    ]
    return [
        "## Models",
        "",
        markdown_table(["Model", "Spec", "Fine-tuned from", "Fingerprint", "Notes"], rows, "lllll"),
    ]


def _short_hash(value: Any) -> str:
    return f"`{str(value)[:12]}`" if not is_missing(value) and value else MISSING


def _scored_at(value: Any) -> str:
    if is_missing(value):
        return MISSING
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def provenance_warnings(data: ReportData) -> list[str]:
    """One line per benchmark whose compared runs scored different data or definitions."""
    warnings = []
    for benchmark in data.benchmarks:
        runs = data.runs[data.runs["benchmark"] == benchmark]
        for column, what in (
            ("data_manifest_hash", "data"),
            ("benchmark_hash", "benchmark definitions"),
        ):
            values = runs[column].fillna("none")
            if values.nunique() > 1:
                groups = "; ".join(
                    f"`{str(h)[:12]}`: " + ", ".join(map(md, runs.loc[values == h, "model_name"]))
                    for h in values.unique()
                )
                warnings.append(
                    f"⚠️ **{benchmark_label(benchmark)}**: the runs compared scored different "
                    f"{what} ({groups}); their differences may come from the {what}, not the "
                    "models, so their changes are not comparable (n/a); score them again on "
                    "the same data to compare like with like."
                )
    return warnings


def _run_row(benchmark: str, model: ModelEntry, run: pd.Series) -> list[str]:
    items = str(int(run["n_items"])) if not is_missing(run["n_items"]) else MISSING
    skipped = run["n_skipped"]
    if not is_missing(skipped) and int(skipped):
        items += f" ({int(skipped)} skipped)"
    return [
        benchmark_label(benchmark),
        md(model.name),
        _short_hash(run["data_manifest_hash"]),
        _short_hash(run["benchmark_hash"]),
        f"`{escape_cell(run['code_version'])}`",
        _scored_at(run["started_at"]),
        items,
        escape_cell(f"{run['device']} {run['precision']}"),
        f"`{str(run['run_id'])[:8]}`",
    ]


def _skipped_note(data: ReportData) -> list[str]:
    """``Tasks skipped: ...``: each task not applicable, the models it was skipped for and
    why; nothing when none was."""
    skipped: dict[tuple[str, str, str], list[str]] = {}
    for model in data.models:
        for benchmark in data.benchmarks:
            found = data.skipped_tasks.get((model.name, benchmark), {})
            for task, reason in found.items():
                skipped.setdefault((benchmark, task, reason), []).append(model.name)
    if not skipped:
        return []
    notes = [
        f"{benchmark_label(b)} · {task_words(t)} "
        f"({'all models' if len(names) == len(data.models) else ', '.join(names)}): "
        f"{reason}"
        for (b, t, reason), names in skipped.items()
    ]
    return ["", "Tasks skipped: " + "; ".join(escape_cell(n) for n in notes) + "."]


def provenance_section(data: ReportData) -> list[str]:
    rows = [
        _run_row(benchmark, model, run)
        for benchmark in data.benchmarks
        for model in data.models
        if (run := data.run_of(model, benchmark)) is not None
    ]
    lines = [
        "## Provenance",
        "",
        "The latest run of each model on each benchmark (times in UTC).",
        "",
        markdown_table(PROVENANCE_HEADER, rows, "lllllllll"),
        *_skipped_note(data),
    ]
    versions = {str(v) for v in data.runs["code_version"].dropna()}
    if len(versions) > 1:
        lines += [
            "",
            f"Runs come from {len(versions)} code versions: "
            + ", ".join(f"`{v}`" for v in sorted(versions))
            + ".",
        ]
    return lines
