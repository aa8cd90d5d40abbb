"""Benchmark settings and command-line numbers that used to give a wrong metric without a word
(or a traceback): each is now a SpecError naming the YAML and the field, a usage error naming
the flag (exit 2), or a rule applied alike everywhere and recorded with the run.

Metric values are checked against a direct numpy count on the same arrays.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from faultkit import score_args, write_benchmarks, write_images_csv

from evalsuite import store
from evalsuite.cli import main as evalsuite_main
from evalsuite.data.items import Item
from evalsuite.engine import ImageEmbeddings
from evalsuite.errors import SpecError
from evalsuite.spec import BenchmarkSpec, load_benchmark_file
from evalsuite.tasks.base import TaskContext, TaskOutput
from evalsuite.tasks.registry import get_task_runner
from finetune.__main__ import main as finetune_main

PIXELS = np.zeros((2, 2), dtype=np.uint8)  # items are never decoded here: vectors are given


class FixedTexts:
    """Engine stand-in: each text's vector is looked up (the task runners call embed_texts)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[text] for text in texts])


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def write_spec(folder: Path, tasks: str, queries: list[dict] | None = None) -> BenchmarkSpec:
    """bench.yaml (tasks given as YAML text) and its queries.jsonl, loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text(
        f"name: bench\nversion: 1\ndataset: {{reader: labelled_csv, path: x.csv}}\ntasks:\n{tasks}"
    )
    lines = [json.dumps(q) for q in queries or []]
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    return load_benchmark_file(folder / "bench.yaml")


def run_task(spec: BenchmarkSpec, labels: list[str], vectors: np.ndarray, texts) -> TaskOutput:
    items = [Item(id=f"i{n:02d}", fields={"label": x}, pixels=PIXELS) for n, x in enumerate(labels)]
    embeddings = ImageEmbeddings([i.id for i in items], vectors, np.arange(len(items)))
    ctx = TaskContext(spec, items, embeddings, FixedTexts(texts), n_bootstrap=20)
    task = spec.tasks[0]
    return get_task_runner(task.type)(task, ctx)


def values(out: TaskOutput) -> dict[str, float]:
    return {m.name: m.value for m in out.metrics}


# --- retrieval: 40 items in 4 labels, one text query per label ------------------------------

LABELS = [f"l{n % 4}" for n in range(40)]
QUERIES = [{"id": f"q{c}", "text": f"l{c}", "where": {"label": f"l{c}"}} for c in range(4)]


def retrieval_arrays(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    gallery = _unit(rng.normal(size=(40, 16)))
    texts = {q["text"]: _unit(rng.normal(size=16)) for q in QUERIES}
    return gallery, texts


def reference_ranking(gallery: np.ndarray, texts: dict[str, np.ndarray]):
    """(Q, G) relevance of each query's ranked gallery, and each query's relevant count."""
    queries = np.stack([texts[q["text"]] for q in QUERIES])
    order = np.argsort(-(queries @ gallery.T), axis=1, kind="stable")
    relevant = np.array([[label == q["text"] for label in LABELS] for q in QUERIES])
    return np.take_along_axis(relevant, order, axis=1), relevant.sum(axis=1)


def retrieval_task(k: int, ks: str) -> str:
    return f"  - {{type: text_to_image, name: search, queries: queries.jsonl, k: {k}, ks: {ks}}}\n"


def test_k_smaller_than_the_largest_ks_is_a_spec_error_naming_the_yaml_and_field(
    tmp_path: Path,
) -> None:
    """k is the depth ranked; with k: 2 and ks: [1, 5] only 2 items were ranked and ranks 3-5
    counted as misses (P@5 0.2 for a true 0.6). Raising k silently would change the stored
    ranked lists and the IR score's cutoff (max of ks and k) behind the user's back; the YAML
    contradicts itself, so it is rejected when loaded, before any image is embedded."""
    with pytest.raises(SpecError) as err:
        write_spec(tmp_path / "a", retrieval_task(2, "[1, 5]"), QUERIES)
    assert re.search(
        r"bench\.yaml: tasks\[0\]: k: 2 is less than the largest of ks \(5\)", str(err.value)
    )
    # the default ks are [1, 5, 10]: the message says so, or `k: 5` alone would puzzle
    with pytest.raises(SpecError, match=r"largest of ks \(10; ks defaults to \[1, 5, 10\]\)"):
        write_spec(
            tmp_path / "b",
            "  - {type: text_to_image, name: s, queries: queries.jsonl, k: 5}\n",
            QUERIES,
        )

    # a consistent spec: every cutoff matches a direct count on the same arrays
    gallery, texts = retrieval_arrays()
    out = run_task(
        write_spec(tmp_path / "c", retrieval_task(5, "[1, 5]"), QUERIES), LABELS, gallery, texts
    )
    rel, n_rel = reference_ranking(gallery, texts)
    got = values(out)
    for k in (1, 5):
        assert got[f"P@{k}"] == pytest.approx(rel[:, :k].sum(axis=1).mean() / k)
        assert got[f"Recall@{k}"] == pytest.approx((rel[:, :k].sum(axis=1) / n_rel).mean())
    assert got["ir_hits"] == rel[:, :5].sum()


def test_cutoffs_beyond_what_a_query_can_rank_are_clipped_and_the_maximum_is_reachable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """k: 1000 over 40 items showed "40 / 4000" hits and P@1000: a maximum no model can reach.
    A benchmark YAML is written once and run on data of any size (a user's 40-item subset of
    the catalogue), and asking to rank more items than exist can only mean "all of them": so
    every cutoff (k and each of ks) is clipped to what a query can rank (the gallery; one less
    for image queries, which never retrieve themselves), metric names and maxima use the
    clipped value (P@40, 40 x Q), and the run records the cutoffs in its extra."""
    gallery, texts = retrieval_arrays()
    spec = write_spec(tmp_path / "t", retrieval_task(1000, "[1, 5, 1000]"), QUERIES)
    with caplog.at_level(logging.WARNING):
        out = run_task(spec, LABELS, gallery, texts)
    why = "a query can rank only 40 items"
    assert cutoff_warnings(caplog) == [
        f"{tmp_path / 't' / 'bench.yaml'}: task 'search': k 1000 clipped to 40: {why}",
        f"{tmp_path / 't' / 'bench.yaml'}: task 'search': ks [1, 5, 1000] clipped to [1, 5, 40]: "
        f"{why}",
    ]
    rel, n_rel = reference_ranking(gallery, texts)
    got = {m.name: m for m in out.metrics}
    assert not [name for name in got if "1000" in name]
    assert out.extra["cutoffs"] == [1, 5, 40]
    assert (got["ir_hits"].value, got["ir_hits"].maximum) == (n_rel.sum(), 40 * 4)
    assert got["ir_by_position"].maximum == 40 * 4
    assert got["Recall@40"].value == pytest.approx(1.0)
    assert got["P@40"].value == pytest.approx((rel.sum(axis=1) / 40).mean())
    assert got["P@5"].value == pytest.approx(rel[:, :5].sum(axis=1).mean() / 5)
    assert all(len([r for r in out.retrieved if r.query_id == q["id"]]) == 40 for q in QUERIES)

    # image queries: the query image is not in its own ranking, so 39 can be ranked
    image_queries = [{"id": "iq", "image_id": "i00", "where": {"label": "l0"}}]
    spec = write_spec(
        tmp_path / "i",
        retrieval_task(1000, "[1, 1000]").replace("text_to_image", "image_to_image"),
        image_queries,
    )
    out = run_task(spec, LABELS, gallery, {})
    got = {m.name: m for m in out.metrics}
    assert out.extra["cutoffs"] == [1, 39]
    assert (got["ir_hits"].value, got["ir_hits"].maximum) == (9, 39)  # 10 items of l0, less itself
    assert got["Recall@39"].value == pytest.approx(1.0)


# --- zero-shot pretest: 40 items, one-hot class prompts ------------------------------------

ZEROSHOT = '  - {type: zeroshot, name: kind, field: label, templates: ["a photo of a {}."]%s}\n'


def zeroshot_arrays(n_classes: int, seed: int = 0):
    """Labels, item vectors, class indices and prompt vectors; class c's prompt is the unit
    vector e_c, so the items' class scores are their first n_classes coordinates."""
    rng = np.random.default_rng(seed)
    y = np.arange(40) % n_classes
    vectors = _unit(rng.normal(size=(40, 8)) + 1.2 * np.eye(8)[y])
    texts = {f"a photo of a c{c}.": np.eye(8, dtype=np.float32)[c] for c in range(n_classes)}
    return [f"c{c}" for c in y], vectors, y, texts


def reference_pretest(vectors: np.ndarray, y: np.ndarray, n_classes: int, k: int) -> int:
    scores = vectors[:, :n_classes]
    rank = 1 + (scores > scores[np.arange(len(y)), y][:, None]).sum(axis=1)
    return int(np.maximum(k - rank + 1, 0).sum())


# --- cutoffs the data cannot honour: clipped (or left out) with one warning, never an error --
#
# Why one rule: a benchmark YAML is written once and run on data of any size (a user's
# catalogue may have 2 annotated lace colours where the author had 8); the class and item
# counts are only known after every image is embedded, so an error there would throw the
# whole benchmark away (every task's metrics) for one cutoff. The warning names the YAML, the
# task and the field, the value asked for and the value used, and the run's extra records the
# values used, so nothing is changed behind the user's back.


def cutoff_warnings(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    """The cutoff messages at ``level``: WARNING for a written value, INFO for a default."""
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_pretest_k_above_the_number_of_classes_is_clipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pretest_k: 50 over 8 classes gave every item at least 43 of 50 points (98.5% for a
    57.5%-accurate model); then it became a SpecError at run time, after embedding, that lost
    the whole benchmark. K above the class count can only mean "all the classes": it is
    clipped to them, with one warning, the maximum (K x N, which the judge reads K back
    from) follows, and the run records the K used."""
    labels, vectors, y, texts = zeroshot_arrays(8)
    spec = write_spec(tmp_path, ZEROSHOT % ", pretest_k: 50")
    with caplog.at_level(logging.WARNING):
        out = run_task(spec, labels, vectors, texts)
    assert cutoff_warnings(caplog) == [
        f"{tmp_path / 'bench.yaml'}: task 'kind': pretest_k 50 clipped to 8: only 8 classes are "
        "scored (a larger K gives every item points whatever the model ranks)"
    ]
    pretest = next(m for m in out.metrics if m.name == "pretest")
    assert out.extra["pretest_k"] == 8
    assert pretest.maximum == 8 * 40
    assert pretest.value == reference_pretest(vectors, y, 8, 8)


def test_default_pretest_k_is_lowered_to_the_number_of_classes_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The default K (5) over 3 classes gave every item at least 3 of 5 points. It follows the
    same rule as a written K (clipped to the classes; the default k_values' acc@5 is left out
    alike), logged at INFO, not warned: nobody chose the default, and a small benchmark would
    warn on every run; extra records the K used. With enough classes nothing changes and
    nothing is said."""
    for n_classes, k_used in ((3, 3), (8, 5)):
        labels, vectors, y, texts = zeroshot_arrays(n_classes)
        folder = tmp_path / str(n_classes)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="evalsuite.tasks"):
            out = run_task(write_spec(folder, ZEROSHOT % ""), labels, vectors, texts)
        assert cutoff_warnings(caplog) == []
        pretest = next(m for m in out.metrics if m.name == "pretest")
        assert out.extra["pretest_k"] == k_used
        assert pretest.maximum == k_used * 40
        assert pretest.value == reference_pretest(vectors, y, n_classes, k_used)
        if n_classes == 3:
            assert cutoff_warnings(caplog, logging.INFO) == [
                f"{folder / 'bench.yaml'}: task 'kind': pretest_k 5 (the default) clipped to 3: "
                "only 3 classes are scored (a larger K gives every item points whatever the "
                "model ranks)",
                f"{folder / 'bench.yaml'}: task 'kind': k_values [1, 5] (the default) reduced "
                "to [1] (acc@5 left out): only 3 classes are scored, and acc@k for k >= 3 is 1 "
                "whatever the model ranks",
            ]
    assert cutoff_warnings(caplog, logging.INFO) == []  # 8 classes


def test_zeroshot_k_values_the_classes_cannot_honour_are_left_out_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """acc@k with k at or above the class count is 1 whatever the model ranks, so it is left
    out (not clipped: acc@3 renamed from acc@5 would be a different metric). Written
    k_values: [1, 3] over 2 lace colours was a SpecError that lost every footwear metric;
    now only acc@3 is missing, with a warning saying so, and extra.k_values lists the acc@k
    reported. The remaining acc@k match a direct count."""
    labels, vectors, y, texts = zeroshot_arrays(3)
    ranks = 1 + (vectors[:, :3] > vectors[np.arange(40), y][:, None]).sum(axis=1)
    spec = write_spec(tmp_path / "a", ZEROSHOT % ", k_values: [1, 2, 5], pretest_k: 3")
    with caplog.at_level(logging.WARNING):
        out = run_task(spec, labels, vectors, texts)
    assert cutoff_warnings(caplog) == [
        f"{tmp_path / 'a' / 'bench.yaml'}: task 'kind': k_values [1, 2, 5] reduced to [1, 2] "
        "(acc@5 left out): only 3 classes are scored, and acc@k for k >= 3 is 1 whatever the "
        "model ranks"
    ]
    assert out.extra["k_values"] == [1, 2]
    got = values(out)
    assert got["acc@2"] == pytest.approx((ranks <= 2).mean())
    assert got["acc@1"] == pytest.approx((ranks == 1).mean())
    assert not [name for name in got if name in ("acc@3", "acc@5")]

    # k equal to the class count is as trivial; the default's acc@5 goes the same way (INFO)
    for folder, setting, written in (("b", ", k_values: [1, 3]", "[1, 3]"), ("c", "", "[1, 5]")):
        caplog.clear()
        spec = write_spec(tmp_path / folder, ZEROSHOT % (setting + ", pretest_k: 3"))
        with caplog.at_level(logging.INFO, logger="evalsuite.tasks"):
            out = run_task(spec, labels, vectors, texts)
        default = " (the default)" if not setting else ""
        level = logging.WARNING if setting else logging.INFO  # a default is only logged
        assert cutoff_warnings(caplog, level) == [
            f"{tmp_path / folder / 'bench.yaml'}: task 'kind': k_values {written}{default} "
            f"reduced to [1] (acc@{written[-2]} left out): only 3 classes are scored, and "
            "acc@k for k >= 3 is 1 whatever the model ranks"
        ]
        assert out.extra["k_values"] == [1]
        assert [m.name for m in out.metrics if m.name.startswith("acc@")] == ["acc@1"]

    # the default over 8 classes: acc@5 kept, nothing said
    labels, vectors, y, texts = zeroshot_arrays(8)
    ranks = 1 + (vectors[:, :8] > vectors[np.arange(40), y][:, None]).sum(axis=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        out = run_task(write_spec(tmp_path / "8", ZEROSHOT % ""), labels, vectors, texts)
    assert cutoff_warnings(caplog) == []
    assert out.extra["k_values"] == [1, 5]
    assert values(out)["acc@5"] == pytest.approx((ranks <= 5).mean())


KNN = "  - {type: knn, name: near, field: label%s}\n"


def reference_knn_accuracy(labels: list[str], vectors: np.ndarray, k: int) -> float:
    """Leave-one-out uniform kNN by a direct count: the k most similar others vote."""
    y = np.unique(labels, return_inverse=True)[1]
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    votes = np.stack([np.bincount(y[row], minlength=y.max() + 1) for row in nearest])
    return float((votes.argmax(axis=1) == y).mean())


def test_knn_k_above_the_training_items_is_clipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """k: 50 over 12 items (leave-one-out: 11 vote for each) was silently clipped while the run
    recorded k 50; then a SpecError after embedding lost the whole benchmark. More voters than
    exist can only mean all of them: k is clipped to the voters with one warning, and the run
    records the k used. The score is that of k: 11 and of a direct count (all the others vote:
    the majority class c0 wins everywhere, 6 of 12 right)."""
    labels = ["c0"] * 6 + ["c1"] * 4 + ["c2"] * 2
    vectors = _unit(np.random.default_rng(0).normal(size=(12, 8)))
    spec = write_spec(tmp_path / "50", KNN % ", k: 50")
    with caplog.at_level(logging.WARNING):
        out = run_task(spec, labels, vectors, {})
    assert cutoff_warnings(caplog) == [
        f"{tmp_path / '50' / 'bench.yaml'}: task 'near': k 50 clipped to 11: only 11 training "
        "items vote for each query (12 items, leave_one_out: never the query itself)"
    ]
    assert out.extra["k"] == 11
    assert values(out)["acc@1"] == pytest.approx(reference_knn_accuracy(labels, vectors, 11))
    assert values(out)["acc@1"] == pytest.approx(0.5)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        eleven = run_task(write_spec(tmp_path / "11", KNN % ", k: 11"), labels, vectors, {})
    assert cutoff_warnings(caplog) == []
    assert values(eleven) == values(out)


def test_default_knn_k_is_lowered_to_the_training_items_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The default k (10) over 6 items votes with the 5 others, under the same rule as a
    written k, logged at INFO (saying it was the default), not warned; the run records the k
    applied (5), not 10. With enough items it is unchanged and nothing is said."""
    for n_items, k_used in ((6, 5), (30, 10)):
        labels = [f"c{n % 3}" for n in range(n_items)]
        vectors = _unit(np.random.default_rng(0).normal(size=(n_items, 8)))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="evalsuite.tasks"):
            out = run_task(write_spec(tmp_path / str(n_items), KNN % ""), labels, vectors, {})
        assert cutoff_warnings(caplog) == []
        assert out.extra["k"] == k_used
        assert values(out)["acc@1"] == pytest.approx(
            reference_knn_accuracy(labels, vectors, k_used)
        )
        if n_items == 6:
            assert cutoff_warnings(caplog, logging.INFO) == [
                f"{tmp_path / '6' / 'bench.yaml'}: task 'near': k 10 (the default) clipped to "
                "5: only 5 training items vote for each query (6 items, leave_one_out: never "
                "the query itself)"
            ]
    assert cutoff_warnings(caplog, logging.INFO) == []  # 30 items


PROBE_ERRORS = [
    (KNN % ", min_class_count: 5", ["c0", "c1"] * 3,
     "task 'near': no class of 'label' has 5 or more training items (6 training items, "
     "protocol leave_one_out)"),
    (KNN % "", ["c0"], "task 'near': no training rows to vote"),
    ("  - {type: linear_probe, name: line, field: label, protocol: holdout, c_grid: [1],\n"
     "     holdout: {test_size: 0.25, val_size: 0}}\n", ["c0"] * 8,
     "task 'line': the linear probe needs training rows of at least two classes"),
]  # fmt: skip


@pytest.mark.parametrize(("task", "labels", "message"), PROBE_ERRORS, ids=["floor", "knn", "lin"])
def test_probe_errors_name_the_yaml(
    tmp_path: Path, task: str, labels: list[str], message: str
) -> None:
    """A probe the data cannot support (no class with enough items, nothing to vote) is still
    an error (there is no metric to give), but it named only the task: with several
    benchmarks scored in one command the user could not tell which YAML to fix. It names
    the YAML first, like every other task error."""
    vectors = _unit(np.random.default_rng(0).normal(size=(len(labels), 8)))
    with pytest.raises(SpecError) as err:
        run_task(write_spec(tmp_path, task), labels, vectors, {})
    assert str(err.value) == f"{tmp_path / 'bench.yaml'}: {message}"


def test_a_cutoff_the_data_cannot_honour_leaves_every_other_metric_of_the_benchmark(
    tiny_hf_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The shipped footwear benchmark writes lace_colour k_values: [1, 3]; over a catalogue
    with 2 lace colours of 5+ items that was a SpecError after embedding: `score` exited 2
    and stored nothing of the benchmark. Scored end to end (3 colours, 12 images, every
    cutoff above what the data allows): exit 0, every task's metrics stored, one warning
    per field."""
    csv = write_images_csv(tmp_path / "data")
    bench = write_benchmarks(tmp_path / "benchmarks", csv, ("cut",))
    yaml = bench / "cut" / "cut.yaml"
    text = yaml.read_text().replace(
        "    field: label\n", "    field: label\n    k_values: [1, 3]\n    pretest_k: 9\n"
    )
    yaml.write_text(text + "  - {type: knn, name: near, field: label, k: 50}\n")
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench))
    db = tmp_path / "results.duckdb"
    with caplog.at_level(logging.WARNING):
        assert evalsuite_main(score_args(db, tiny_hf_dir, ("cut",), tmp_path / "cache")) == 0
    assert [m.split(": ", 1)[1] for m in cutoff_warnings(caplog) if "task '" in m] == [
        "task 'colour': pretest_k 9 clipped to 3: only 3 classes are scored (a larger K gives "
        "every item points whatever the model ranks)",
        "task 'colour': k_values [1, 3] reduced to [1] (acc@3 left out): only 3 classes are "
        "scored, and acc@k for k >= 3 is 1 whatever the model ranks",
        "task 'near': k 50 clipped to 11: only 11 training items vote for each query (12 "
        "items, leave_one_out: never the query itself)",
    ]
    stored = store.metrics_table(db)
    by_task = stored.groupby("task")["metric"].apply(set).to_dict()
    assert set(by_task) == {"colour", "search", "near"}
    assert "acc@1" in by_task["colour"] and "acc@3" not in by_task["colour"]
    assert {"P@5", "Recall@1"} <= by_task["search"] and "acc@1" in by_task["near"]
    pretest = stored[(stored.task == "colour") & (stored.metric == "pretest")]
    assert pretest.maximum.tolist() == [3 * 12]


# --- numeric command-line flags ---------------------------------------------------------------

FOOTWEAR = ["prepare", "footwear", "--images-dir", "img", "--styles", "styles.csv"]
COMPARE = ["compare", "--candidate", "x"]
BAD_FLAGS = [
    (["score", "m", "--bootstrap", "0"], "--bootstrap: must be a positive integer, got '0'"),
    (["score", "m", "--bootstrap", "-5"], "--bootstrap: must be a positive integer, got '-5'"),
    (["score", "m", "--batch-size", "0"], "--batch-size: must be a positive integer, got '0'"),
    (["score", "m", "--batch-size", "-1"], "--batch-size: must be a positive integer"),
    (["score", "m", "--workers", "-1"], "--workers: must be a non-negative integer, got '-1'"),
    (["score", "m", "--seed", "-1"], "--seed: must be a non-negative integer, got '-1'"),
    ([*COMPARE, "--resamples", "0"], "--resamples: must be a positive integer, got '0'"),
    ([*COMPARE, "--compare-seed", "-1"], "--compare-seed: must be a non-negative integer"),
    (
        [*COMPARE, "--tolerance", "acc@1=-0.01"],
        "--tolerance: margin must be a number >= 0, got 'acc@1=-0.01'",
    ),
    (
        [*COMPARE, "--tolerance", "acc@1=nan"],
        "--tolerance: margin must be a number >= 0, got 'acc@1=nan'",
    ),
    (["score", "m", "--tolerance", "pretest=inf"], "--tolerance: margin must be a number >= 0"),
    (["leaderboard", "--port", "0"], "--port: must be a port number in 1..65535, got '0'"),
    (["leaderboard", "--port", "70000"], "--port: must be a port number in 1..65535"),
    ([*FOOTWEAR, "--seed", "-1"], "--seed: must be a non-negative integer"),
    ([*FOOTWEAR, "--test-size", "1.5"], "--test-size: must be a number in (0, 1), got '1.5'"),
    ([*FOOTWEAR, "--test-size", "0"], "--test-size: must be a number in (0, 1)"),
    ([*FOOTWEAR, "--val-size", "1"], "--val-size: must be a number in [0, 1), got '1'"),
    ([*FOOTWEAR, "--val-size", "nan"], "--val-size: must be a number in [0, 1)"),
]


@pytest.mark.parametrize(
    ("argv", "message"), BAD_FLAGS, ids=[" ".join(a[-3:]) for a, _ in BAD_FLAGS]
)
def test_out_of_range_numeric_flags_are_usage_errors_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 resamples or a batch of 0 items has no meaning: today a traceback deep in the
    bootstrap, a silently accepted value, or a server on a random port. argparse rejects
    them before anything is loaded, with its usage line and exit status 2 (not 1, which
    means "regression" to CI)."""
    with pytest.raises(SystemExit) as exit_:
        evalsuite_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert message in err and "Traceback" not in err


def test_wise_alpha_outside_zero_one_is_a_usage_error_before_loading(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--alpha 2 was only refused after both models were loaded (a wrong model spec was
    reported first); --alphas already failed at parsing: --alpha now does too."""
    for alpha in ("2", "-0.5", "nan"):
        with pytest.raises(SystemExit) as exit_:
            finetune_main(
                ["wise", "--base", "a", "--finetuned", "b", "--alpha", alpha, "--out", "o"]
            )
        err = capsys.readouterr().err
        assert exit_.value.code == 2, err
        assert f"--alpha: must be a number in [0, 1], got '{alpha}'" in err
