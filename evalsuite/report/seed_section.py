"""The seed's results table and the training costs, as the report shows them (and
``evalsuite report --format`` prints them): :mod:`evalsuite.seed_table` and
:mod:`evalsuite.training_cost` on the report's models and verdicts."""

from __future__ import annotations

from evalsuite.report.data import ReportData
from evalsuite.seed_formats import cost_markdown, seed_markdown
from evalsuite.seed_table import (
    SeedTable,
    build_seed_table,
    load_seed_rows,
    missing_benchmark_reasons,
)
from evalsuite.training_cost import TrainingCost, training_cost


def seed_table_of(data: ReportData) -> SeedTable:
    """The seed's table of the report's models (baseline first) and verdicts."""
    definition = load_seed_rows()
    skipped = {
        (benchmark, task): reason
        for (_, benchmark), tasks in data.skipped_tasks.items()
        for task, reason in tasks.items()
    }
    return build_seed_table(
        data.metrics, [m.name for m in data.models], data.comparisons,
        missing_benchmark_reasons(definition, data.metrics), definition, skipped,
    )  # fmt: skip


def training_costs(data: ReportData) -> list[TrainingCost]:
    """What each model's training cost, from its training.json (none for a base model)."""
    return [training_cost(model.name, model.training) for model in data.models]


def seed_section(data: ReportData) -> list[str]:
    lines = ["## Results at a glance (the seed's table)", ""]
    lines += [seed_markdown(seed_table_of(data), summaries=False).rstrip("\n"), ""]
    lines += ["## Training cost", "", cost_markdown(training_costs(data)).rstrip("\n"), ""]
    return lines
