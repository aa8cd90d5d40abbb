"""WiSE-FT interpolations of one fine-tune joined as a curve, with its base (alpha 0) and
fine-tune (alpha 1) where they are scored."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd


def _same_spec(a: Any, b: Any) -> bool:
    if not a or not b or pd.isna(a) or pd.isna(b):
        return False
    na, nb = (os.path.normpath(str(x)).rstrip("/") for x in (a, b))
    if na == nb:
        return True
    with_paths = [Path(x).expanduser() for x in (na, nb)]
    try:
        return with_paths[0].resolve() == with_paths[1].resolve() and any(
            p.exists() for p in with_paths
        )
    except OSError:  # pragma: no cover
        return False


def _derived(row: dict[str, Any]) -> tuple[bool, bool]:
    """(made from another model, a WiSE-FT interpolation): what a curve's end is not."""
    training = row.get("training") or {}
    base = row.get("base_fingerprint")
    has_base = isinstance(base, str) and bool(base)
    return bool(training) or has_base, isinstance(training.get("wise"), dict)


def _match_model(models: pd.DataFrame, spec: Any, fingerprint: Any, name: Any = None) -> str | None:
    """The name of the model a WiSE-FT curve's end is: the name recorded, else the models
    with the recorded weights, else with the same spec. Of several names of those weights
    (a base and a WiSE-FT at alpha 0 of the same weights), the one not derived itself, then
    the one of the recorded spec, then the first name."""
    rows = models.to_dict("records")
    if name and any(row["name"] == name for row in rows):
        return str(name)
    found = [row for row in rows if fingerprint and row["fingerprint"] == fingerprint]
    found = found or [row for row in rows if _same_spec(row.get("spec"), spec)]
    if not found:
        return None

    def rank(row: dict[str, Any]) -> tuple[Any, ...]:
        return (*_derived(row), not _same_spec(row.get("spec"), spec), str(row["name"]).lower())

    return str(min(found, key=rank)["name"])


def _wise_groups(models: pd.DataFrame):
    """finetune key -> ([(alpha, name, fingerprint)], its wise record), in model order."""
    groups: dict[str, list[tuple[float, str, Any]]] = {}
    ends: dict[str, dict[str, Any]] = {}
    for row in models.to_dict("records"):
        wise = (row.get("training") or {}).get("wise")
        if not isinstance(wise, dict) or wise.get("alpha") is None:
            continue
        spec = wise.get("finetuned_spec")
        key = os.path.normpath(str(spec)) if spec else str(wise.get("finetuned_fingerprint"))
        groups.setdefault(key, []).append((float(wise["alpha"]), str(row["name"]),
                                           row["fingerprint"]))  # fmt: skip
        ends.setdefault(key, wise)
    return groups, ends


def _curve_ends(
    models: pd.DataFrame, members: list[tuple[float, str, Any]], wise: dict[str, Any]
) -> list[tuple[float, str]]:
    """The base (alpha 0) and the fine-tune (alpha 1) of a curve, where they are scored and
    no interpolation already stands for them (its alpha, its name or its weights)."""
    alphas = {alpha for alpha, _, _ in members}
    names = {name for _, name, _ in members}
    weights = {fp for _, _, fp in members if isinstance(fp, str)}
    fingerprints = dict(zip(models["name"], models["fingerprint"], strict=True))
    out = []
    for alpha, end in ((0.0, "base"), (1.0, "finetuned")):
        name = _match_model(
            models, wise.get(f"{end}_spec"), wise.get(f"{end}_fingerprint"), wise.get(f"{end}_name")
        )
        if name and alpha not in alphas and name not in names and fingerprints[name] not in weights:
            out.append((alpha, name))
    return out


def wise_curves(models: pd.DataFrame) -> pd.DataFrame:
    """WiSE-FT interpolations of one fine-tune joined as a curve.

    Models whose training has "wise" are grouped by its finetuned_spec and sorted by alpha;
    the base model (alpha 0, wise.base_spec / base_fingerprint) and the fine-tuned model
    (alpha 1) join their curve where they are present, unless an interpolation already is
    that end (alpha 0 or 1, or the same weights). Columns: curve, alpha, name.
    """
    groups, ends = _wise_groups(models)
    rows = []
    for key, members in groups.items():
        points = [(alpha, name) for alpha, name, _ in members]
        points += _curve_ends(models, members, ends[key])
        spec = ends[key].get("finetuned_spec")
        label = Path(str(spec)).name if spec else key
        rows += [{"curve": f"WiSE-FT of {label}", "alpha": a, "name": n} for a, n in sorted(points)]
    return pd.DataFrame(rows, columns=["curve", "alpha", "name"])
