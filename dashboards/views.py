"""What the leaderboard shows, as pure functions of the store's DataFrames.

No Streamlit and no database here: ``dashboards/leaderboard.py`` reads through
``evalsuite.store`` and passes the frames in; tests build frames by hand.

Units: rates (accuracy, F1, recall...) are stored as fractions and shown as percentages, so
their differences are percentage points ("pts"); counts (pretest, IR hits) carry a
``maximum`` and are shown as counts out of it. Whether a difference is real is never decided
here: ``dashboards.overview`` shows the verdicts of ``evalsuite.verdicts``.
"""

from __future__ import annotations

import contextlib
import math
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.formatting import md

GENERAL_BENCHMARKS = ("fmnist", "deepfashion", "custom", "demo_general")
BENCHMARK_ORDER = ("footwear", "fmnist", "deepfashion", "custom")
TASK_ORDER = (
    "article_type",
    "lace_colour",
    "base_colour",
    "text_search",
    "image_search",
    "lace_search",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")

BENCHMARK_LABELS = {
    "footwear": "footwear",
    "fmnist": "Fashion-MNIST",
    "deepfashion": "DeepFashion",
    "custom": "custom set",
}
TASK_LABELS = {
    ("footwear", "article_type"): "footwear type",
    ("footwear", "base_colour"): "footwear colour",
    ("footwear", "lace_colour"): "lace colour",
    ("footwear", "text_search"): "Text search",
    ("footwear", "image_search"): "Image search",
    ("footwear", "lace_search"): "Lace search",
    ("fmnist", "label"): "Fashion-MNIST",
    ("deepfashion", "category"): "DeepFashion category",
    ("custom", "label"): "custom set",
}
CLASSIFICATION_METRICS = {
    "acc@1": "Zero-shot accuracy",
    "acc@3": "Top-3 accuracy",
    "acc@5": "Top-5 accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "f1_macro": "F1 macro",
    "f1_macro_present": "F1 macro (classes present)",
    "f1_weighted": "F1 weighted",
    "pretest": "Pretest score",
}
RETRIEVAL_METRICS = {"ir_hits": "hits", "ir_by_position": "by-position score"}
# Shown by default; "all metrics" shows every metric stored.
HEADLINE_METRICS = {
    ("footwear", "article_type"): ("acc@1", "f1_macro", "f1_weighted", "pretest"),
    ("footwear", "lace_colour"): ("acc@1", "f1_macro"),
    ("footwear", "text_search"): ("ir_hits", "ir_by_position"),
    ("footwear", "image_search"): ("ir_hits", "ir_by_position"),
    ("footwear", "lace_search"): ("ir_hits",),
    ("footwear", "base_colour"): (),  # only with "show every metric": keeps the table narrow
}
MAIN_METRICS = ("acc@1", "ir_hits")  # first columns of the overview
GENERIC_HEADLINE = ("acc@1", "ir_hits", "ir_by_position", "nn_agreement:articleType")
# acc@1 of a probe is not zero-shot: the task's YAML type (recorded with each run) says which.
ACCURACY_WORDS = {"knn": "kNN accuracy", "linear_probe": "Linear-probe accuracy"}
PRECOMPUTED_BACKEND = "precomputed"  # runs of embeddings a user already had (no model)
METRIC_ORDER = (
    "acc@1",
    "acc@3",
    "acc@5",
    "balanced_accuracy",
    "f1_macro",
    "f1_macro_present",
    "f1_weighted",
    "pretest",
    "ir_hits",
    "ir_by_position",
)

# ---------------------------------------------------------------- names and units


def _order(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), value)


def benchmark_label(benchmark: str) -> str:
    return BENCHMARK_LABELS.get(benchmark, benchmark)


def task_label(benchmark: str, task: str) -> str:
    """Plain-language name of a task: "footwear type", "Text search", "Fashion-MNIST"."""
    if (benchmark, task) in TASK_LABELS:
        return TASK_LABELS[(benchmark, task)]
    if task in ("label", "category", "class"):
        return benchmark_label(benchmark)
    return f"{benchmark_label(benchmark)} {task.replace('_', ' ')}"


def is_classification_metric(metric: str) -> bool:
    return metric in CLASSIFICATION_METRICS or metric.startswith(("acc@", "f1_"))


def metric_words(metric: str) -> str:
    if metric in CLASSIFICATION_METRICS:
        return CLASSIFICATION_METRICS[metric]
    if metric in RETRIEVAL_METRICS:
        return RETRIEVAL_METRICS[metric]
    if metric.startswith("nn_agreement:"):  # embedding statistics, one per label field
        return f"NN label agreement ({metric.partition(':')[2]})"
    if metric in ("effective_rank", "mean_pairwise_similarity"):
        return metric.replace("_", " ")
    if metric.startswith("acc@"):
        return f"Top-{metric[4:]} accuracy"
    name, _, k = metric.partition("@")
    words = {"P": "precision", "Recall": "recall", "NDCG": "nDCG", "MAP": "MAP"}.get(name, name)
    return f"{words}@{k}" if k else words


def _fmt_max(maximum: float | None) -> str:
    return f"{maximum:,.0f}" if maximum is not None and not pd.isna(maximum) else ""


def metric_label(
    benchmark: str,
    task: str,
    metric: str,
    maximum: float | None = None,
    task_type: str | None = None,
) -> str:
    """Column title: "Zero-shot accuracy (footwear type)", "Text search hits / 390",
    "kNN accuracy (catalogue knn article type)" (``task_type`` from the run's record)."""
    suffix = f" / {_fmt_max(maximum)}" if _fmt_max(maximum) else ""
    if metric == "acc@1" and task_type in ACCURACY_WORDS:
        return f"{ACCURACY_WORDS[task_type]} ({task_label(benchmark, task)}){suffix}"
    if is_classification_metric(metric):
        return f"{metric_words(metric)} ({task_label(benchmark, task)}){suffix}"
    return f"{task_label(benchmark, task)} {metric_words(metric)}{suffix}"


def short_label(benchmark: str, task: str, metric: str) -> str:
    """Wording for a sentence: "footwear type accuracy", "text search hits"."""
    if metric == "acc@1":
        return f"{task_label(benchmark, task)} accuracy"
    if is_classification_metric(metric):
        return f"{task_label(benchmark, task)} {metric_words(metric)}"
    words = f"{task_label(benchmark, task)} {metric_words(metric)}"
    return words[0].lower() + words[1:]


def is_count(maximum: Any) -> bool:
    return maximum is not None and not pd.isna(maximum) and float(maximum) > 0


def shown(value: Any, maximum: Any) -> float:
    """The number as displayed: a count as is, a rate in percent."""
    if value is None or pd.isna(value):
        return math.nan
    return float(value) if is_count(maximum) else 100.0 * float(value)


def points(value: Any, maximum: Any) -> float:
    """Percent of the best possible score: rates x 100, counts / maximum x 100."""
    if value is None or pd.isna(value):
        return math.nan
    return 100.0 * float(value) / float(maximum) if is_count(maximum) else 100.0 * float(value)


def fmt_number(value: float, count: bool) -> str:
    if pd.isna(value):
        return "–"
    if count:
        return f"{value:,.0f}" if abs(value) >= 1 or value == 0 else f"{value:.1f}"
    return f"{value:.1f}"


def fmt_delta(delta: float, count: bool) -> str:
    """Signed difference with a real minus sign: "+10.1", "−5.0", "+12"."""
    if pd.isna(delta):
        return ""
    sign = "+" if delta >= 0 else "−"
    body = f"{abs(delta):,.0f}" if count and abs(delta) >= 1 else f"{abs(delta):.1f}"
    return f"{sign}{body}"


def fmt_duration(seconds: Any) -> str:
    if seconds is None or pd.isna(seconds) or seconds <= 0:
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_params(count: Any) -> str:
    if count is None or pd.isna(count) or count <= 0:
        return ""
    return f"{count / 1e6:,.1f} M" if count < 1e9 else f"{count / 1e9:.2f} B"


def short_hash(value: Any, n: int = 10) -> str:
    return "" if value is None or pd.isna(value) else str(value)[:n]


# ---------------------------------------------------------------- models


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


# ---------------------------------------------------------------- headline columns


@dataclass(frozen=True)
class Column:
    """One metric column of the overview: a metric of a task of a benchmark."""

    benchmark: str
    task: str
    metric: str
    label: str
    count: bool = False
    maximum: float | None = None  # when every model shares it

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.benchmark, self.task, self.metric)


def _task_sort(benchmark: str, task: str) -> tuple[Any, ...]:
    return (*_order(benchmark, BENCHMARK_ORDER), *_order(task, TASK_ORDER))


def metric_columns(
    metrics: pd.DataFrame,
    all_metrics: bool = False,
    task_types: dict[tuple[str, str], str] | None = None,
) -> list[Column]:
    """The overview's metric columns: headline metrics of every benchmark/task present (or
    every metric). The main number of each task (accuracy, hits) comes first, so that the
    target and the general benchmarks fit on one screen; then F1, pretest, by-position.
    ``task_types`` ((benchmark, task) -> YAML type, see :func:`task_types`) names what an
    accuracy is of (zero-shot, kNN, linear probe)."""
    if metrics.empty:
        return []
    columns = []
    groups = metrics.groupby(["benchmark", "task"], sort=False)
    for benchmark, task in sorted(groups.groups, key=lambda bt: _task_sort(*bt)):
        part = groups.get_group((benchmark, task))
        present = sorted(set(part["metric"]), key=lambda m: _order(m, METRIC_ORDER))
        if all_metrics:
            chosen = present
        else:
            wanted = HEADLINE_METRICS.get((benchmark, task), GENERIC_HEADLINE)
            chosen = [m for m in wanted if m in present]
            if not chosen and (benchmark, task) not in HEADLINE_METRICS:
                chosen = present[:1]
        for metric in chosen:
            maxima = part.loc[part["metric"] == metric, "maximum"].dropna().unique()
            count = len(maxima) > 0
            maximum = float(maxima[0]) if len(maxima) == 1 else None
            columns.append(
                Column(
                    benchmark,
                    task,
                    metric,
                    metric_label(
                        benchmark, task, metric, maximum, (task_types or {}).get((benchmark, task))
                    ),
                    count,
                    maximum,
                )
            )
    if not all_metrics:
        main = [c for c in columns if c.metric in MAIN_METRICS]
        columns = main + [c for c in columns if c.metric not in MAIN_METRICS]
    return columns


def find_column(columns: Iterable[Column], key: tuple[str, str, str]) -> Column | None:
    return next((c for c in columns if c.key == tuple(key)), None)


def default_target(metrics: pd.DataFrame) -> tuple[str, str, str] | None:
    """Target of the trade-off: footwear lace colour, else footwear type accuracy, else the
    first classification accuracy of a non-general benchmark, else the first metric."""
    if metrics.empty:
        return None
    keys = set(zip(metrics["benchmark"], metrics["task"], metrics["metric"], strict=True))
    for benchmark in ("footwear", "demo_footwear"):
        for task in ("lace_colour", "article_type"):
            if (benchmark, task, "acc@1") in keys:
                return benchmark, task, "acc@1"
    ranked = sorted(keys, key=lambda k: (*_task_sort(k[0], k[1]), *_order(k[2], METRIC_ORDER)))
    specific = [k for k in ranked if k[0] not in GENERAL_BENCHMARKS]
    for key in specific:
        if key[2] == "acc@1":
            return key
    return (specific or ranked)[0]


def general_columns(columns: Iterable[Column], target: tuple[str, str, str] | None = None):
    """Accuracy columns of the general benchmarks (FMNIST, DeepFashion, custom)."""
    return [
        c
        for c in columns
        if c.benchmark in GENERAL_BENCHMARKS and c.metric == "acc@1" and c.key != target
    ]


# ---------------------------------------------------------------- task records


def task_types(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(benchmark, task) -> the task's YAML type, as the runs recorded it (``extra.tasks``)."""
    out: dict[tuple[str, str], str] = {}
    for benchmark, extra in zip(runs.get("benchmark", []), runs.get("extra", []), strict=True):
        for task, info in ((extra or {}).get("tasks") or {}).items():
            if isinstance(info, dict) and info.get("type"):
                out.setdefault((benchmark, task), str(info["type"]))
    return out


def skipped_tasks(runs: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """(model name, benchmark, task) -> why the run did not score the task, e.g. a
    text task on precomputed image embeddings without a text encoder. From the runs shown
    (pass :func:`latest_runs`); their cells read "n/a", not blank and never zero."""
    out: dict[tuple[str, str, str], str] = {}
    for run in runs.to_dict("records"):
        for task, reason in ((run.get("extra") or {}).get("skipped_tasks") or {}).items():
            out[(run["model_name"], run["benchmark"], task)] = str(reason)
    return out


# ---------------------------------------------------------------- WiSE-FT curves


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


# ---------------------------------------------------------------- images


def allowed_roots(runs: pd.DataFrame) -> list[Path]:
    """Folders thumbnails may come from: the data roots recorded in runs (plus image roots a
    run recorded in ``extra["image_roots"]``). The filesystem root itself never counts."""
    roots: list[str] = [r for r in runs.get("data_root", pd.Series(dtype=object)) if r]
    for extra in runs.get("extra", pd.Series(dtype=object)):
        if isinstance(extra, dict):
            more = extra.get("image_roots") or []
            roots += [more] if isinstance(more, str) else [str(m) for m in more if m]
    out = []
    for root in dict.fromkeys(str(r) for r in roots if r and not pd.isna(r)):
        try:
            path = Path(root).expanduser().resolve()
        except (OSError, RuntimeError):  # pragma: no cover
            continue
        if len(path.parts) > 1:
            out.append(path)
    return out


def safe_image_path(image_path: Any, data_root: Any, roots: Sequence[Path | str]) -> Path | None:
    """The image file to show, or None when it is missing, not an image, or resolves (after
    ``..`` and symlinks) outside every recorded data root."""
    if image_path is None or (isinstance(image_path, float) and pd.isna(image_path)):
        return None
    text = str(image_path)
    if not text or "\x00" in text:
        return None
    path = Path(text).expanduser()
    if not path.is_absolute():
        if not data_root or (isinstance(data_root, float) and pd.isna(data_root)):
            return None
        path = Path(str(data_root)) / path
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    if resolved.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    for root in roots:
        try:
            inside = resolved.is_relative_to(Path(root).resolve())
        except (OSError, RuntimeError):  # pragma: no cover
            inside = False
        if inside and len(Path(root).resolve().parts) > 1:
            return resolved if resolved.is_file() else None
    return None


# ---------------------------------------------------------------- benchmark page


def classification_tasks(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    """(benchmark, task) pairs with classification metrics, in display order."""
    part = metrics[metrics["metric"].map(is_classification_metric)]
    pairs = set(zip(part["benchmark"], part["task"], strict=True))
    return sorted(pairs, key=lambda bt: _task_sort(*bt))


def retrieval_tasks(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    part = metrics[~metrics["metric"].map(is_classification_metric)]
    pairs = set(zip(part["benchmark"], part["task"], strict=True))
    return sorted(pairs, key=lambda bt: _task_sort(*bt))


def run_of(metrics: pd.DataFrame, name: str, benchmark: str) -> str | None:
    """The run shown for the model called ``name`` on ``benchmark``, or None."""
    part = metrics[(metrics["model_name"] == name) & (metrics["benchmark"] == benchmark)]
    return None if part.empty else str(part["run_id"].iloc[0])


def class_f1_table(class_metrics: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Per-class F1 (percent) side by side: one row per class, one column per model (run),
    plus the number of test items; worst classes of the first model first."""
    if class_metrics.empty:
        return pd.DataFrame(columns=["Class", "Items"])
    frame = class_metrics.assign(
        model=class_metrics["run_id"].map(labels), f1=lambda f: 100.0 * f["f1"]
    )
    wide = frame.pivot_table(index="class_name", columns="model", values="f1", aggfunc="first")
    order = [labels[r] for r in labels if labels[r] in wide.columns]
    wide = wide[order]
    support = frame.groupby("class_name")["support"].max()
    wide.insert(0, "Items", support.reindex(wide.index).astype("Int64"))
    wide = wide.sort_values(order[0]) if order else wide
    return wide.rename_axis(None, axis=1).rename_axis("Class").reset_index()


def class_f1_long(class_metrics: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Long format for a grouped bar chart: Class, Model, F1 (percent), Items."""
    return pd.DataFrame(
        {
            "Class": class_metrics["class_name"],
            "Model": class_metrics["run_id"].map(labels),
            "F1": 100.0 * class_metrics["f1"],
            "Items": class_metrics["support"],
        }
    )


def confusion_grid(cells: pd.DataFrame, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Every (true, predicted) pair with its count and the share of the true class (percent);
    cells the store left out (zero) are filled in."""
    labels = (
        list(classes)
        if classes is not None
        else sorted(set(cells["true_label"]) | set(cells["predicted_label"]))
    )
    full = pd.MultiIndex.from_product([labels, labels], names=["true_label", "predicted_label"])
    counts = (
        cells.groupby(["true_label", "predicted_label"])["count"]
        .sum()
        .reindex(full, fill_value=0)
        .reset_index()
    )
    totals = counts.groupby("true_label")["count"].transform("sum")
    counts["share"] = (100.0 * counts["count"] / totals.where(totals > 0)).fillna(0.0)
    return counts


def most_confused(cells: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    wrong = cells[cells["true_label"] != cells["predicted_label"]]
    return wrong.sort_values("count", ascending=False).head(n).reset_index(drop=True)


# ---------------------------------------------------------------- retrieval page


def query_label(query_id: Any, query_text: Any) -> str:
    text = "" if query_text is None or pd.isna(query_text) else str(query_text)
    return f"{query_id} — {text}" if text and text != str(query_id) else str(query_id)


def query_score(rows: pd.DataFrame, k: int | None = None) -> dict[str, float]:
    """Hits and position-weighted points of one query's ranked list (as the IR scores count
    them: K - r + 1 weights scaled to at most K)."""
    if rows.empty:
        return {"hits": 0, "by_position": 0.0, "k": k or 0}
    k = int(k or rows["rank"].max())
    top = rows[rows["rank"] <= k]
    relevant = top.loc[top["relevant"].astype(bool), "rank"].astype(int)
    weights = k * (k + 1) / 2.0
    return {
        "hits": len(relevant),
        "by_position": float(k * sum(k - r + 1 for r in relevant) / weights),
        "k": k,
    }


def query_comparison(a: pd.DataFrame, b: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    """Per-query relevant hits of two runs side by side (from ``store.queries`` frames)."""
    left = a[["query_id", "query_text", "n_relevant"]].rename(columns={"n_relevant": "a"})
    right = b[["query_id", "n_relevant"]].rename(columns={"n_relevant": "b"})
    both = left.merge(right, on="query_id", how="outer")
    out = pd.DataFrame(
        {"Id": both["query_id"], "Query": both["query_text"], f"Hits: {label_a}": both["a"]}
    )
    if label_a != label_b:
        out[f"Hits: {label_b}"] = both["b"]
        out["Difference"] = both["b"] - both["a"]
    return out


# ---------------------------------------------------------------- charts (Altair specs)


def tradeoff_chart(
    points_frame: pd.DataFrame, target_title: str, general_title: str, colour_title: str = ""
):
    """Gain on the target (y) against change on the general benchmarks (x), one point per
    model, WiSE-FT alphas of one fine-tune joined as a line; zero lines mark the baseline.
    A ``colour`` column (e.g. a hyper-parameter's value, titled ``colour_title``) colours
    the points."""
    import altair as alt

    singles = points_frame[points_frame["curve"].isna()]
    curves = points_frame[points_frame["curve"].notna()]
    x = alt.X(
        "general_change:Q",
        title=f"Change on {general_title} (pts vs baseline)",
        scale=alt.Scale(zero=False, padding=20),
    )
    y = alt.Y(
        "target_gain:Q",
        title=f"Gain on {target_title} (pts vs baseline)",
        scale=alt.Scale(zero=False, padding=20),
    )
    tooltip = [
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("kind:N", title="Type"),
        alt.Tooltip("target_gain:Q", title="Target gain (pts)", format="+.1f"),
        alt.Tooltip("general_change:Q", title="General change (pts)", format="+.1f"),
    ]
    zero = pd.DataFrame({"v": [0.0]})
    layers = [
        alt.Chart(zero).mark_rule(color="#9aa0a6", strokeDash=[4, 4]).encode(x="v:Q"),
        alt.Chart(zero).mark_rule(color="#9aa0a6", strokeDash=[4, 4]).encode(y="v:Q"),
    ]
    if not curves.empty:
        layers.append(
            alt.Chart(curves)
            .mark_line(point=True, strokeWidth=2)
            .encode(
                x=x,
                y=y,
                color=alt.Color("curve:N", title="WiSE-FT curve"),
                order="alpha:Q",
                tooltip=[*tooltip, alt.Tooltip("alpha:Q", title="α")],
            )
        )
        labels = curves.assign(text=curves["alpha"].map(lambda a: f"α={a:g}"))
        layers.append(
            alt.Chart(labels)
            .mark_text(dy=-10, fontSize=11, color="#555")
            .encode(x=x, y=y, text="text:N")
        )
    layers.append(
        alt.Chart(singles)
        .mark_circle(size=140)
        .encode(
            x=x,
            y=y,
            shape=alt.Shape("kind:N", title="Type"),
            color=alt.Color("colour:N", title=colour_title)
            if "colour" in singles
            else alt.value("#1f6feb"),
            tooltip=[*tooltip, alt.Tooltip("colour:N", title=colour_title)]
            if "colour" in singles
            else tooltip,
        )
    )
    layers.append(
        alt.Chart(singles)
        .mark_text(align="left", dx=9, dy=4, fontSize=12)
        .encode(x=x, y=y, text="model:N")
    )
    return alt.layer(*layers).properties(height=420)


def class_f1_chart(long: pd.DataFrame):
    """Grouped horizontal bars: per-class F1 of each selected model."""
    import altair as alt

    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("Class:N", sort="ascending", title=None),
            yOffset="Model:N",
            x=alt.X("F1:Q", title="F1 (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("Model:N", legend=alt.Legend(orient="top")),
            tooltip=["Class", "Model", alt.Tooltip("F1:Q", format=".1f"), "Items"],
        )
        .properties(height=alt.Step(14))
    )


def confusion_chart(grid: pd.DataFrame):
    """Heatmap of a confusion matrix: share of each true class (row) per predicted class."""
    import altair as alt

    base = alt.Chart(grid).encode(
        x=alt.X("predicted_label:N", title="Predicted", axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("true_label:N", title="True class"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("share:Q", title="% of class", scale=alt.Scale(scheme="blues")),
        tooltip=[
            alt.Tooltip("true_label:N", title="True"),
            alt.Tooltip("predicted_label:N", title="Predicted"),
            "count:Q",
            alt.Tooltip("share:Q", title="% of class", format=".1f"),
        ],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.condition("datum.count > 0", "count:Q", alt.value("")),
        color=alt.condition("datum.share > 50", alt.value("white"), alt.value("black")),
    )
    n = max(grid["true_label"].nunique(), 1)
    return (rect + text).properties(height=min(60 + 28 * n, 900))
