"""Sweeps, soups and their hyper-parameters, read from the results database's model rows.

Pure functions of :func:`evalsuite.store.list_models` rows (any frame with ``name`` and
``training`` columns), shared by ``evalsuite report`` and the leaderboard.

What the fine-tuning commands record in ``training.json`` (the ``models.training`` column):

- a sweep trial: ``"sweep": {"study": S, "trial": N, "params": {"optim.lr": 1e-05, ...}}``
  (the dotted keys as in the space file), its model named ``<study>-trial-<N>``;
- a model soup: ``"soup": {"kind": "uniform" | "greedy", "ingredients": [run names], ...}``;
- a WiSE-FT checkpoint: ``"wise": {"alpha": A, "finetuned_fingerprint": ..., ...}``;
- every fine-tune: ``"config"``, the full ``finetune.config.TrainConfig`` dump.

A WiSE-FT checkpoint or a soup of a trial copies that trial's ``training.json``, ``sweep``
included, so only a record without ``wise`` and ``soup`` is a trial.

:func:`sweep_table` turns per-trial scores (computed by the caller with the report's or the
leaderboard's own helpers and verdicts) into the ITRA guide's table: per swept key, each
value -> the target score (mean over the trials with that value, and the best trial).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# the config keys a fine-tune is told apart by (ITRA's guide sweeps these), in table order
COMMON_KEYS = (
    "optim.lr",
    "optim.weight_decay",
    "optim.layer_decay",
    "train.epochs",
    "train.batch_size",
    "train.accum_steps",
    "loss.objective",
    "lock.lock_image",
    "lock.lock_image_unlocked_blocks",
    "lock.lock_text",
    "lock.lock_text_unlocked_blocks",
    "lora.enabled",
    "lora.rank",
    "ema.enabled",
    "ema.decay",
)
# shown only when their switch is on: a rank of a LoRA that is off says nothing
SWITCHED = {"lora.rank": "lora.enabled", "ema.decay": "ema.enabled"}
WISE_ALPHA = "wise.alpha"
SOUP_KIND = "soup.kind"
TABLE_COLUMNS = ["name", "study", "trial"]  # then one column per hyper-parameter


@dataclass(frozen=True)
class Trial:
    """One scored trial of a sweep: its model name, study, Optuna trial number and params."""

    name: str
    study: str
    number: int
    params: dict[str, Any]
    objective: tuple[str, str, str] | None = None  # (benchmark, task, metric) it optimised
    no_regression_on: tuple[str, ...] = ()  # the sweep's constraint: benchmarks kept level


def _record(training: Any) -> dict[str, Any]:
    return training if isinstance(training, dict) else {}


def _section(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def config_value(config: Mapping[str, Any], dotted: str) -> Any:
    """``config["optim"]["lr"]`` for ``"optim.lr"``; None when any part is missing."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def trial_of(name: str, training: Any) -> Trial | None:
    """The sweep trial a model is, or None (not a sweep's, or a soup / WiSE-FT made of one)."""
    record = _record(training)
    sweep = _section(record, "sweep")
    if not sweep or "wise" in record or "soup" in record:
        return None
    study, number = sweep.get("study"), sweep.get("trial")
    if not isinstance(study, str) or not isinstance(number, int) or isinstance(number, bool):
        return None
    goal = _section(sweep, "objective")
    keys = [goal.get(k) for k in ("benchmark", "task", "metric")]
    objective = tuple(keys) if all(isinstance(k, str) for k in keys) else None
    kept = _section(sweep, "constraint").get("no_regression_on") or []
    level = tuple(str(b) for b in kept) if isinstance(kept, list) else ()
    return Trial(str(name), study, number, dict(_section(sweep, "params")), objective, level)


def hyperparameters(training: Any) -> dict[str, Any]:
    """A model's hyper-parameters by dotted key: its sweep's params first, then the common
    config keys (a switched-off option's settings left out), WiSE-FT alpha and soup kind.
    Empty for a model without ``training.json`` (a base model)."""
    record = _record(training)
    if not record:
        return {}
    is_derived = "wise" in record or "soup" in record
    out = {} if is_derived else dict(_section(_section(record, "sweep"), "params"))
    config = _section(record, "config")
    for key in COMMON_KEYS:
        value = config_value(config, key)
        switch = SWITCHED.get(key)
        if value is not None and key not in out and (not switch or config_value(config, switch)):
            out[key] = value
    wise = _section(record, "wise")
    if "alpha" in wise:
        out[WISE_ALPHA] = wise["alpha"]
    soup = _section(record, "soup")
    if soup.get("kind"):
        out[SOUP_KIND] = soup["kind"]
    return out


def trials(models: pd.DataFrame) -> dict[str, list[Trial]]:
    """Study -> its trials in the frame, by trial number; studies in order of name."""
    found: dict[str, list[Trial]] = {}
    for row in models.to_dict("records"):
        trial = trial_of(row["name"], row.get("training"))
        if trial is not None:
            found.setdefault(trial.study, []).append(trial)
    return {s: sorted(found[s], key=lambda t: (t.number, t.name)) for s in sorted(found)}


def soups_of(models: pd.DataFrame, study: str, trial_names: Iterable[str]) -> list[str]:
    """The soups of a study: named ``<study>-soup-...``, or made of any of its trials."""
    names, out = set(trial_names), []
    for row in models.to_dict("records"):
        record = _record(row.get("training"))
        soup = _section(record, "soup") if "wise" not in record else None  # WiSE of a soup
        ingredients = soup.get("ingredients") if soup else None
        mixed = isinstance(ingredients, list) and bool(names & {str(i) for i in ingredients})
        if soup and (mixed or str(row["name"]).startswith(f"{study}-soup-")):
            out.append(str(row["name"]))
    return out


def swept_keys(study_trials: Sequence[Trial]) -> list[str]:
    """The keys a study swept, in the order its trials name them."""
    return list(dict.fromkeys(k for t in study_trials for k in t.params))


def hyperparameter_table(models: pd.DataFrame) -> pd.DataFrame:
    """One row per model: name, study and trial (a sweep trial's, else None / NaN), then one
    column per hyper-parameter, swept keys first: a model without a value holds None."""
    rows = []
    for row in models.to_dict("records"):
        trial = trial_of(row["name"], row.get("training"))
        rows.append({
            "name": str(row["name"]),
            "study": trial.study if trial else None,
            "trial": trial.number if trial else None,
            **hyperparameters(row.get("training")),
        })  # fmt: skip
    swept = [k for ts in trials(models).values() for k in swept_keys(ts)]
    present = {k for r in rows for k in r} - set(TABLE_COLUMNS)
    known = [*swept, *COMMON_KEYS, WISE_ALPHA, SOUP_KIND]
    keys = [k for k in dict.fromkeys(known) if k in present]
    keys += sorted(present - set(keys))
    columns = [*TABLE_COLUMNS, *keys]
    # object columns: an epoch count stays 2, not 2.0, next to a model without one
    return pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype=object) for c in columns})


def value_text(value: Any) -> str:
    """A hyper-parameter value as the tables show it: ``1e-05``, ``2``, ``true``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def params_text(params: Mapping[str, Any]) -> str:
    """``optim.lr=1e-05, train.epochs=2``."""
    return ", ".join(f"{k}={value_text(v)}" for k, v in params.items())


def describe(training: Any) -> str:
    """``lace #3: optim.lr=0.0001, train.epochs=2`` for a trial, ``greedy soup of a, b`` for
    a soup, "" for any other model."""
    record = _record(training)
    soup = _section(record, "soup") if "wise" not in record else None  # WiSE of a soup
    if soup:
        ingredients = ", ".join(str(i) for i in soup.get("ingredients") or [])
        return f"{soup.get('kind', '')} soup of {ingredients}".strip()
    trial = trial_of("", record)
    return f"{trial.study} #{trial.number}: {params_text(trial.params)}" if trial else ""


def _value_order(value: Any) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, value_text(value))


# ---------------------------------------------------------------- the sweep table


@dataclass(frozen=True)
class TrialScore:
    """A trial's results: ``target`` its target score (0..1), ``gain`` on the target and
    ``general`` change elsewhere in points against the baseline, ``regressions`` the
    significant regressions of gated metrics elsewhere (None: not compared)."""

    trial: Trial
    target: float | None
    gain: float | None = None
    general: float | None = None
    regressions: int | None = None
    violates: bool = False  # a significant regression where the sweep's constraint forbids


def best_of(scores: Iterable[TrialScore]) -> TrialScore | None:
    """The highest target among the trials within the sweep's constraint (as the sweep
    chose); among all scored trials when none is within it."""
    scored = [s for s in scores if s.target is not None]
    allowed = [s for s in scored if not s.violates] or scored
    return max(allowed, key=lambda s: s.target) if allowed else None  # type: ignore[arg-type]


@dataclass(frozen=True)
class ValueRow:
    """One value of one swept key: the trials with it, their mean target score, the best."""

    key: str
    value: Any
    n_trials: int
    n_scored: int
    mean_target: float | None
    best: TrialScore | None
    mean_gain: float | None
    mean_general: float | None


@dataclass
class SweepTable:
    study: str
    keys: list[str]
    rows: list[ValueRow]
    trials: list[TrialScore]
    soups: list[str] = field(default_factory=list)
    target_label: str = "target"
    objective: tuple[str, str, str] | None = None  # what the target is, when the sweep said

    @property
    def best(self) -> TrialScore | None:
        return best_of(self.trials)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(sum(present) / len(present)) if present else None


def sweep_table(
    study: str, scores: Sequence[TrialScore], soups: Sequence[str] = (), target_label: str = ""
) -> SweepTable:
    """Per swept key, each value (in numeric order) -> the mean target score of the trials
    with that value, and the best of them; trials without a target score count in
    ``n_trials``, not in the means."""
    keys = swept_keys([s.trial for s in scores])
    rows = []
    for key in keys:
        groups: dict[str, tuple[Any, list[TrialScore]]] = {}
        for score in scores:
            if key in score.trial.params:
                value = score.trial.params[key]
                groups.setdefault(value_text(value), (value, []))[1].append(score)
        for value, group in sorted(groups.values(), key=lambda g: _value_order(g[0])):
            scored = [s for s in group if s.target is not None]
            rows.append(ValueRow(
                key=key, value=value, n_trials=len(group), n_scored=len(scored),
                mean_target=_mean(s.target for s in scored),
                best=best_of(scored),
                mean_gain=_mean(s.gain for s in group),
                mean_general=_mean(s.general for s in group),
            ))  # fmt: skip
    ordered = sorted(scores, key=lambda s: s.trial.number)
    return SweepTable(study, keys, rows, ordered, list(soups), target_label or "target")
