"""One row per model of the leaderboard: its kind (base, fine-tuned, WiSE-FT, precomputed
embeddings), training time, and the models sharing its weights."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from evalsuite.formatting import md

PRECOMPUTED_BACKEND = "precomputed"  # runs of embeddings a user already had (no model)


def _training(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value else None


def model_kind(training: dict[str, Any] | None, backend: Any = None) -> str:
    """ "base", "fine-tuned", "WiSE-FT α=0.50" or "precomputed embeddings"."""
    if backend == PRECOMPUTED_BACKEND:
        return "precomputed embeddings"
    if not training:
        return "base"
    wise = training.get("wise")
    if isinstance(wise, dict):
        alpha = wise.get("alpha")
        return f"WiSE-FT α={float(alpha):.2f}" if alpha is not None else "WiSE-FT"
    return "fine-tuned"


def training_seconds(training: dict[str, Any] | None) -> float:
    """Total fine-tuning time from the history in training.json (NaN when unknown)."""
    history = (training or {}).get("history") or []
    total = [e.get("seconds") for e in history if isinstance(e, dict)]
    total = [float(s) for s in total if isinstance(s, (int, float)) and math.isfinite(s)]
    return sum(total) if total else math.nan


MODEL_COLUMNS = ["name", "fingerprint", "spec", "kind", "alpha", "training", "base_model",
                 "base_fingerprint", "parameter_count", "train_seconds", "backend",
                 "same_weights_as"]  # fmt: skip


def _names(value: Any) -> list[str]:
    """``same_weights_as`` as a list of names (a list, an array or nothing)."""
    if value is None or isinstance(value, (str, float)):
        return []
    return [str(v) for v in value]


def _model_row(row: dict[str, Any]) -> dict[str, Any]:
    training = _training(row.get("training"))
    wise = (training or {}).get("wise")
    alpha = wise.get("alpha") if isinstance(wise, dict) else None
    return {
        "name": str(row["name"]),
        "fingerprint": row.get("fingerprint"),
        "spec": row.get("spec"),
        "kind": model_kind(training, row.get("backend")),
        "alpha": float(alpha) if alpha is not None else math.nan,
        "training": training,
        "base_model": row.get("base_model"),
        "base_fingerprint": row.get("base_fingerprint"),
        "parameter_count": row.get("parameter_count"),
        "train_seconds": training_seconds(training),
        "backend": row.get("backend"),
        "same_weights_as": _names(row.get("same_weights_as")),
    }


def model_table(models: pd.DataFrame, metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model (its name: names are unique, two names with the same weights are
    two models) that has results; all models when ``metrics`` is None.

    Columns: name, fingerprint (its current weights), spec, kind, alpha, training,
    base_model, base_fingerprint, parameter_count, train_seconds, backend, same_weights_as
    (the other models with the same weights).
    """
    frame = models.copy()
    if metrics is not None:
        frame = frame[frame["name"].isin(set(metrics["model_name"]))]
        missing = sorted(set(metrics["model_name"]) - set(models["name"]))
        if missing:  # runs of a model whose row is gone: still shown, with the run's weights
            weights = metrics.drop_duplicates("model_name").set_index("model_name")["fingerprint"]
            extra = pd.DataFrame({"name": missing, "fingerprint": [weights[n] for n in missing]})
            frame = pd.concat([frame, extra], ignore_index=True)
    out = pd.DataFrame([_model_row(r) for r in frame.to_dict("records")], columns=MODEL_COLUMNS)
    return out.sort_values("name", key=lambda s: s.str.lower()).reset_index(drop=True)


def same_weights_note(models: pd.DataFrame) -> str:
    """ "a and b have the same weights" for each group of models sharing their weights (two
    names of the same weights are two models, e.g. a WiSE-FT at alpha 0 and its base); ""
    when none do."""
    groups = {
        tuple(sorted({name, *others}, key=str.lower))
        for name, others in zip(models["name"], models["same_weights_as"], strict=True)
        if others
    }
    lines = []
    for group in sorted(groups):
        names = [md(n) for n in group]
        lines.append(f"{', '.join(names[:-1])} and {names[-1]} have the same weights")
    return "; ".join(lines)
