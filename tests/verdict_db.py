"""A results database built for verdict tests: three models whose per-item and per-query
results are drawn, and whose stored metrics are computed from those results with the
suite's own metric functions (so the stored values and the units agree, as in a real run).

- ``shoes`` (data hash A): ``kind`` (zero-shot, 400 items, 4 classes): the candidate loses
  about 8 points of accuracy (a significant regression); ``lace`` (zero-shot, 200 items):
  it gains about 20 points; ``search`` (text->image, 40 queries, top 10): the same relevance
  for both but four queries (a tie).
- ``general``: ``type`` (zero-shot, 300 items) scored for base and tuned on data A', for
  ``other`` on data B (not comparable with the base).

``base`` is marked as the baseline; ``tuned`` names it as its base model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, f1_score

from evalsuite import store
from evalsuite.metrics.bootstrap import bootstrap_ci, classification_bootstrap
from evalsuite.metrics.retrieval import retrieval_metrics
from evalsuite.results import MetricValue, ModelInfo, Prediction, RetrievedItem, RunResult
from evalsuite.tasks.retrieval import _query_values

T0 = datetime(2026, 11, 1, 9, 0, 0)
BASE = ModelInfo("fp-base".ljust(20, "0"), "base", "hf:base/clip", "hf")
TUNED = ModelInfo(
    "fp-tuned".ljust(20, "0"), "tuned", "ckpt/tuned", "hf",
    base_model="hf:base/clip", base_fingerprint=BASE.fingerprint,
)  # fmt: skip
OTHER = ModelInfo("fp-other".ljust(20, "0"), "other", "hf:other/clip", "hf")


def classification(
    task: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, rng: np.random.Generator
) -> tuple[list[MetricValue], list[Prediction]]:
    """Stored metrics (acc@1, acc@3, balanced accuracy, F1s, pretest) of predictions."""
    wrong = y_true != y_pred
    ranks = np.where(wrong, rng.integers(2, n_classes + 1, len(y_true)), 1)
    cis = classification_bootstrap(y_true, y_pred, n_classes, 200, seed=0)
    points = np.maximum(5 - ranks + 1, 0)
    metrics = [
        MetricValue("acc@1", float(np.mean(~wrong)), None, *cis["accuracy"], task=task),
        MetricValue("acc@3", float(np.mean(ranks <= 3)), None, task=task),
        MetricValue("balanced_accuracy", balanced_accuracy_score(y_true, y_pred), task=task),
        MetricValue("f1_macro", f1_score(y_true, y_pred, average="macro"), task=task),
        MetricValue("f1_weighted", f1_score(y_true, y_pred, average="weighted"), task=task),
        MetricValue("pretest", float(points.sum()), 5.0 * len(points),
                    *bootstrap_ci(points, np.sum, 200), task=task),
    ]  # fmt: skip
    predictions = [
        Prediction(task, f"item{i:04d}", f"c{t}", f"c{p}", t == p, 0.5, int(r))
        for i, (t, p, r) in enumerate(zip(y_true, y_pred, ranks, strict=True))
    ]
    return metrics, predictions


def paired_predictions(
    y_true: np.ndarray, acc_a: float, lose: float, gain: float, n_classes: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Predictions of two models on the same items: b gets wrong a share ``lose`` of the
    items a gets right, and right a share ``gain`` of those a gets wrong."""
    n = len(y_true)

    def predict(correct: np.ndarray) -> np.ndarray:
        wrong = (y_true + rng.integers(1, n_classes, n)) % n_classes
        return np.where(correct, y_true, wrong)

    correct_a = rng.random(n) < acc_a
    draw = rng.random(n)
    correct_b = np.where(correct_a, draw >= lose, draw < gain)
    return predict(correct_a), predict(correct_b)


def retrieval(
    task: str, rel_topk: np.ndarray, n_relevant: np.ndarray
) -> tuple[list[MetricValue], list[RetrievedItem], list]:
    result = retrieval_metrics(rel_topk, n_relevant, ks=(1, 5, 10))
    ids = [f"q{q:02d}" for q in range(len(rel_topk))]
    top = float(result.hits_max)
    metrics = [
        MetricValue("ir_hits", float(result.hits), top, task=task),
        MetricValue("ir_by_position", result.by_position, result.by_position_max, task=task),
        MetricValue("MRR", result.mrr, task=task),
        MetricValue("P@5", result.precision[5], task=task),
        MetricValue("Recall@10", result.recall[10], task=task),
    ]
    retrieved = [
        RetrievedItem(task, qid, f"query {qid}", r + 1, f"item{q * 10 + r:04d}", 0.3,
                      bool(rel_topk[q, r]))
        for q, qid in enumerate(ids) for r in range(rel_topk.shape[1])
    ]  # fmt: skip
    return metrics, retrieved, _query_values(task, ids, result.per_query)


def run(model: ModelInfo, benchmark: str, data_hash: str, hours: float, tasks: list) -> RunResult:
    result = RunResult(
        model=model, benchmark=benchmark, benchmark_version="1",
        benchmark_hash=f"bench-{benchmark}", data_manifest_hash=data_hash, data_root=None,
        code_version="test", device="cpu", precision="fp32", seconds=1.0, n_items=400,
        started_at=T0 + timedelta(hours=hours),
    )  # fmt: skip
    types = {}
    for kind, name, parts in tasks:
        types[name] = {"type": kind}
        result.metrics += parts[0]
        if kind == "zeroshot":
            result.predictions += parts[1]
        else:
            result.retrieved += parts[1]
            result.query_values += parts[2]
    result.extra = {"tasks": types, "skipped_tasks": {}}
    return result


def write_verdict_db(db: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    kind_true = rng.integers(0, 4, 400)
    kind = paired_predictions(kind_true, 0.70, 0.15, 0.05, 4, rng)
    lace_true = rng.integers(0, 5, 200)
    lace = paired_predictions(lace_true, 0.40, 0.05, 0.40, 5, rng)
    rel_a = rng.random((40, 10)) < 0.35
    rel_b = rel_a.copy()
    rel_b[:4] = rng.random((4, 10)) < 0.35  # four queries change: a tie
    n_rel = np.full(40, 30)
    type_true = rng.integers(0, 3, 300)
    types = paired_predictions(type_true, 0.80, 0.05, 0.2, 3, rng)
    other_types = paired_predictions(type_true, 0.75, 0, 0, 3, rng)[0]

    def shoes(i: int, hours: float, model: ModelInfo) -> RunResult:
        return run(model, "shoes", "data-A", hours, [
            ("zeroshot", "kind", classification("kind", kind_true, kind[i], 4, rng)),
            ("zeroshot", "lace", classification("lace", lace_true, lace[i], 5, rng)),
            ("text_to_image", "search", retrieval("search", (rel_a, rel_b)[i], n_rel)),
        ])  # fmt: skip

    def general(pred: np.ndarray, data: str, hours: float, model: ModelInfo) -> RunResult:
        task = ("zeroshot", "type", classification("type", type_true, pred, 3, rng))
        return run(model, "general", data, hours, [task])

    for result in (
        shoes(0, 0, BASE), shoes(1, 1, TUNED), shoes(0, 2, OTHER),
        general(types[0], "data-A2", 0, BASE), general(types[1], "data-A2", 1, TUNED),
        general(other_types, "data-B", 2, OTHER),
    ):  # fmt: skip
        store.write_run(db, result)
    store.mark_baseline(db, "base")
    return db
