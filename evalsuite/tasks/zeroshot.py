"""Zero-shot classification and the pretest score of one label field.

Class embedding = normalised mean of the normalised prompt-template embeddings (CLIP's prompt
ensembling); items whose label is not among the benchmark's classes are not scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalsuite.data.items import Item
from evalsuite.errors import SpecError
from evalsuite.metrics.bootstrap import bootstrap_ci, classification_bootstrap
from evalsuite.metrics.zeroshot import (
    ClassificationResult,
    class_embeddings,
    classification_metrics,
    pretest_points,
    similarity_logits,
    true_class_rank,
)
from evalsuite.results import ClassMetric, ConfusionCell, Prediction
from evalsuite.spec import spec_location
from evalsuite.spec_tasks import ZeroShotTask
from evalsuite.tasks.base import TaskContext, TaskOutput, metric, warn_cutoff


def class_text_embeddings(
    task: ZeroShotTask, prompt_names: list[str], ctx: TaskContext
) -> np.ndarray:
    """(C, D) ensembled class embeddings, every prompt encoded through the engine's cache."""
    prompts = [p for name in prompt_names for p in task.prompts(name)]
    embedded = ctx.engine.embed_texts(prompts)
    return class_embeddings(embedded.reshape(len(prompt_names), len(task.templates), -1))


def run_zeroshot(task: ZeroShotTask, ctx: TaskContext) -> TaskOutput:
    labels = [item.fields.get(task.field, "") for item in ctx.items]
    try:
        names = task.class_names(labels)  # label value -> prompt name
    except SpecError as err:  # e.g. a listed class without items: name the YAML file
        raise SpecError(f"{spec_location(ctx.spec)}: {err}") from None
    classes = list(names)
    index = {label: i for i, label in enumerate(classes)}
    rows = np.array([i for i, label in enumerate(labels) if label in index], dtype=np.int64)
    if len(rows) == 0:  # else the metrics would fail on an empty array, naming nothing
        wanted = ", ".join(classes) or "none left after min_class_count"
        present = ", ".join(sorted(set(labels) - {""})) or "(none)"
        raise SpecError(
            f"{spec_location(ctx.spec)}: task {task.name!r}: no scored item has a {task.field} "
            f"among the classes ({wanted}); values present: {present}"
        )
    y_true = np.array([index[labels[i]] for i in rows], dtype=np.int64)
    scores = similarity_logits(
        ctx.embeddings.vectors[rows], class_text_embeddings(task, list(names.values()), ctx)
    )
    result = classification_metrics(y_true, scores, classes)
    ranks = true_class_rank(y_true, scores)
    out = TaskOutput(
        extra={
            "n_scored": len(rows),
            "n_classes": len(classes),
            "n_unlabelled_or_other_class": len(labels) - len(rows),
        }
    )
    where = spec_location(ctx.spec)
    out.extra["pretest_k"] = pretest_k(task, len(classes), where)
    out.extra["k_values"] = accuracy_cutoffs(task, len(classes), where)
    out.metrics = _headline(task, y_true, result, ranks, scores, ctx, out.extra)
    add_classification_rows(
        out, task.name, [ctx.items[r] for r in rows], y_true, result, scores, ranks
    )
    return out


def add_classification_rows(
    out: TaskOutput,
    task_name: str,
    items: Sequence[Item],
    y_true: np.ndarray,
    result: ClassificationResult,
    scores: np.ndarray,
    ranks: np.ndarray,
) -> None:
    """Per-class scores, confusion cells and per-item predictions of a classification task
    (zero-shot or a probe: they land in the same tables, alike)."""
    classes = result.class_names
    out.class_metrics = [
        ClassMetric(
            task_name,
            c,
            float(result.precision[i]),
            float(result.recall[i]),
            float(result.f1[i]),
            int(result.support[i]),
        )
        for i, c in enumerate(classes)
    ]
    true_idx, pred_idx = np.nonzero(result.confusion)
    out.confusion = [
        ConfusionCell(task_name, classes[t], classes[p], int(result.confusion[t, p]))
        for t, p in zip(true_idx, pred_idx, strict=True)
    ]
    out.predictions = _predictions(task_name, items, y_true, result, scores, ranks)


def _headline(
    task: ZeroShotTask,
    y_true: np.ndarray,
    result,
    ranks: np.ndarray,
    scores: np.ndarray,
    ctx: TaskContext,
    applied: dict,
) -> list:
    """``applied``: the cutoffs checked against the data (``k_values``, ``pretest_k``)."""
    n_classes = len(result.class_names)
    intervals = classification_bootstrap(
        y_true, result.y_pred, n_classes, ctx.n_bootstrap, seed=ctx.seed
    )
    metrics = [metric(task.name, "acc@1", result.acc1, intervals["accuracy"])]
    for k in applied["k_values"][1:]:  # after acc@1, above
        correct = (ranks <= k).astype(float)
        metrics.append(
            metric(
                task.name,
                f"acc@{k}",
                correct.mean(),
                bootstrap_ci(correct, n_resamples=ctx.n_bootstrap, seed=ctx.seed),
            )
        )
    metrics += [
        metric(
            task.name, "balanced_accuracy", result.balanced_accuracy, intervals["balanced_accuracy"]
        ),
        metric(task.name, "f1_macro", result.f1_macro, intervals["f1_macro"]),
        metric(task.name, "f1_weighted", result.f1_weighted, intervals["f1_weighted"]),
    ]
    k_pretest = applied["pretest_k"]
    points = pretest_points(y_true, scores, k=k_pretest)
    metrics.append(
        metric(
            task.name,
            "pretest",
            points.sum(),
            bootstrap_ci(points, np.sum, ctx.n_bootstrap, seed=ctx.seed),
            maximum=k_pretest * len(points),  # the judge reads K back from it
        )
    )
    return metrics


def pretest_k(task: ZeroShotTask, n_classes: int, where: str) -> int:
    """The pretest's K over ``n_classes``: with K > C every item earns at least K - C + 1
    points whatever the model does, so K is clipped to C (the cutoff rule, with a warning)."""
    if task.pretest_k <= n_classes:
        return task.pretest_k
    warn_cutoff(
        where, task, "pretest_k", f"clipped to {n_classes}",
        f"only {n_classes} classes are scored (a larger K gives every item points whatever "
        "the model ranks)",
    )  # fmt: skip
    return n_classes


def accuracy_cutoffs(task: ZeroShotTask, n_classes: int, where: str) -> list[int]:
    """The k of the acc@k reported over ``n_classes``, 1 first. acc@k for k >= C is 1
    whatever the model ranks, so those k are left out (the cutoff rule, with a warning), not
    clipped: acc@C in place of acc@5 would be another, trivial metric."""
    kept = sorted({1, *(k for k in task.k_values if k < n_classes)})
    left_out = sorted(set(task.k_values) - set(kept))
    if left_out:
        warn_cutoff(
            where, task, "k_values",
            f"reduced to {kept} ({', '.join(f'acc@{k}' for k in left_out)} left out)",
            f"only {n_classes} classes are scored, and acc@k for k >= {n_classes} is 1 "
            "whatever the model ranks",
        )  # fmt: skip
    return kept


def _predictions(
    task_name: str,
    items: Sequence[Item],
    y_true: np.ndarray,
    result: ClassificationResult,
    scores: np.ndarray,
    ranks: np.ndarray,
) -> list[Prediction]:
    y_pred, classes = result.y_pred, result.class_names
    top = scores[np.arange(len(items)), y_pred]
    return [
        Prediction(
            task=task_name,
            item_id=item.id,
            true_label=classes[y_true[j]],
            predicted_label=classes[y_pred[j]],
            correct=bool(y_true[j] == y_pred[j]),
            score=float(top[j]),
            true_rank=int(ranks[j]),
            image_path=str(item.path) if item.path else None,
        )
        for j, item in enumerate(items)
    ]
