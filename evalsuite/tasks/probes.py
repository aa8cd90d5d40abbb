"""Few-shot probes of the image embeddings: kNN classification and a linear probe.

Where the training and test items come from is the task's ``protocol``:

- ``leave_one_out`` (kNN only): every scored item, classified by the other scored items;
- ``split``: training items from the dataset split ``splits.train`` (and ``splits.val`` for
  choosing C), tested on ``splits.test``; the runner embeds those splits with the same engine;
- ``holdout``: a seeded split of the scored items stratified by the task's field (for data
  with one split only, such as the Fashion-MNIST test set or a set of precomputed vectors).

Classes are the label values of the training items (with at least ``min_class_count`` of
them), sorted; test items of other labels are not scored, as in zero-shot. Results go to the
same tables as zero-shot, with the same bootstrap intervals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from evalsuite.data.items import Item
from evalsuite.data.splits import assign_splits  # holdout: the prepare step's splitter
from evalsuite.errors import SpecError
from evalsuite.metrics.bootstrap import classification_bootstrap
from evalsuite.metrics.probes import knn_scores, linear_probe
from evalsuite.metrics.zeroshot import classification_metrics, true_class_rank
from evalsuite.results import MetricValue
from evalsuite.spec import spec_location
from evalsuite.spec_tasks import KnnTask, LinearProbeTask
from evalsuite.tasks.base import (
    SplitData,
    TaskContext,
    TaskOutput,
    metric,
    one_blas_thread,
    warn_cutoff,
)
from evalsuite.tasks.zeroshot import add_classification_rows


@dataclass
class _Labelled:
    """Items of one role (train, val, test) with a class, their vectors and class indices."""

    items: list[Item]
    vectors: np.ndarray
    y: np.ndarray


@dataclass
class _Sets:
    classes: list[str]
    train: _Labelled
    val: _Labelled
    test: _Labelled
    n_other: int  # test items left out: no label, or a label that is not a class


def _split_roles(task: KnnTask | LinearProbeTask, ctx: TaskContext) -> dict[str, SplitData]:
    here = SplitData(ctx.items, ctx.embeddings.vectors)
    if task.protocol == "leave_one_out":
        return {"train": here, "val": SplitData([], here.vectors[:0]), "test": here}
    if task.protocol == "split":
        names = {"train": task.splits.train, "val": task.splits.val, "test": task.splits.test}
        return {role: ctx.splits[name] for role, name in names.items()}
    rows = [i for i, item in enumerate(ctx.items) if item.fields.get(task.field)]
    ids = [ctx.items[i].id for i in rows]
    labels = [ctx.items[i].fields[task.field] for i in rows]
    holdout = task.holdout
    role_of = assign_splits(ids, labels, holdout.seed, holdout.test_size, holdout.val_size)
    out = {}
    for role in ("train", "val", "test"):
        chosen = [r for r, i in zip(rows, ids, strict=True) if role_of[i] == role]
        out[role] = SplitData([ctx.items[r] for r in chosen], here.vectors[chosen])
    return out


def _labelled(data: SplitData, field: str, index: dict[str, int]) -> tuple[_Labelled, int]:
    labels = [item.fields.get(field, "") for item in data.items]
    rows = [i for i, label in enumerate(labels) if label in index]
    y = np.array([index[labels[i]] for i in rows], dtype=np.int64)
    return _Labelled([data.items[i] for i in rows], data.vectors[rows], y), len(labels) - len(rows)


def probe_sets(task: KnnTask | LinearProbeTask, ctx: TaskContext) -> _Sets:
    """Training, validation and test items of the task's protocol, with class indices."""
    roles = _split_roles(task, ctx)
    counts = Counter(item.fields.get(task.field, "") for item in roles["train"].items)
    counts.pop("", None)
    floor = task.min_class_count or 1
    classes = sorted(label for label, n in counts.items() if n >= floor)
    where = spec_location(ctx.spec)
    if not classes:
        raise SpecError(
            f"{where}: task {task.name!r}: no class of {task.field!r} has {floor} or more "
            f"training items ({len(roles['train'].items)} training items, protocol {task.protocol})"
        )
    index = {label: i for i, label in enumerate(classes)}
    train, _ = _labelled(roles["train"], task.field, index)
    val, _ = _labelled(roles["val"], task.field, index)
    test, n_other = _labelled(roles["test"], task.field, index)
    if len(test.items) == 0:
        raise SpecError(
            f"{where}: task {task.name!r}: no test item has one of the training classes"
        )
    return _Sets(classes, train, val, test, n_other)


def _extra(task: KnnTask | LinearProbeTask, sets: _Sets) -> dict[str, object]:
    return {
        "protocol": task.protocol,
        "n_train": len(sets.train.items),
        "n_val": len(sets.val.items),
        "n_scored": len(sets.test.items),
        "n_classes": len(sets.classes),
        "n_unlabelled_or_other_class": sets.n_other,
    }


def _output(
    task: KnnTask | LinearProbeTask, sets: _Sets, scores: np.ndarray, ctx: TaskContext
) -> TaskOutput:
    # The classes are the training set's; one with no test item that is never predicted has
    # no F1 (0 / 0) and would drag F1 macro down as a zero. Score the classes the test split
    # has or the probe predicts; the others are listed in extra. Predictions are unchanged:
    # a dropped class is never the argmax.
    predicted = scores.argmax(axis=1)
    keep = np.flatnonzero(
        np.bincount(sets.test.y, minlength=len(sets.classes))
        + np.bincount(predicted, minlength=len(sets.classes))
    )
    new_index = np.full(len(sets.classes), -1)
    new_index[keep] = np.arange(len(keep))
    y_true, scores = new_index[sets.test.y], scores[:, keep]
    classes = [sets.classes[i] for i in keep]
    result = classification_metrics(y_true, scores, classes)
    ranks = true_class_rank(y_true, scores)
    out = TaskOutput(extra=_extra(task, sets))
    out.extra["n_classes_scored"] = len(classes)
    out.extra["classes_not_in_test"] = sorted(set(sets.classes) - set(classes))
    out.metrics = _headline(task.name, y_true, result, ctx)
    add_classification_rows(out, task.name, sets.test.items, y_true, result, scores, ranks)
    return out


def _headline(name: str, y_true: np.ndarray, result, ctx: TaskContext) -> list[MetricValue]:
    """acc@1, balanced accuracy and F1 with the zero-shot task's bootstrap intervals (top-k
    and the pretest score are left out: kNN votes leave most classes tied at zero)."""
    intervals = classification_bootstrap(
        y_true, result.y_pred, len(result.class_names), ctx.n_bootstrap, seed=ctx.seed
    )
    return [
        metric(name, "acc@1", result.acc1, intervals["accuracy"]),
        metric(name, "balanced_accuracy", result.balanced_accuracy, intervals["balanced_accuracy"]),
        metric(name, "f1_macro", result.f1_macro, intervals["f1_macro"]),
        metric(name, "f1_weighted", result.f1_weighted, intervals["f1_weighted"]),
    ]


def run_knn(task: KnnTask, ctx: TaskContext) -> TaskOutput:
    sets = probe_sets(task, ctx)
    k = knn_k(task, len(sets.train.items), spec_location(ctx.spec))
    try:
        scores = knn_scores(
            sets.train.vectors,
            sets.train.y,
            sets.test.vectors,
            len(sets.classes),
            k=k,
            weighting=task.weighting,
            temperature=task.temperature,
            exclude_self=task.protocol == "leave_one_out",
        )
    except ValueError as exc:  # e.g. a single training item to leave out
        raise SpecError(f"{spec_location(ctx.spec)}: task {task.name!r}: {exc}") from None
    out = _output(task, sets, scores, ctx)
    out.extra.update(k=k, weighting=task.weighting)
    return out


def knn_k(task: KnnTask, n_train: int, where: str) -> int:
    """The k applied: at most the training items that vote for a query (leave-one-out: all
    but the query). More voters than exist can only mean all of them: k is clipped to them
    (the cutoff rule, with a warning)."""
    voters = n_train - int(task.protocol == "leave_one_out")
    if task.k <= voters or voters < 1:  # no voter at all: knn_scores says so
        return task.k
    how = (
        f"{n_train} items, leave_one_out: never the query itself"
        if task.protocol == "leave_one_out"
        else f"protocol {task.protocol}"
    )
    warn_cutoff(
        where, task, "k", f"clipped to {voters}",
        f"only {voters} training items vote for each query ({how})",
    )  # fmt: skip
    return voters


def run_linear_probe(task: LinearProbeTask, ctx: TaskContext) -> TaskOutput:
    sets = probe_sets(task, ctx)
    try:
        with one_blas_thread():
            probe = linear_probe(
                sets.train.vectors,
                sets.train.y,
                sets.test.vectors,
                len(sets.classes),
                val=sets.val.vectors,
                val_labels=sets.val.y,
                c_grid=task.c_grid,
                max_iter=task.max_iter,
                seed=ctx.seed,
            )
    except ValueError as exc:
        raise SpecError(f"{spec_location(ctx.spec)}: task {task.name!r}: {exc}") from None
    out = _output(task, sets, probe.scores, ctx)
    out.extra.update(c=probe.c, validation_accuracy=_by_c(probe.validation_accuracy))
    return out


def _by_c(accuracy: dict[float, float]) -> dict[str, float]:
    return {f"{c:g}": value for c, value in sorted(accuracy.items())}
