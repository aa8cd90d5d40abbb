"""The footwear benchmark's shoelace retrieval (the seed's "only shoelaces" rows): 39 text
queries (IR scores out of 390) and 13 image queries (out of 130) whose relevant items share
the query item's lace colour and article type; skipped on a catalogue without lace
annotations; every query has relevant items in the demo's test split."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from evalsuite.data.items import Item
from evalsuite.data.splits import assign_splits
from evalsuite.engine import ImageEmbeddings
from evalsuite.queries import relevance_matrix, resolve_image_queries
from evalsuite.spec import load_benchmark
from evalsuite.spec_data import task_skip_reason
from evalsuite.tasks.base import TaskContext
from evalsuite.tasks.registry import get_task_runner
from examples.demo.synth import plan_footwear

PIXELS = np.zeros((2, 2), dtype=np.uint8)  # never decoded: the vectors are given
FIELDS = ("gender", "articleType", "baseColour", "usage", "lace_colour")
LACE_TASKS = ("lace_search", "lace_image_search")


def item(item_id: str, **fields: str) -> Item:
    return Item(id=item_id, fields=fields, pixels=PIXELS)


def planned_items(n_items: int, seed: int, split: str | None = None) -> list[Item]:
    """The demo catalogue's records (examples.demo.synth) as items, without drawing images;
    ``split``: only that split of `prepare footwear`'s (stratified by articleType, 20 % test,
    10 % of the rest val, the catalogue's seed)."""
    records = plan_footwear(n_items, seed)
    if split is not None:
        split_of = assign_splits(
            [r["id"] for r in records], [r["articleType"] for r in records], seed, 0.2, 0.1
        )
        records = [r for r in records if split_of[r["id"]] == split]
    return [item(r["id"], **{f: r[f] or "" for f in FIELDS}) for r in records]


class AnyText:
    """Engine stand-in: a fixed random unit vector per text."""

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=16) for t in texts]
        return unit(np.stack(rows))


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def footwear():
    return load_benchmark("footwear")


# --- counts and maxima ---------------------------------------------------------------------


def test_lace_tasks_score_39_and_13_queries_out_of_390_and_130(footwear) -> None:
    items = planned_items(2000, seed=0, split="test")  # the demo's: with lace annotations
    vectors = unit(np.random.default_rng(0).normal(size=(len(items), 16)))
    embeddings = ImageEmbeddings([i.id for i in items], vectors, np.arange(len(items)))
    ctx = TaskContext(footwear, items, embeddings, AnyText(), n_bootstrap=20)
    expected = {"lace_search": (39, 390), "lace_image_search": (13, 130)}
    for name, (n_queries, maximum) in expected.items():
        task = footwear.task(name)
        assert task_skip_reason(footwear, task, items) is None
        out = get_task_runner(task.type)(task, ctx)
        got = {m.name: m for m in out.metrics}
        assert out.extra["n_queries"] == n_queries, name
        assert out.extra["n_queries_without_relevant"] == 0, name
        assert got["ir_hits"].maximum == maximum and got["ir_by_position"].maximum == maximum
        assert 0 <= got["ir_hits"].value <= maximum
        assert len(out.retrieved) == n_queries * 10
    assert out.extra["unresolved_queries"] == []  # every image query found its image


def test_lace_tasks_are_skipped_with_a_reason_without_annotations(footwear) -> None:
    plain = [
        item("1", articleType="Casual Shoes", baseColour="White"),
        item("2", articleType="Sports Shoes", baseColour="Black", lace_colour=""),  # empty
    ]
    for name in ("lace_colour", *LACE_TASKS):
        reason = task_skip_reason(footwear, footwear.task(name), plain)
        assert reason and "no item has" in reason and "'lace_colour'" in reason, name
    reason = task_skip_reason(footwear, footwear.task("lace_image_search"), plain)
    assert "queries_lace_image.jsonl" in reason


# --- relevance of the image queries --------------------------------------------------------

# A hand-made catalogue: several items per (articleType, lace colour), of different body
# colours, plus items sharing only the lace colour or only the type, and laceless shoes.
HAND = [
    item("3", articleType="Casual Shoes", lace_colour="White", baseColour="Black"),
    item("12", articleType="Casual Shoes", lace_colour="White", baseColour="White"),
    item("20", articleType="Casual Shoes", lace_colour="White", baseColour="Blue"),
    item("5", articleType="Sports Shoes", lace_colour="White", baseColour="Black"),
    item("7", articleType="Casual Shoes", lace_colour="Black", baseColour="White"),
    item("8", articleType="Casual Shoes", lace_colour="Black", baseColour="Grey"),
    item("9", articleType="Casual Shoes", lace_colour="Red", baseColour="Grey"),
    item("10", articleType="Casual Shoes", lace_colour="Grey", baseColour="Navy Blue"),
    item("11", articleType="Casual Shoes", lace_colour="Brown", baseColour="Brown"),
    item("13", articleType="Sports Shoes", lace_colour="Black", baseColour="White"),
    item("14", articleType="Sports Shoes", lace_colour="Black", baseColour="Red"),
    item("15", articleType="Sports Shoes", lace_colour="Blue", baseColour="Grey"),
    item("16", articleType="Sports Shoes", lace_colour="Grey", baseColour="Black"),
    item("17", articleType="Sports Shoes", lace_colour="Red", baseColour="Blue"),
    item("18", articleType="Formal Shoes", lace_colour="Black", baseColour="Black"),
    item("19", articleType="Formal Shoes", lace_colour="Black", baseColour="Brown"),
    item("21", articleType="Formal Shoes", lace_colour="Brown", baseColour="Brown"),
    item("22", articleType="Formal Shoes", lace_colour="Blue", baseColour="Black"),
    item("23", articleType="Heels", baseColour="Black"),  # no laces
    item("24", articleType="Formal Shoes", baseColour="Black"),  # laceless formal shoe
]


def same_lace_and_type(items: list[Item], rows: np.ndarray) -> np.ndarray:
    """The rule computed directly: item j is relevant to the query whose image is item r when
    j is not r and both have the same (non-empty) lace_colour and articleType."""
    out = np.zeros((len(rows), len(items)), dtype=bool)
    for q, r in enumerate(rows):
        query = items[r].fields
        for j, other in enumerate(items):
            out[q, j] = (
                j != r
                and bool(query.get("lace_colour"))
                and other.fields.get("lace_colour") == query["lace_colour"]
                and other.fields.get("articleType") == query["articleType"]
            )
    return out


def test_lace_image_relevance_by_hand(footwear) -> None:
    queries = footwear.query_set(footwear.task("lace_image_search"))
    ids = [q.id for q in queries.queries]
    rows = resolve_image_queries(queries, HAND)
    relevant = relevance_matrix(queries, HAND)

    def relevant_ids(query_id: str) -> list[str]:
        return [HAND[j].id for j in np.flatnonzero(relevant[ids.index(query_id)])]

    def query_image(query_id: str) -> str:
        return HAND[rows[ids.index(query_id)]].id

    # li01: casual shoes with white laces, pick 0 -> "3" (ids in numeric order); relevant:
    # the other two, whatever their body colour; not "5" (sports) nor "7" (black laces)
    assert (query_image("li01"), relevant_ids("li01")) == ("3", ["12", "20"])
    # li02: casual / black laces, pick 1 -> "8"; li07: sports / black, pick 0 -> "13"
    assert (query_image("li02"), relevant_ids("li02")) == ("8", ["7"])
    assert (query_image("li07"), relevant_ids("li07")) == ("13", ["14"])
    # li11: formal / black, pick 0 -> "18": "19", never the laceless "24"
    assert (query_image("li11"), relevant_ids("li11")) == ("18", ["19"])
    # li03: casual / red, pick 2 of one item -> "9" (modulo): nothing else is relevant
    assert (query_image("li03"), relevant_ids("li03")) == ("9", [])
    assert (rows >= 0).all()
    assert (relevant == same_lace_and_type(HAND, rows)).all()


def test_lace_image_relevance_on_the_demo_catalogue(footwear) -> None:
    queries = footwear.query_set(footwear.task("lace_image_search"))
    items = planned_items(400, seed=3)
    rows = resolve_image_queries(queries, items)
    assert (rows >= 0).all()
    relevant = relevance_matrix(queries, items)
    assert (relevant == same_lace_and_type(items, rows)).all()
    for query in queries.queries:  # the data states the rule: relevant = the query's cell
        assert query.where == query.image_where and set(query.where) == {
            "articleType",
            "lace_colour",
        }


# --- the demo ------------------------------------------------------------------------------


@pytest.mark.parametrize("n_items", [2000, 1000])  # `make demo`; tests/test_demo.py's short one
def test_every_lace_query_has_relevant_items_in_the_demo_test_split(footwear, n_items) -> None:
    items = planned_items(n_items, seed=0, split="test")
    for name in LACE_TASKS:
        queries = footwear.query_set(footwear.task(name))
        counts = relevance_matrix(queries, items).sum(axis=1)
        empty = [q.id for q, n in zip(queries.queries, counts, strict=True) if n == 0]
        assert not empty, f"{name}: queries without relevant items: {empty}"
        if queries.kind == "image":
            assert (resolve_image_queries(queries, items) >= 0).all()
