"""Query sets: parsing errors, predicate checks, relevance, image query resolution, real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalsuite.data.items import Item
from evalsuite.errors import SpecError
from evalsuite.queries import (
    ImageQuery,
    TextQuery,
    applies_to,
    check_queries,
    load_queries,
    load_query_set,
    relevance_matrix,
    resolve_image_queries,
)
from evalsuite.spec import DEFAULT_BENCHMARKS_DIR

FOOTWEAR = DEFAULT_BENCHMARKS_DIR / "footwear"


def item(item_id: str, **fields: str) -> Item:
    return Item(id=item_id, fields=fields, pixels=np.zeros((2, 2), np.uint8))


ITEMS = [
    item("9", articleType="Heels", baseColour="Red", gender="Women"),
    item("10", articleType="Heels", baseColour="Black", gender="Women"),
    item("2", articleType="Casual Shoes", baseColour="Red", gender="Men"),
    item("11", articleType="Heels", baseColour="Red", gender="Women", lace_colour=""),
    item("3", articleType="Flip Flops", baseColour="Navy Blue", gender="Unisex"),
    item("4", articleType="Sandals", baseColour="Brown"),  # no gender
]


def write_jsonl(path: Path, *lines: dict | str) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def text(query_id: str, **kwargs) -> TextQuery:
    return TextQuery(id=query_id, text=query_id, **kwargs)


# --- parsing -------------------------------------------------------------------------------


def test_load_text_and_image_queries(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        {"header": {"requires_field": "lace_colour", "description": "laces"}},
        {"id": "t1", "text": "red heels", "where": {"articleType": "Heels", "year": 2012}},
        "",
        {"id": "t2", "text": "a few", "ids": ["1", "2"]},
    )
    queries = load_query_set(path)
    assert queries.kind == "text" and queries.header.requires_field == ["lace_colour"]
    assert [q.id for q in queries.queries] == ["t1", "t2"]
    assert queries.queries[0].where == {"articleType": "Heels", "year": "2012"}
    image = write_jsonl(
        tmp_path / "i.jsonl",
        {"id": "i1", "image_id": "10", "where": {"articleType": "Heels"}},
        {"id": "i2", "image_where": {"baseColour": "Red"}, "pick": 1, "where": {"a": "b"}},
    )
    assert [type(q) for q in load_queries(image)] == [ImageQuery, ImageQuery]
    assert load_query_set(image).kind == "image"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [{"id": "t1", "txt": "x", "where": {"a": "b"}}],
            r"q\.jsonl:1: query 't1': txt: unknown field \(did you mean 'text'\?\)",
        ),
        (["{not json"], r"q\.jsonl:1: invalid JSON"),
        ([{"id": "t1", "text": "x"}], "give `where` and/or `ids`"),
        ([{"id": "t1", "text": "x", "where": {"a": []}}], "a: give a non-empty value"),
        (
            [{"id": "i1", "image_id": "1", "image_where": {"a": "b"}, "where": {"a": "b"}}],
            "exactly one of `image_id` or `image_where`",
        ),
        (
            [{"id": "t1", "text": "x", "ids": ["1"]}, {"id": "t1", "text": "y", "ids": ["2"]}],
            r"q\.jsonl:2: query id 't1' repeats line 1",
        ),
        (
            [{"id": "t1", "text": "x", "ids": ["1"]}, {"id": "i1", "image_id": "1", "ids": ["2"]}],
            "mixes text and image queries",
        ),
        (
            [{"id": "t1", "text": "x", "ids": ["1"]}, {"header": {"requires_field": "a"}}],
            r"q\.jsonl:2: a header line must be the first line",
        ),
        ([{"header": {"requires_fields": "a"}}], r"requires_fields: unknown field \(did you"),
        ([{"header": {}}], "no queries"),
    ],
)
def test_query_file_errors_name_file_and_line(tmp_path: Path, lines: list, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_queries(write_jsonl(tmp_path / "q.jsonl", *lines))


# --- predicate checks ----------------------------------------------------------------------


def test_unknown_field_is_an_error_not_zero_results() -> None:
    with pytest.raises(SpecError) as err:
        relevance_matrix([text("t1", where={"articleTyp": "Heels"})], ITEMS)
    message = str(err.value)
    assert "query 't1'" in message and "no item has field 'articleTyp'" in message
    assert "did you mean 'articleType'?" in message and "baseColour, gender" in message


def test_unknown_value_is_an_error_listing_close_values() -> None:
    with pytest.raises(SpecError) as err:
        relevance_matrix([text("t1", where={"baseColour": ["Red", "Navy Blu"]})], ITEMS)
    message = str(err.value)
    assert "query 't1': where: no item has baseColour='Navy Blu'" in message
    assert "did you mean 'Navy Blue'?" in message and "Black, Brown, Navy Blue, Red" in message
    with pytest.raises(SpecError, match="where_not: no item has gender='Girls'"):
        check_queries([text("t2", where={"gender": "Men"}, where_not={"gender": "Girls"})], ITEMS)
    with pytest.raises(SpecError, match="image_where: no item has field 'colour'"):
        check_queries([ImageQuery(id="i", image_where={"colour": "Red"}, ids=["2"])], ITEMS)


def test_empty_values_count_as_absent() -> None:
    with pytest.raises(SpecError, match="no item has field 'lace_colour'"):
        check_queries([text("t1", where={"lace_colour": "White"})], ITEMS)


def test_errors_name_the_query_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", {"id": "t1", "text": "x", "where": {"usage": "a"}})
    with pytest.raises(SpecError, match=r"q\.jsonl: query 't1': where: no item has field 'usage'"):
        relevance_matrix(load_query_set(path), ITEMS)


def test_valid_query_matching_nothing_counts_zero() -> None:
    queries = [
        text("t1", where={"articleType": "Casual Shoes", "gender": "Women"}),
        text("t2", ids=["not-in-this-split"]),
    ]
    assert relevance_matrix(queries, ITEMS).sum(axis=1).tolist() == [0, 0]


# --- relevance -----------------------------------------------------------------------------


def test_relevance_matrix_semantics() -> None:
    queries = [
        text("red heels", where={"articleType": "heels", "baseColour": " RED "}),  # any case
        text("red or navy", where={"baseColour": ["Red", "Navy Blue"]}),
        text("women", where={"gender": ["Women", "Unisex"]}, where_not={"baseColour": "Black"}),
        text("not red heels", where={"articleType": "Heels"}, where_not={"baseColour": "Red"}),
        text("ids plus", where={"articleType": "Sandals"}, ids=["2", "unknown"]),
        text("not any", where={"gender": ["Men", "Women", "Unisex"]}, where_not={"gender": "Men"}),
    ]
    ids = [i.id for i in ITEMS]
    relevant = relevance_matrix(queries, ITEMS)
    assert relevant.shape == (6, 6) and relevant.dtype == bool
    got = [[ids[n] for n in np.flatnonzero(row)] for row in relevant]
    assert got == [
        ["9", "11"],
        ["9", "2", "11", "3"],
        ["9", "11", "3"],
        ["10"],
        ["2", "4"],
        ["9", "10", "11", "3"],  # item 4 has no gender: matches no condition on it
    ]


def test_where_not_excludes_items_matching_any_condition() -> None:
    query = text("t", where={"gender": "Women"}, where_not={"baseColour": "Red", "gender": "Men"})
    assert relevance_matrix([query], ITEMS)[0].tolist() == [False, True, False, False, False, False]


# --- image queries -------------------------------------------------------------------------


def test_image_queries_resolve_in_id_order_and_exclude_themselves() -> None:
    queries = [
        ImageQuery(id="a", image_where={"articleType": "Heels", "baseColour": "Red"}, pick=0,
                   where={"articleType": "Heels"}),
        ImageQuery(id="b", image_where={"articleType": "Heels", "baseColour": "Red"}, pick=1,
                   where={"articleType": "Heels"}),
        ImageQuery(id="c", image_where={"articleType": "Heels", "baseColour": "Red"}, pick=2,
                   where={"articleType": "Heels"}),  # modulo: wraps to the first
        ImageQuery(id="d", image_id="3", where={"gender": "Unisex"}, ids=["4"]),
        ImageQuery(id="e", image_id="404", where={"articleType": "Heels"}),  # not among items
        ImageQuery(id="f", image_where={"articleType": "Casual Shoes", "gender": "Women"},
                   where={"articleType": "Heels"}),  # valid values, no match
    ]  # fmt: skip
    rows = resolve_image_queries(queries, ITEMS)
    ids = [ITEMS[r].id if r >= 0 else None for r in rows]
    assert ids == ["9", "11", "9", "3", None, None]  # "9" < "11": numeric order
    relevant = relevance_matrix(queries, ITEMS)
    assert [ITEMS[n].id for n in np.flatnonzero(relevant[0])] == ["10", "11"]  # not "9" itself
    assert [ITEMS[n].id for n in np.flatnonzero(relevant[1])] == ["9", "10"]
    assert [ITEMS[n].id for n in np.flatnonzero(relevant[3])] == ["4"]  # "3" is the query
    assert relevant[4].sum() == 3 and relevant[5].sum() == 3  # unresolved: callers skip them
    assert resolve_image_queries([text("t", ids=["1"])], ITEMS).tolist() == [-1]


# --- applicability -------------------------------------------------------------------------


def test_applies_to_needs_required_fields(tmp_path: Path) -> None:
    lace = load_query_set(FOOTWEAR / "queries_lace.jsonl")
    result = applies_to(lace, ITEMS)
    assert not result and "no item has 'lace_colour'" in result.reason
    laced = [*ITEMS, item("12", articleType="Sports Shoes", lace_colour="White")]
    assert applies_to(lace, laced) and applies_to(lace, laced).reason is None
    plain = write_jsonl(tmp_path / "q.jsonl", {"id": "t", "text": "x", "ids": ["1"]})
    assert applies_to(load_query_set(plain), ITEMS)
    assert not applies_to(load_query_set(plain), ITEMS, requires_field=["usage"])


# --- shipped footwear queries --------------------------------------------------------------


def test_shipped_footwear_query_counts() -> None:
    text_queries = load_query_set(FOOTWEAR / "queries_text.jsonl")
    image_queries = load_query_set(FOOTWEAR / "queries_image.jsonl")
    assert text_queries.kind == "text" and len(text_queries.queries) == 39
    assert image_queries.kind == "image" and len(image_queries.queries) == 13
    assert len({q.text for q in text_queries.queries}) == 39
    lace_text = load_query_set(FOOTWEAR / "queries_lace.jsonl")
    lace_image = load_query_set(FOOTWEAR / "queries_lace_image.jsonl")
    assert lace_text.kind == "text" and len(lace_text.queries) == 39
    assert len({q.text for q in lace_text.queries}) == 39
    assert lace_image.kind == "image" and len(lace_image.queries) == 13
    assert lace_text.header.requires_field == lace_image.header.requires_field == ["lace_colour"]


@pytest.fixture(scope="module")
def footwear_items(catalogue_dir: Path) -> list[Item]:
    """The real footwear rows of styles.csv as items (read directly, without `prepare`)."""
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(catalogue_dir / "styles.csv", dtype=str, keep_default_na=False)
    frame = frame[frame["masterCategory"] == "Footwear"]
    columns = [c for c in frame.columns if c != "id"]
    return [
        Item(
            id=row["id"],
            fields={c: row[c] for c in columns},
            path=catalogue_dir / "images" / f"{row['id']}.jpg",
        )
        for row in frame.to_dict("records")
    ]


def test_text_queries_cover_the_real_footwear(footwear_items: list[Item]) -> None:
    queries = load_query_set(FOOTWEAR / "queries_text.jsonl")
    counts = relevance_matrix(queries, footwear_items).sum(axis=1)
    low = {q.id: int(c) for q, c in zip(queries.queries, counts, strict=True) if c < 10}
    assert not low, f"queries with fewer than 10 relevant footwear items: {low}"
    # Every value a query names is common enough to occur in any 20% test split.
    values: dict[tuple[str, str], int] = {}
    for q in queries.queries:
        for field, value in q.where.items():
            for v in [value] if isinstance(value, str) else value:
                values[(field, v)] = sum(i.fields.get(field) == v for i in footwear_items)
    rare = {key: n for key, n in values.items() if n < 30}
    assert not rare, f"values too rare to be in every test split: {rare}"


def test_image_queries_resolve_on_the_real_footwear(footwear_items: list[Item]) -> None:
    queries = load_query_set(FOOTWEAR / "queries_image.jsonl")
    rows = resolve_image_queries(queries, footwear_items)
    assert (rows >= 0).all()
    relevant = relevance_matrix(queries, footwear_items)
    assert not relevant[np.arange(len(rows)), rows].any()  # never relevant to itself
    assert (relevant.sum(axis=1) >= 40).all()  # so each resolves within a 20% test split too
