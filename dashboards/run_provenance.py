"""Where the leaderboard's numbers come from: the runs shown, what each scored (data and
benchmark hashes, code version, weights), the pairs whose data differ, and the cache key
that changes when the results do."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dashboards.views import short_hash
from evalsuite.formatting import md

# ---------------------------------------------------------------- cache key


def db_stamp(db: Path) -> tuple[int, ...]:
    """What changes when the results change (the leaderboard's cache key for its verdicts):
    modification times of the database file and its write-ahead log; of a folder of exported
    runs, the number of run manifests, the latest of their modification times and a digest
    of their paths (a folder's own time does not change when a run is added deeper in it)."""
    if db.is_dir():
        manifests = sorted(db.rglob("manifest.json"))
        times = []
        for manifest in manifests:
            with contextlib.suppress(OSError):  # a run folder being replaced right now
                times.append(manifest.stat().st_mtime_ns)
        paths = "\n".join(str(m.relative_to(db)) for m in manifests).encode()
        return (len(manifests), max(times, default=0), zlib.crc32(paths))
    files = (db, db.with_name(db.name + ".wal"))
    return tuple(f.stat().st_mtime_ns for f in files if f.exists())


# ---------------------------------------------------------------- provenance


def latest_runs(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """The runs the overview shows (the latest ``ok`` run per model and benchmark)."""
    return runs[runs["run_id"].isin(set(metrics["run_id"]))].reset_index(drop=True)


def provenance_table(runs: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """What was scored, how and when, for each run shown: the model (its name), the weights
    the run scored (fingerprint) and the other models of the same weights."""
    same = dict(zip(models["name"], models["same_weights_as"], strict=True))
    frame = runs.sort_values(["benchmark", "model_name"])
    return pd.DataFrame(
        {
            "Model": frame["model_name"],
            "Benchmark": frame["benchmark"],
            "Data manifest": frame["data_manifest_hash"].map(short_hash),
            "Benchmark hash": frame["benchmark_hash"].map(short_hash),
            "Code version": frame["code_version"],
            "Scored at (UTC)": pd.to_datetime(frame["started_at"]).dt.strftime("%Y-%m-%d %H:%M"),
            "Weights": frame["model_fingerprint"].map(short_hash),
            "Same weights as": [", ".join(same.get(n) or []) for n in frame["model_name"]],
            "Items": frame["n_items"],
            "Skipped images": frame["n_skipped"],
            "Data root": frame["data_root"],
            "Run": frame["run_id"].map(lambda r: short_hash(r, 8)),
        }
    ).reset_index(drop=True)


def provenance_mismatches(
    runs: pd.DataFrame, baseline: str | None, names: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Pairs (baseline run, candidate run) on the same benchmark whose data manifest hash or
    benchmark hash differ: their numbers are not measured on the same thing. ``baseline``
    and ``names`` (the candidates, default all) are model names."""
    if baseline is None or runs.empty:
        return []
    wanted = None if names is None else set(names)
    base_runs = runs[runs["model_name"] == baseline].set_index("benchmark")
    out = []
    for run in runs.to_dict("records"):
        name, bench = run["model_name"], run["benchmark"]
        if name == baseline or (wanted is not None and name not in wanted):
            continue
        if bench not in base_runs.index:
            continue
        base = base_runs.loc[bench]
        base = base.iloc[0] if isinstance(base, pd.DataFrame) else base
        for field, what in (
            ("data_manifest_hash", "data"),
            ("benchmark_hash", "benchmark definition"),
        ):
            if run[field] != base[field]:
                out.append(
                    {
                        "model": name,
                        "fingerprint": run["model_fingerprint"],
                        "benchmark": bench,
                        "field": field,
                        "what": what,
                        "baseline": base[field],
                        "candidate": run[field],
                    }
                )
    return out


def mismatch_messages(mismatches: Sequence[dict[str, Any]], baseline_label: str) -> list[str]:
    return [
        f"{md(m['model'])} vs {md(baseline_label)} on {md(m['benchmark'])}: different "
        f"{m['what']} "
        f"({short_hash(m['candidate'])} vs {short_hash(m['baseline'])}); their difference "
        "mixes the models with the change of data, so it is not a fair comparison."
        for m in mismatches
    ]
