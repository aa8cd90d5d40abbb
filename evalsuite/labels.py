"""What results are called and which of them matter: the one place every surface (the score
command's summary, compare and the gate, the report, the seed table, the leaderboard) asks.

Benchmark knowledge is data, as lm-evaluation-harness keeps it in the task YAML: each
``benchmarks/<name>/<name>.yaml`` may give its display ``label``, its ``role`` (``target``:
what fine-tuning aims at; ``general``: what it may cost), its ``display_order``, the
``target_tasks`` of the leaderboard's trade-off, and per task a ``label``, the ``headline``
metrics shown by default and the ``gated`` metrics the gate judges. What a benchmark leaves
unset, and everything not tied to one benchmark (what ``f1_macro`` is called, which metrics a
zero-shot task usually leads with), is in the tables below.

A benchmark is looked up by name in the benchmarks folder (``$EVALSUITE_BENCHMARKS_DIR``),
then among the shipped ones; a name with no YAML (a results database from elsewhere) gets
the defaults. The YAML read is the current one, not the version a run was scored with: the
fields here are not part of the benchmark's hash, so editing them re-labels old runs too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from evalsuite.spec import (
    DEFAULT_BENCHMARKS_DIR,
    BenchmarkSpec,
    get_benchmarks_dir,
    load_benchmark_file,
)

# ---------------------------------------------------------------- metric names

# Plain-language names, for people who do not know the metric's code name.
METRIC_LABELS: dict[str, str] = {
    "acc@1": "Zero-shot accuracy",
    "acc@3": "Top-3 accuracy",
    "acc@5": "Top-5 accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "f1_macro": "F1 macro",
    "f1_macro_present": "F1 macro (classes present)",
    "f1_weighted": "F1 weighted",
    "pretest": "Pretest score",
    "ir_hits": "IR score (hits)",
    "ir_by_position": "IR score by position",
    "MRR": "Mean reciprocal rank",
    "P@1": "Precision@1",
    "P@5": "Precision@5",
    "P@10": "Precision@10",
    "Recall@1": "Recall@1",
    "Recall@5": "Recall@5",
    "Recall@10": "Recall@10",
    "NDCG@10": "NDCG@10",
    "MAP@10": "MAP@10",
    "mean_pairwise_similarity": "Mean pairwise similarity",
    "effective_rank": "Effective rank",
}
# After a task's name ("Text search hits / 390"), where the full name would repeat "IR".
SHORT_METRIC_LABELS: dict[str, str] = {
    "ir_hits": "hits",
    "ir_by_position": "by-position score",
    "MRR": "MRR",
}
# acc@1 of a probe is not zero-shot: the task's YAML type names what the accuracy is of.
ACCURACY_LABELS: dict[str, str] = {"knn": "kNN accuracy", "linear_probe": "Linear-probe accuracy"}
_LABELS_LOWER = {name.lower(): label for name, label in METRIC_LABELS.items()}
_PATTERN_LABELS = (  # metric families not listed above, e.g. acc@7 or NDCG@5
    (re.compile(r"acc@(\d+)$", re.I), "Top-{} accuracy"),
    (re.compile(r"p@(\d+)$", re.I), "Precision@{}"),
    (re.compile(r"recall@(\d+)$", re.I), "Recall@{}"),
    (re.compile(r"ndcg@(\d+)$", re.I), "NDCG@{}"),
    (re.compile(r"map@(\d+)$", re.I), "MAP@{}"),
    (re.compile(r"nn_agreement:(.+)$", re.I), "NN label agreement ({})"),
)
# Scores of classifying items (a column title puts the task after them, in brackets).
CLASSIFICATION_METRICS = frozenset(
    {"balanced_accuracy", "pretest"} | {m for m in METRIC_LABELS if m.startswith(("acc@", "f1_"))}
)

# ---------------------------------------------------------------- which metrics matter

# Task kinds: the ``type`` of a benchmark YAML task -> the kind the defaults are keyed by.
TASK_KINDS: dict[str, str] = {
    "zeroshot": "zeroshot",
    "text_to_image": "retrieval",
    "image_to_image": "retrieval",
    "retrieval": "retrieval",
}
# The usual metrics of each kind, in display order: first in a task's full table.
_KIND_METRICS: tuple[tuple[str, str], ...] = (
    ("zeroshot", "acc@1"),
    ("zeroshot", "f1_macro"),
    ("zeroshot", "f1_weighted"),
    ("zeroshot", "pretest"),
    ("retrieval", "ir_hits"),
    ("retrieval", "ir_by_position"),
    ("retrieval", "MRR"),
    ("retrieval", "Recall@10"),
)
# The first of each kind is the task's primary score (what one number per task shows).
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "zeroshot": ("acc@1", "pretest"),
    "retrieval": ("ir_hits", "ir_by_position"),
}
# A task's headline when its YAML names none: shown by default where room is short (the
# leaderboard), else its first metric.
DEFAULT_HEADLINE = ("acc@1", "ir_hits", "ir_by_position")
# What the gate judges when a task's YAML names nothing (wherever the task has them).
DEFAULT_GATED = ("acc@1", "f1_macro", "f1_weighted", "pretest", "ir_hits", "ir_by_position")
# The score command's summary after each run (every benchmark; the rest is in the database).
SUMMARY_METRICS = frozenset(
    {"acc@1", "acc@5", "f1_macro", "f1_weighted", "balanced_accuracy", "pretest", "ir_hits",
     "ir_by_position", "MRR", "Recall@10", "mean_pairwise_similarity", "effective_rank"}
)  # fmt: skip

# ---------------------------------------------------------------- what the YAML says


@dataclass(frozen=True)
class TaskLabels:
    label: str | None = None
    headline: tuple[str, ...] | None = None
    gated: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BenchmarkLabels:
    """The display fields of one benchmark YAML (defaults for a benchmark with none)."""

    label: str | None = None
    role: str = "target"
    display_order: int | None = None
    target_tasks: tuple[str, ...] = ()
    tasks: dict[str, TaskLabels] = field(default_factory=dict)


_NO_YAML = BenchmarkLabels()
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")  # a benchmark name (never a path)


def _labels_of_spec(spec: BenchmarkSpec) -> BenchmarkLabels:
    tasks = {
        task.name: TaskLabels(
            # a task's label names its own benchmark's data: an including file (the demo)
            # must not read as the original
            None if spec.tasks_included else task.label,
            None if task.headline is None else tuple(task.headline),
            None if task.gated is None else tuple(task.gated),
        )
        for task in spec.tasks
    }
    return BenchmarkLabels(
        spec.label, spec.role, spec.display_order, tuple(spec.target_tasks), tasks
    )


@lru_cache(maxsize=256)
def _read(path: str, mtime_ns: int) -> BenchmarkLabels:
    return _labels_of_spec(load_benchmark_file(Path(path)))


def _yaml_file(benchmark: str) -> Path | None:
    for directory in dict.fromkeys((get_benchmarks_dir(), DEFAULT_BENCHMARKS_DIR)):
        preferred = directory / benchmark / f"{benchmark}.yaml"
        if preferred.is_file():
            return preferred
        found = sorted(directory.glob(f"*/{benchmark}.yaml"))
        if found:
            return found[0]
    return None


def benchmark_labels(benchmark: str) -> BenchmarkLabels:
    """What ``benchmark``'s YAML says of its display (the defaults when it has none). An
    invalid YAML raises its SpecError, naming the file."""
    path = _yaml_file(benchmark) if _NAME.fullmatch(benchmark) else None
    if path is None:
        return _NO_YAML
    return _read(str(path.resolve()), path.stat().st_mtime_ns)


def _task(benchmark: str, task: str) -> TaskLabels:
    return benchmark_labels(benchmark).tasks.get(task, TaskLabels())


# ---------------------------------------------------------------- benchmarks


def benchmark_label(benchmark: str) -> str:
    """``footwear`` -> ``Footwear``; the name itself when the YAML gives no label."""
    return benchmark_labels(benchmark).label or benchmark


def is_general(benchmark: str) -> bool:
    """A benchmark of what fine-tuning may cost (``role: general``), not what it aims at."""
    return benchmark_labels(benchmark).role == "general"


def benchmark_order(benchmark: str) -> tuple[int, int, str]:
    """Sort key: by ``display_order``, benchmarks without one after, by name."""
    order = benchmark_labels(benchmark).display_order
    return (0, order, benchmark) if order is not None else (1, 0, benchmark)


def target_benchmark(benchmarks: Iterable[str]) -> str | None:
    """The first ``role: target`` benchmark in display order, or None."""
    targets = [b for b in set(benchmarks) if not is_general(b)]
    return min(targets, key=benchmark_order) if targets else None


def target_tasks(benchmark: str) -> tuple[str, ...]:
    """The tasks the leaderboard's trade-off aims at by default, in preference order."""
    return benchmark_labels(benchmark).target_tasks


# ---------------------------------------------------------------- tasks


def task_words(task: str) -> str:
    """A task under its benchmark's name: ``article_type`` -> ``article type``."""
    return task.replace("_", " ")


def task_label(benchmark: str, task: str) -> str:
    """A task standing alone: its YAML ``label`` ("footwear type", "Text search"), else the
    benchmark's label, with the task's name unless that only says "label" or "class"."""
    label = _task(benchmark, task).label
    if label:
        return label
    if task in ("label", "category", "class"):
        return benchmark_label(benchmark)
    return f"{benchmark_label(benchmark)} {task_words(task)}"


def task_kind(metric_names: object) -> str | None:
    """``zeroshot`` or ``retrieval`` from the metrics a task produced (the metrics table has
    no task type), or None when neither family is present."""
    names = {str(name).lower() for name in metric_names}  # type: ignore[union-attr]
    if names & {"acc@1", "pretest", "f1_macro"}:
        return "zeroshot"
    if names & {"ir_hits", "ir_by_position", "mrr"}:
        return "retrieval"
    return None


def headline_metrics(task_type: str | None = None) -> tuple[tuple[str, str], ...]:
    """The usual ``(task kind, metric)`` pairs in display order, of one task type (a YAML
    ``type`` such as ``text_to_image``, or a kind: ``zeroshot`` / ``retrieval``) or all."""
    if task_type is None:
        return _KIND_METRICS
    kind = TASK_KINDS.get(task_type, task_type)
    return tuple(pair for pair in _KIND_METRICS if pair[0] == kind)


def metric_order(benchmark: str, task: str, kind: str | None) -> tuple[str, ...]:
    """The metrics a task's full table shows first, in order: its YAML headline, then the
    usual ones of its kind (the rest follow by name)."""
    headline = _task(benchmark, task).headline or ()
    usual = [m for _, m in headline_metrics(kind)] if kind else []
    return tuple(dict.fromkeys([*headline, *usual]))


def shown_by_default(benchmark: str, task: str, present: Iterable[str]) -> list[str]:
    """The task's metrics shown when room is short: its YAML headline (none when it is []),
    else the default headline, else its first metric; ``present`` in display order."""
    present = list(present)
    headline = _task(benchmark, task).headline
    chosen = [m for m in (DEFAULT_HEADLINE if headline is None else headline) if m in present]
    return chosen if chosen or headline is not None else present[:1]


def yaml_gated(benchmark: str, task: str) -> tuple[str, ...] | None:
    """The task's ``gated:`` list as its YAML writes it; None where the YAML sets none."""
    return _task(benchmark, task).gated


def gated_metrics(benchmark: str, task: str) -> tuple[str, ...]:
    """The metrics of the task the gate judges: its YAML ``gated``, else the default."""
    gated = _task(benchmark, task).gated
    return DEFAULT_GATED if gated is None else gated


# ---------------------------------------------------------------- metrics


def metric_label(name: str, task_type: str | None = None) -> str:
    """Plain-language name of a metric (``acc@1`` -> ``Zero-shot accuracy``, or ``kNN
    accuracy`` with ``task_type="knn"``); unknown names are returned as they are."""
    if name == "acc@1" and task_type in ACCURACY_LABELS:
        return ACCURACY_LABELS[task_type]
    label = _LABELS_LOWER.get(name.lower())
    if label:
        return label
    for pattern, template in _PATTERN_LABELS:
        match = pattern.match(name)
        if match:
            return template.format(match.group(1))
    return name


def metric_words(name: str) -> str:
    """The metric's name where a task's name comes first (``hits``, ``recall@10``): the
    short form where there is one; a classification score's plain name (its task follows
    it, in brackets); else the plain name in lower case, unless it starts with an acronym."""
    if name in SHORT_METRIC_LABELS:
        return SHORT_METRIC_LABELS[name]
    label = metric_label(name)
    if is_classification_metric(name) or label[:2].isupper():
        return label
    return label[:1].lower() + label[1:]


def is_classification_metric(name: str) -> bool:
    return name in CLASSIFICATION_METRICS or name.startswith(("acc@", "f1_"))
