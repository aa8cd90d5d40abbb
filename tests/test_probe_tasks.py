"""Probe tasks through the runner, on a small catalogue in the Kaggle layout and precomputed
embeddings with a tiny text model: the split and holdout protocols give scikit-learn's
predictions on the same items, zero-shot runs through the text model, and items without an
embedding are counted."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from evalsuite.data.styles import read_styles_catalogue
from evalsuite.data.styles_csv import STYLES_COLUMNS
from evalsuite.models import load_scorable
from evalsuite.runner import ScoreOptions, score_model

TYPES = ("Tshirts", "Shirts", "Heels")
N_PER_TYPE = 40
DIM = 128  # the tiny CLIP's embedding size: its text tower embeds the prompts

BENCHMARK = """
name: toy_probes
version: 1
dataset: {{reader: styles_catalogue, path: {data}, split: null}}
tasks:
  - {{type: zeroshot, name: article_type, field: articleType}}
  - {{type: knn, name: knn_split, field: articleType, protocol: split, k: 5,
      weighting: distance}}
  - {{type: linear_probe, name: probe_split, field: articleType, protocol: split,
      c_grid: [0.1, 1, 10]}}
  - {{type: knn, name: knn_holdout, field: articleType, protocol: holdout, k: 3}}
  - {{type: linear_probe, name: probe_holdout, field: articleType, protocol: holdout}}
  - {{type: embedding_stats, name: stats, fields: [articleType, baseColour]}}
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory, tiny_hf_dir: Path) -> dict:
    root = tmp_path_factory.mktemp("toy")
    data = root / "catalogue"
    data.mkdir()
    with open(data / "styles.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(STYLES_COLUMNS)
        for i in range(len(TYPES) * N_PER_TYPE):
            kind = TYPES[i % len(TYPES)]
            colour = ("Black", "White")[i % 2]
            writer.writerow([1000 + i, "Men", "Apparel", "Topwear", kind, colour, "Summer",
                             "2012", "Casual", f"{colour} {kind}"])  # fmt: skip
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(TYPES), DIM))
    n = len(TYPES) * N_PER_TYPE
    vectors = centres[np.arange(n) % len(TYPES)] + 2.0 * rng.normal(size=(n, DIM))
    folder = root / "vectors"
    folder.mkdir()
    keep = np.arange(n) >= 5  # the first five items have no embedding
    np.save(folder / "embeddings.npy", vectors[keep].astype(np.float32))
    (folder / "ids.txt").write_text("\n".join(str(1000 + i) for i in np.flatnonzero(keep)))
    (folder / "embeddings.yaml").write_text(f"name: toy-vectors\ntext_model: {tiny_hf_dir}\n")
    bench = root / "benchmarks" / "toy_probes.yaml"
    bench.parent.mkdir()
    bench.write_text(BENCHMARK.format(data=data))
    options = ScoreOptions(
        benchmarks=(str(bench),),
        db_path=root / "results.duckdb",
        progress=False,
        n_bootstrap=50,
        cache_dir=root / "cache",
    )
    [run] = score_model(str(folder), options)
    return {"run": run, "data": data, "model": load_scorable(str(folder))}


def _arrays(model, items):
    items = [item for item in items if model.rows([item.id])[0] >= 0]
    rows = model.rows([item.id for item in items])
    return model.vectors[rows], np.array([TYPES.index(i.fields["articleType"]) for i in items])


def _accuracy(run, task: str) -> float:
    return next(m.value for m in run.metrics if m.task == task and m.name == "acc@1")


def test_split_protocol_equals_sklearn_on_the_split_items(toy: dict) -> None:
    run, model, data = toy["run"], toy["model"], toy["data"]
    x_train, y_train = _arrays(model, read_styles_catalogue(data, "train"))
    x_val, y_val = _arrays(model, read_styles_catalogue(data, "val"))
    x_test, y_test = _arrays(model, read_styles_catalogue(data, "test"))
    # TYPES sorted is the class order: Heels, Shirts, Tshirts -> remap to sorted indices
    order = np.argsort(np.argsort(TYPES))
    y_train, y_val, y_test = order[y_train], order[y_val], order[y_test]
    knn = KNeighborsClassifier(5, metric="cosine", weights="distance", algorithm="brute")
    expected = np.mean(knn.fit(x_train, y_train).predict(x_test) == y_test)
    assert _accuracy(run, "knn_split") == pytest.approx(expected)
    accuracy = {
        c: LogisticRegression(C=c, max_iter=1000, random_state=0)
        .fit(x_train, y_train)
        .score(x_val, y_val)
        for c in (0.1, 1.0, 10.0)
    }
    best = max(accuracy, key=lambda c: (accuracy[c], -c))
    assert run.extra["tasks"]["probe_split"]["c"] == best
    probe = LogisticRegression(C=best, max_iter=1000, random_state=0).fit(x_train, y_train)
    assert _accuracy(run, "probe_split") == pytest.approx(probe.score(x_test, y_test))
    assert run.extra["tasks"]["knn_split"]["n_scored"] == len(y_test)
    assert run.extra["probe_splits"]["test"] == len(y_test)


def test_text_model_serves_zero_shot_and_missing_items_are_counted(toy: dict) -> None:
    run = toy["run"]
    assert run.extra["skipped_tasks"] == {}  # the tiny text model embeds the prompts
    assert _accuracy(run, "article_type") >= 0  # scored, whatever a random model gets
    assert run.extra["precomputed"]["n_items_without_embedding"] == 5
    assert run.extra["precomputed"]["first_ids_without_embedding"] == [
        "1000", "1001", "1002", "1003", "1004"
    ]  # fmt: skip
    holdout = run.extra["tasks"]["knn_holdout"]
    assert holdout["protocol"] == "holdout" and holdout["n_scored"] + holdout["n_train"] < 115
    assert {m.name for m in run.metrics if m.task == "stats"} == {
        "nn_agreement:articleType",
        "nn_agreement:baseColour",
        "mean_pairwise_similarity",
        "effective_rank",
    }
    assert toy["model"].fingerprint == run.model.fingerprint
    assert run.model.backend == "precomputed"
