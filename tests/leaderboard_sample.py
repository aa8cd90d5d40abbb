"""The leaderboard's sample database: a FashionCLIP base model, a fine-tune with a training
history and two WiSE-FT interpolations, on ``footwear`` and ``fmnist``, written through
``evalsuite.store.write_run``.

Every task carries its per-unit results, and the stored metrics, per-class scores and
confusion cells are computed from them (as a real run does), so that the leaderboard's
verdicts (``evalsuite.verdicts``) are those of the numbers shown:

- classification (footwear article type and base colour, Fashion-MNIST): a prediction for
  every item. Items are ordered once by difficulty; each model gets the easiest
  ``round(accuracy x n)`` right, so a more accurate model is right on a superset of items
  (the fine-tune gains 101 footwear items and loses 50 Fashion-MNIST items: significant;
  WiSE-FT 0.3 loses 3 Fashion-MNIST items: a tie).
- retrieval (text and image search): a top-10 relevance grid per model with exactly the
  hits of ``SAMPLE_MODELS`` (nested the same way), and the per-query values of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_recall_fscore_support

from evalsuite import store
from evalsuite.data.fmnist import CLASS_NAMES
from evalsuite.metrics.retrieval import retrieval_metrics
from evalsuite.results import (
    ClassMetric,
    ConfusionCell,
    MetricValue,
    ModelInfo,
    Prediction,
    RetrievedItem,
    RunResult,
)
from evalsuite.tasks.retrieval import _query_values

BASE_SPEC = "patrickjohncyh/fashion-clip"
FT_SPEC = "/checkpoints/footwear-ft"
ARTICLE_TYPES = ["Casual Shoes", "Sports Shoes", "Formal Shoes", "Heels", "Flats",
                 "Flip Flops", "Sandals", "Sports Sandals"]  # fmt: skip
COLOURS = ["Black", "White", "Brown", "Blue"]
FMNIST = list(CLASS_NAMES)
N_ITEMS = 1000  # per classification task: accuracies to 0.1% are exact counts
N_COLOUR_ITEMS = 200
K = 10
TEXT_QUERIES = ("black formal shoes for men", "brown formal shoes", "white sports shoes for women")
HISTORY = [
    {"epoch": e, "train_loss": 2.1 - 0.35 * e, "val_loss": 1.9 - 0.2 * e + 0.04 * e * e,
     "val_accuracy": 0.70 + 0.04 * e, "lr": 1e-5 * (1 - e / 4), "seconds": 310.0 + e,
     "steps": 9 * e, "trainable_parameters": 151_277_313}
    for e in range(1, 4)
]  # fmt: skip
# training.json as finetune writes it (finetune/checkpoint.py::training_record): "config" is a
# finetune.config.TrainConfig (sections left out take their defaults), "data" what was read
FT_CONFIG = {
    "model": {"spec": BASE_SPEC},
    "data": {"reader": "catalogue", "path": "/data/footwear-prepared", "train_split": "train",
             "val_split": "val",
             "replay": {"reader": "catalogue", "path": "/data/general-prepared", "fraction": 0.25,
                        "split": "train"}},
    "optim": {"lr": 1e-5},
    "train": {"epochs": 3, "batch_size": 64, "accum_steps": 2},
    "output": {"dir": "/checkpoints/footwear-ft", "run_name": "footwear-ft"},
}  # fmt: skip
FT_DATA = {
    "path": "/data/footwear-prepared", "reader": "catalogue", "options": {},
    "manifest_hash": "3f2a1b9c0d7e6f5a", "sizes": {"train": 1200, "val": 150, "test": 150},
    "train_items": 1180, "val_items": 150, "skipped": {"train": 20, "val": 0},
    "replay": {"path": "/data/general-prepared", "reader": "catalogue", "fraction": 0.25,
               "items": 5000, "per_batch": 16},
}  # fmt: skip
FT_TRAINING = {
    "run_name": "footwear-ft",
    "kind": "full",
    "best_epoch": 3,
    "base_model": {"spec": BASE_SPEC, "fingerprint": "fp-fashionclip"},
    "data": FT_DATA,
    "seed": 0,
    "history": HISTORY,
    "config": FT_CONFIG,
}


def _wise(alpha: float) -> dict[str, Any]:
    return {
        "run_name": f"footwear-ft-wise{alpha:g}",
        "wise": {"alpha": alpha, "base_spec": BASE_SPEC, "finetuned_spec": FT_SPEC,
                 "base_fingerprint": "fp-fashionclip"},
    }  # fmt: skip


# name -> (fingerprint, spec, footwear type acc@1, FMNIST acc@1, text hits / 390,
#          image hits / 130, training)
SAMPLE_MODELS = {
    "FashionCLIP-tiny": ("fp-fashionclip", BASE_SPEC, 0.698, 0.702, 212, 71, None),
    "footwear-ft": ("fp-footwear-ft", FT_SPEC, 0.799, 0.652, 251, 80, FT_TRAINING),
    "footwear-ft-wise0.3": ("fp-wise-03", "/checkpoints/footwear-ft-wise0.3", 0.752, 0.699,
                            230, 75, _wise(0.3)),
    "footwear-ft-wise0.6": ("fp-wise-06", "/checkpoints/footwear-ft-wise0.6", 0.781, 0.688,
                            240, 77, _wise(0.6)),
}  # fmt: skip


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 80), colour).save(path)


# ---------------------------------------------------------------- classification


def _items(task: str, labels: list[str], n: int, seed: int) -> pd.DataFrame:
    """The task's items: id, true label, image path, difficulty order and the rank of the
    true label when a model gets the item wrong."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"item_id": [f"{1000 + i}" for i in range(n)],
                          "true": [labels[i % len(labels)] for i in range(n)]})  # fmt: skip
    frame["image"] = None
    frame["difficulty"] = rng.permutation(n)
    frame["wrong_rank"] = rng.integers(2, 9, n)
    frame["confidence"] = rng.uniform(0.3, 0.95, n)
    if task == "article_type":  # thumbnails; the hardest item's path escapes the data root
        frame["image"] = [f"images/{1000 + i % 16}.png" for i in range(n)]
        hardest = frame.index[frame["difficulty"] == n - 1][0]  # wrong for every model
        frame.loc[hardest, ["item_id", "true", "image"]] = ["9999", "Heels", "../outside.png"]
        frame.loc[hardest, "confidence"] = 0.99  # the most confident mistake
    return frame


def classification(
    task: str, items: pd.DataFrame, labels: list[str], accuracy: float, metrics: tuple[str, ...]
) -> dict[str, list]:
    """Predictions of a model right on the easiest ``round(accuracy x n)`` items, and the
    metrics, per-class scores and confusion cells computed from them."""
    n = len(items)
    right = (items["difficulty"] < round(accuracy * n)).to_numpy()
    true = items["true"].to_numpy()
    index = {label: i for i, label in enumerate(labels)}
    predicted = np.where(right, true, [labels[(index[t] + 1) % len(labels)] for t in true])
    ranks = np.where(right, 1, items["wrong_rank"])
    values = {
        "acc@1": float(right.mean()),
        "acc@5": float((ranks <= 5).mean()),
        "f1_macro": f1_score(true, predicted, average="macro", labels=labels, zero_division=0),
        "f1_weighted": f1_score(true, predicted, average="weighted", zero_division=0),
        "pretest": float(np.maximum(5 - ranks + 1, 0).sum()),
    }
    out: dict[str, list] = {"metrics": [], "predictions": [], "class_metrics": [],
                            "confusion": []}  # fmt: skip
    for name in metrics:
        maximum = 5.0 * n if name == "pretest" else None
        half = 60.0 if maximum else 1.96 * np.sqrt(values[name] * (1 - values[name]) / n)
        out["metrics"].append(MetricValue(name, values[name], maximum, values[name] - half,
                                          values[name] + half, True, task))  # fmt: skip
    for row, guess, ok, rank in zip(items.itertuples(), predicted, right, ranks, strict=True):
        score = 0.9 - 0.0001 * row.difficulty if ok else row.confidence
        out["predictions"].append(Prediction(task, row.item_id, row.true, str(guess), bool(ok),
                                             float(score), int(rank), row.image))  # fmt: skip
    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=labels, zero_division=0
    )
    out["class_metrics"] = [
        ClassMetric(task, label, float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    cells = pd.crosstab(pd.Series(true, name="t"), pd.Series(predicted, name="p")).stack()
    out["confusion"] = [ConfusionCell(task, t, p, int(c)) for (t, p), c in cells.items() if c]
    return out


# ---------------------------------------------------------------- retrieval


def retrieval(task: str, hits: int, n_queries: int, texts: list[str], seed: int) -> dict[str, list]:
    """A top-10 grid with exactly ``hits`` relevant results, filled in a fixed random order of
    the cells (so the grids of two models are nested), its metrics, ranked lists and
    per-query values."""
    order = np.random.default_rng(seed).permutation(n_queries * K)
    relevant = np.zeros(n_queries * K, dtype=bool)
    relevant[order[:hits]] = True
    grid = relevant.reshape(n_queries, K)
    result = retrieval_metrics(grid, np.full(n_queries, 30), ks=(1, 5, 10))
    ids = [f"{task[0]}{q + 1:02d}" for q in range(n_queries)]
    top = float(result.hits_max)
    metrics = [
        MetricValue("ir_hits", float(result.hits), top, result.hits - 9.0, result.hits + 9.0,
                    True, task),
        MetricValue("ir_by_position", result.by_position, top, None, None, True, task),
        MetricValue("MRR", result.mrr, None, None, None, True, task),
    ]  # fmt: skip
    ranked = [
        RetrievedItem(task, qid, texts[q], r + 1, str(1000 + (r + q) % 16), 0.5 - 0.01 * r,
                      bool(grid[q, r]), f"images/{1000 + (r + q) % 16}.png")
        for q, qid in enumerate(ids) for r in range(K)
    ]  # fmt: skip
    return {"metrics": metrics, "retrieved": ranked,
            "query_values": _query_values(task, ids, result.per_query)}  # fmt: skip


# ---------------------------------------------------------------- runs


def _run(info: ModelInfo, benchmark: str, when: datetime, data_root: Path | None,
         parts: list[dict[str, list]], types: dict[str, str]) -> RunResult:  # fmt: skip
    run = RunResult(
        model=info, benchmark=benchmark, benchmark_version="1",
        benchmark_hash=f"bh-{benchmark}-1", data_manifest_hash=f"dm-{benchmark}-1",
        data_root=str(data_root) if data_root else None, code_version="0.1.0+g1234",
        device="cpu", precision="fp32", seconds=12.5, n_items=N_ITEMS, started_at=when,
    )  # fmt: skip
    for part in parts:
        for field, rows in part.items():
            getattr(run, field).extend(rows)
    run.extra = {"tasks": {task: {"type": kind} for task, kind in types.items()}}
    return run


def write_sample_results(db: Path, data_root: Path, started: datetime | None = None) -> dict:
    """Write the sample runs (2 benchmarks x 4 models) into ``db``; returns what was written:
    {"names": {name: fingerprint}, "data_root": ..., "runs": [RunResult]}."""
    for i in range(16):
        _png(data_root / "images" / f"{1000 + i}.png", (40 + 12 * i, 90, 160 - 5 * i))
    _png(data_root.parent / "outside.png", (255, 0, 0))
    started = started or datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    types = _items("article_type", ARTICLE_TYPES, N_ITEMS, 1)
    colours = _items("base_colour", COLOURS, N_COLOUR_ITEMS, 2)
    fmnist = _items("label", FMNIST, N_ITEMS, 3)
    text_texts = [*TEXT_QUERIES, *(f"footwear query {q}" for q in range(4, 40))]
    runs = []
    for index, (name, values) in enumerate(SAMPLE_MODELS.items()):
        fp, spec, acc, fm, text_hits, image_hits, training = values
        base = (training or {}).get("base_model", {})
        info = ModelInfo(
            fingerprint=fp, name=name, spec=spec, backend="hf", base_model=base.get("spec"),
            base_fingerprint=base.get("fingerprint"), parameter_count=151_277_313,
            training=training, history=list((training or {}).get("history", [])),
        )  # fmt: skip
        when = started + timedelta(minutes=10 * index)
        footwear = [
            classification("article_type", types, ARTICLE_TYPES, acc,
                           ("acc@1", "acc@5", "f1_macro", "f1_weighted", "pretest")),
            classification("base_colour", colours, COLOURS, 0.55 + (acc - 0.7) / 3, ("acc@1",)),
            retrieval("text_search", text_hits, 39, text_texts, 4),
            retrieval("image_search", image_hits, 13, [f"{1000 + q}" for q in range(13)], 5),
        ]  # fmt: skip
        kinds = {"article_type": "zeroshot", "base_colour": "zeroshot",
                 "text_search": "text_to_image", "image_search": "image_to_image"}  # fmt: skip
        labels = classification("label", fmnist, FMNIST, fm, ("acc@1", "f1_macro"))
        for run in (
            _run(info, "footwear", when, data_root, footwear, kinds),
            _run(info, "fmnist", when + timedelta(minutes=1), None, [labels],
                 {"label": "zeroshot"}),
        ):  # fmt: skip
            store.write_run(db, run)
            runs.append(run)
    names = {name: values[0] for name, values in SAMPLE_MODELS.items()}
    return {"names": names, "data_root": data_root, "runs": runs}
