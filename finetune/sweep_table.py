"""The table ``finetune sweep`` prints at the end: one row per trial (its values, the
objective metric as stored, its state and why it failed), then the best trial."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from finetune.sweep_trial import SweepPlan

if TYPE_CHECKING:
    import optuna

NOTE_WIDTH = 100  # the full reason is in the trial's user attributes and its logs


def trial_note(trial: optuna.trial.FrozenTrial) -> str:
    attrs = trial.user_attrs
    notes = []
    if "retry_of" in attrs:
        notes.append(f"retry of trial {attrs['retry_of']}")
    notes += [attrs[key] for key in ("reason", "constraint") if attrs.get(key)]
    note = "; ".join(str(n) for n in notes)
    return note if len(note) <= NOTE_WIDTH else note[: NOTE_WIDTH - 3] + "..."


def trials_frame(study: optuna.Study, plan: SweepPlan) -> pd.DataFrame:
    objective = plan.space.objective
    metric = f"{objective.benchmark}/{objective.task}/{objective.metric}"
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = trial.user_attrs.get("metric")
        rows.append({
            "trial": trial.number,
            **{key: trial.params.get(key, "") for key in plan.space.params},
            metric: "" if value is None else f"{value:.4g}",
            "state": trial.state.name,
            "note": trial_note(trial),
        })  # fmt: skip
    return pd.DataFrame(rows)


def best_line(study: optuna.Study, plan: SweepPlan) -> str:
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.value is not None and math.isfinite(t.value)]  # fmt: skip
    if not complete:
        return "best: none (no trial completed within the constraint)"
    best = max(complete, key=lambda t: t.value or 0.0)
    objective = plan.space.objective
    shown = ", ".join(f"{key}={value}" for key, value in best.params.items())
    return (
        f"best: trial {best.number} ({plan.trial_name(best.number)}): {objective.benchmark}/"
        f"{objective.task}/{objective.metric} = {best.user_attrs.get('metric'):.4g} with "
        f"{shown}; checkpoint {plan.trial_dir(best.number)}"
    )


def summary(study: optuna.Study, plan: SweepPlan) -> str:
    frame = trials_frame(study, plan)
    if frame.empty:
        table = "(no trials)"
    else:  # notes are sentences: left-aligned
        width = int(frame["note"].str.len().max())
        table = frame.to_string(index=False, formatters={"note": lambda s: f"{s:<{width}}"})
    return "\n".join([
        f"study {plan.study}: {len(frame)} trials in {plan.storage}",
        table,
        best_line(study, plan),
        f"results: {plan.db} (evalsuite --db {plan.db} leaderboard)",
    ])  # fmt: skip
