"""Property-based tests (hypothesis): metric bounds, invariance to the order of items and
queries, perfect and worst rankings, exact chunked top-k; readers round-trip what was written.

Examples are few (``max_examples``) and unbounded in time (``deadline=None``) so the file
runs in seconds on a busy machine; no example database is written (``database=None``).
"""

from __future__ import annotations

import csv
import io
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_data_readers import idx_bytes, write_idx
from test_metrics_retrieval import brute_force_top_k

from evalsuite.data.custom import read_labelled_csv
from evalsuite.data.fmnist import read_fashion_mnist
from evalsuite.data.styles_csv import STYLES_COLUMNS, read_styles
from evalsuite.errors import DataError
from evalsuite.metrics.bootstrap import bootstrap_ci
from evalsuite.metrics.retrieval import retrieval_metrics, top_k
from evalsuite.metrics.zeroshot import classification_metrics, pretest_points, true_class_rank

# derandomize: the same examples on every run, so CI fails only when the code changes
FAST = settings(max_examples=40, deadline=None, database=None, derandomize=True)
# scikit-learn's confusion_matrix warns about a 1x1 matrix even when given the labels.
pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
UNIT = 1e-12  # float tolerance on [0, 1] bounds


@st.composite
def classification(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(y_true (N,), scores (N, C)): small integer scores, so ties are frequent."""
    n, c = draw(st.integers(1, 25)), draw(st.integers(1, 6))
    y_true = draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1)))
    scores = draw(hnp.arrays(np.float64, (n, c), elements=st.integers(-3, 3).map(float)))
    return y_true, scores


@st.composite
def rankings(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(rel_topk (Q, K) bool, n_relevant (Q,)) with n_relevant >= the hits in the top K."""
    q, k = draw(st.integers(1, 12)), draw(st.integers(1, 8))
    rel = draw(hnp.arrays(np.bool_, (q, k)))
    beyond = draw(hnp.arrays(np.int64, q, elements=st.integers(0, 5)))  # relevant past K
    return rel, rel.sum(axis=1) + beyond


def headline(result: object) -> dict[str, float]:
    summary = result.summary()
    return {k: v for k, v in summary.items() if k not in ("n_items", "acc5") and v is not None}


# --- zero-shot classification -------------------------------------------------------------------


@FAST
@given(classification())
def test_classification_metrics_are_bounded(case: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, scores = case
    result = classification_metrics(y_true, scores, [f"c{i}" for i in range(scores.shape[1])])
    for name, value in headline(result).items():
        assert -UNIT <= value <= 1 + UNIT, (name, value)
    for per_class in (result.precision, result.recall, result.f1):
        assert ((per_class >= 0) & (per_class <= 1)).all()
    assert result.confusion.sum() == len(y_true) and result.support.sum() == len(y_true)
    ranks = true_class_rank(y_true, scores)
    assert ((ranks >= 1) & (ranks <= scores.shape[1])).all()
    points = pretest_points(y_true, scores, k=5)
    assert ((points >= 0) & (points <= 5)).all()


@FAST
@given(classification(), st.randoms(use_true_random=False))
def test_classification_metrics_ignore_item_order(
    case: tuple[np.ndarray, np.ndarray], rng: random.Random
) -> None:
    y_true, scores = case
    order = list(range(len(y_true)))
    rng.shuffle(order)
    names = [f"c{i}" for i in range(scores.shape[1])]
    before = headline(classification_metrics(y_true, scores, names))
    after = headline(classification_metrics(y_true[order], scores[order], names))
    assert after == pytest.approx(before)


@FAST
@given(classification())
def test_perfect_and_worst_classifiers(case: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, _ = case
    n_classes = int(y_true.max()) + 1
    names = [f"c{i}" for i in range(n_classes)]
    perfect = np.eye(n_classes)[y_true]  # the true class alone scores 1
    result = classification_metrics(y_true, perfect, names)
    assert result.acc1 == result.balanced_accuracy == result.f1_weighted == 1.0
    assert result.f1_macro_present == 1.0
    assert (pretest_points(y_true, perfect, k=5) == 5).all()
    if n_classes > 1:  # the true class scores strictly lowest: ranked last, never predicted
        worst = 1 - perfect
        result = classification_metrics(y_true, worst, names)
        assert result.acc1 == result.balanced_accuracy == result.f1_macro == 0.0
        assert (true_class_rank(y_true, worst) == n_classes).all()


# --- retrieval ----------------------------------------------------------------------------------


def rank_metrics(result: object) -> dict[str, float]:
    summary = result.summary()
    return {k: v for k, v in summary.items() if "@" in k or k == "MRR"}


@FAST
@given(rankings(), st.sampled_from([(1,), (1, 5), (1, 5, 10), (3,)]))
def test_retrieval_metrics_are_bounded(
    case: tuple[np.ndarray, np.ndarray], ks: tuple[int, ...]
) -> None:
    rel, n_relevant = case
    result = retrieval_metrics(rel, n_relevant, ks=ks)
    for name, value in rank_metrics(result).items():
        assert -UNIT <= value <= 1 + UNIT, (name, value)
    assert 0 <= result.hits <= result.hits_max and 0 <= result.by_position <= result.by_position_max
    assert result.n_queries_without_relevant == int((n_relevant == 0).sum())


@FAST
@given(rankings(), st.randoms(use_true_random=False))
def test_retrieval_metrics_ignore_query_order(
    case: tuple[np.ndarray, np.ndarray], rng: random.Random
) -> None:
    rel, n_relevant = case
    order = list(range(len(rel)))
    rng.shuffle(order)
    before = retrieval_metrics(rel, n_relevant, ks=(1, 5))
    after = retrieval_metrics(rel[order], n_relevant[order], ks=(1, 5))
    assert rank_metrics(after) == pytest.approx(rank_metrics(before))
    assert (after.hits, after.by_position) == (before.hits, pytest.approx(before.by_position))


@FAST
@given(st.lists(st.integers(1, 12), min_size=1, max_size=8), st.integers(1, 10))
def test_perfect_and_worst_rankings(relevant: list[int], k: int) -> None:
    n_relevant = np.array(relevant)
    perfect = np.arange(k)[None, :] < n_relevant[:, None]  # every relevant item first
    result = retrieval_metrics(perfect, n_relevant, ks=(1, k))
    expected_recall = float(np.mean(np.minimum(n_relevant, k) / n_relevant))
    assert result.precision[1] == result.mrr == 1.0
    assert [result.ndcg[1], result.ndcg[k]] == pytest.approx([1.0, 1.0])  # sums rounded apart
    assert result.recall[k] == pytest.approx(expected_recall)
    assert result.map[k] == pytest.approx(expected_recall)  # trec_eval map_cut divides by all
    worst = np.zeros_like(perfect)  # every relevant item ranked below K
    result = retrieval_metrics(worst, n_relevant, ks=(1, k))
    assert result.hits == 0 and result.mrr == 0.0
    assert all(v == 0.0 for v in rank_metrics(result).values())


@FAST
@given(
    st.integers(1, 40),
    st.integers(1, 6),
    st.integers(1, 4),
    st.integers(1, 12),
    st.integers(1, 9),
    st.integers(1, 4),
    st.data(),
)
def test_chunked_top_k_equals_brute_force(
    n_gallery: int, n_queries: int, dim: int, k: int, chunk: int, query_chunk: int, data
) -> None:
    values = st.integers(-2, 2).map(float)  # small integers: exact products and many ties
    gallery = data.draw(hnp.arrays(np.float64, (n_gallery, dim), elements=values))
    queries = data.draw(hnp.arrays(np.float64, (n_queries, dim), elements=values))
    exclude = None
    if n_gallery > 1 and data.draw(st.booleans()):
        exclude = data.draw(
            hnp.arrays(np.int64, n_queries, elements=st.integers(-1, n_gallery - 1))
        )
    indices, scores = top_k(queries, gallery, k, exclude, chunk, query_chunk)
    expected_indices, expected_scores = brute_force_top_k(queries, gallery, k, exclude)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(scores, expected_scores)


@FAST
@given(hnp.arrays(np.float64, st.integers(2, 30), elements=st.floats(-1e3, 1e3)))
@example(np.full(12, 857.7467205071305))  # quantiles came out one ulp the wrong way round
def test_bootstrap_interval_lies_within_the_values(values: np.ndarray) -> None:
    low, high = bootstrap_ci(values, n_resamples=50)
    assert values.min() - 1e-9 <= low <= high <= values.max() + 1e-9


# --- readers round-trip -------------------------------------------------------------------------


@FAST
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(0, 6), st.integers(1, 5), st.integers(1, 5))),
    st.booleans(),
    st.data(),
)
def test_idx_reader_round_trips(images: np.ndarray, gz: bool, data) -> None:
    labels = data.draw(hnp.arrays(np.uint8, len(images), elements=st.integers(0, 9)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_idx(folder / "t10k-images-idx3-ubyte", idx_bytes(images, 2051), gz)
        write_idx(folder / "t10k-labels-idx1-ubyte", idx_bytes(labels, 2049), gz)
        items = read_fashion_mnist(folder)
    assert len(items) == len(images)
    for item, image, label in zip(items, images, labels, strict=True):
        np.testing.assert_array_equal(item.pixels, image)
        assert item.fields["label_index"] == str(label)


# Cell text as users write it: commas, quotes, accents and line breaks (quoted by the writer);
# no surrounding spaces (readers strip them) and never empty (empty cells are errors).
CELL = st.text(st.sampled_from('abcXYZ019 ,"é-/\n'), min_size=1, max_size=12).map(str.strip)
CELL = CELL.filter(bool)
# Cells on one line: styles.csv values (Kaggle's file has none with a line break) and a
# labelled CSV's paths and labels; there a line break is a quote left open, closed by a later
# one, and refused. Only a labelled CSV's caption may span lines.
ONE_LINE_CELL = CELL.filter(lambda cell: "\n" not in cell)


@FAST
@given(
    st.lists(
        st.tuples(ONE_LINE_CELL, ONE_LINE_CELL, CELL), min_size=1, max_size=8,
        unique_by=lambda r: r[0],
    )
)  # fmt: skip
def test_labelled_csv_round_trips(rows: list[tuple[str, str, str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([("path", "label", "caption"), *rows])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8")
        items = read_labelled_csv(path)
    assert [(i.id, i.fields["label"], i.caption) for i in items] == rows


def write_styles(folder: Path, records: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([STYLES_COLUMNS, *records])
    path = folder / "styles.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@FAST
@given(st.lists(st.lists(ONE_LINE_CELL, min_size=9, max_size=9), min_size=1, max_size=6))
def test_styles_csv_round_trips(rows: list[list[str]]) -> None:
    records = [[str(100 + i), *fields] for i, fields in enumerate(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        frame, repaired = read_styles(write_styles(Path(tmp), records))
    assert repaired == []
    assert frame[list(STYLES_COLUMNS)].values.tolist() == records


@FAST
@given(
    st.lists(st.lists(ONE_LINE_CELL, min_size=9, max_size=9), min_size=2, max_size=6),
    st.data(),
)
def test_styles_csv_value_over_several_lines_is_refused_naming_its_lines(
    rows: list[list[str]], data: st.DataObject
) -> None:
    records = [[str(100 + i), *fields] for i, fields in enumerate(rows)]
    at = data.draw(st.integers(0, len(records) - 1), label="row")
    column = data.draw(st.integers(1, 9), label="column")
    records[at][column] += "\nmore"  # quoted by the writer: one record, lines at+2 and at+3
    with tempfile.TemporaryDirectory() as tmp:
        path = write_styles(Path(tmp), records)
        with pytest.raises(DataError) as caught:
            read_styles(path)
    assert str(caught.value) == (
        f"{path}, line {at + 2}: cannot parse styles CSV: a quoted value runs from line "
        f"{at + 2} to line {at + 3}: a quote is probably not closed"
    )
