"""Retrieval query sets: JSONL predicates on item fields -> a boolean relevance matrix.

One JSON object a line (blank lines are ignored)::

    {"header": {"requires_field": ["lace_colour"], "description": "..."}}   # optional, line 1
    {"id": "t01", "text": "black formal shoes for men",
     "where": {"articleType": "Formal Shoes", "baseColour": "Black", "gender": ["Men", "Unisex"]}}
    {"id": "i01", "image_where": {"articleType": "Heels", "baseColour": "Red"}, "pick": 0,
     "where": {"articleType": "Heels", "baseColour": "Red"}}

Relevant items of a query = (items matching every ``where`` condition and no ``where_not``
condition) plus the items listed in ``ids``. A condition's value is a string or a list of
allowed strings (any of); values compare case-insensitively; an item lacking a field (or with
an empty value) matches no condition on it. ``where_not`` excludes items that match ANY of its
conditions. An image query names its image by ``image_id``, or by ``image_where`` + ``pick``:
the pick-th (modulo their number) of the matching items sorted by id (numerically for numeric
ids), so it resolves within whatever items are scored (e.g. the test split). The query image
is never relevant to itself; retrieval must exclude it from the ranking.

Checks against the scored items (:func:`check_queries`): a field that no item has, or a value
that no item has for that field, raises SpecError naming the query, with close suggestions: a
typo must not read as "zero relevant items". A query whose values all exist but whose
combination matches nothing (or whose ``ids`` are not among the items) is valid: its count is
0 and the caller reports it. So queries shipped with a benchmark should use values common
enough to appear in any split of the data they target.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from evalsuite.data.items import Item
from evalsuite.errors import SpecError
from evalsuite.registry import suggest
from evalsuite.schema import FieldNames, StrictModel, display_path, validation_message

Predicate = dict[str, str | list[str]]
IMAGE_KEYS = ("image_id", "image_where")


class _QueryModel(StrictModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # {"year": 2012} reads as "2012"


def _check_predicate(predicate: Predicate) -> Predicate:
    for field, value in predicate.items():
        values = [value] if isinstance(value, str) else value
        if not values or not all(v.strip() for v in values):
            raise ValueError(f"{field}: give a non-empty value or list of values")
    return predicate


class _Query(_QueryModel):
    id: str = Field(min_length=1)
    where: Predicate = Field(default_factory=dict)
    where_not: Predicate = Field(default_factory=dict)
    ids: list[str] = Field(default_factory=list)  # explicitly relevant item ids

    @field_validator("where", "where_not")
    @classmethod
    def _values(cls, predicate: Predicate) -> Predicate:
        return _check_predicate(predicate)

    @model_validator(mode="after")
    def _has_relevance(self) -> _Query:
        if not self.where and not self.ids:
            raise ValueError("give `where` and/or `ids`: which items are relevant")
        return self


class TextQuery(_Query):
    text: str = Field(min_length=1)


class ImageQuery(_Query):
    image_id: str | None = None
    image_where: Predicate | None = None
    pick: int = Field(0, ge=0)  # index into the image_where matches sorted by id

    @field_validator("image_where")
    @classmethod
    def _image_values(cls, predicate: Predicate | None) -> Predicate | None:
        return None if predicate is None else _check_predicate(predicate)

    @model_validator(mode="after")
    def _one_image(self) -> ImageQuery:
        if (self.image_id is None) == (self.image_where is None):
            raise ValueError("give exactly one of `image_id` or `image_where` (+ `pick`)")
        if self.image_id is not None and self.pick:
            raise ValueError("`pick` goes with `image_where`, not with `image_id`")
        return self


Query = TextQuery | ImageQuery


class QuerySetHeader(_QueryModel):
    requires_field: FieldNames = Field(default_factory=list)  # else the set does not apply
    description: str | None = None


@dataclass(frozen=True)
class QuerySet:
    """A parsed query file: all text or all image queries, plus the header."""

    path: Path
    queries: tuple[Query, ...]
    header: QuerySetHeader

    @property
    def kind(self) -> Literal["text", "image"]:
        return "image" if isinstance(self.queries[0], ImageQuery) else "text"

    def canonical(self) -> dict[str, Any]:
        """Parsed content as plain data (formatting-independent; used by spec_hash)."""
        return {
            "header": self.header.model_dump(mode="json"),
            "queries": [q.model_dump(mode="json", exclude_defaults=True) for q in self.queries],
        }


# --- loading -------------------------------------------------------------------------------


def _parse_line(obj: Any, prefix: str, first: bool) -> QuerySetHeader | Query:
    if not isinstance(obj, dict):
        raise SpecError(f"{prefix}: expected a JSON object, got {type(obj).__name__}")
    if "header" in obj:
        if not first or set(obj) != {"header"}:
            raise SpecError(f"{prefix}: a header line must be the first line, with only 'header'")
        model: type[QuerySetHeader | _Query] = QuerySetHeader
        obj = obj["header"]
    else:
        model = ImageQuery if any(key in obj for key in IMAGE_KEYS) else TextQuery
        if "id" in obj:
            prefix = f"{prefix}: query {obj['id']!r}"
    try:
        return model.model_validate(obj)
    except ValidationError as err:
        raise SpecError(validation_message(err, model, prefix)) from None


def load_query_set(path: Path) -> QuerySet:
    """Parse a JSONL query file; errors name the file, line and query id."""
    path = Path(path)
    shown = display_path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SpecError(f"{shown}: cannot read query file: {err.strerror}") from None
    entries = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    header, queries, first_line = QuerySetHeader(), [], {}
    for position, (number, line) in enumerate(entries):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise SpecError(f"{shown}:{number}: invalid JSON: {err.msg}") from None
        parsed = _parse_line(obj, f"{shown}:{number}", first=position == 0)
        if isinstance(parsed, QuerySetHeader):
            header = parsed
            continue
        if parsed.id in first_line:
            raise SpecError(
                f"{shown}:{number}: query id {parsed.id!r} repeats line {first_line[parsed.id]}"
            )
        first_line[parsed.id] = number
        queries.append(parsed)
    if not queries:
        raise SpecError(f"{shown}: no queries")
    if len({type(q) for q in queries}) > 1:
        raise SpecError(f"{shown}: mixes text and image queries; use one file for each kind")
    return QuerySet(path, tuple(queries), header)


def load_queries(path: Path) -> list[Query]:
    """The queries of a JSONL file (see :func:`load_query_set` for the header)."""
    return list(load_query_set(path).queries)


# --- matching ------------------------------------------------------------------------------


def _norm(value: str) -> str:
    return value.strip().casefold()


class _FieldIndex:
    """Items' field values as integer codes, for fast vectorised predicate matching."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.n = len(items)
        self.row = {item.id: i for i, item in enumerate(items)}
        self.columns: dict[str, np.ndarray] = {}  # field -> code per item (-1: absent)
        self.codes: dict[str, dict[str, int]] = {}  # field -> normalised value -> code
        self.written: dict[str, dict[str, str]] = {}  # field -> normalised value -> as written
        for i, item in enumerate(items):
            for field, value in item.fields.items():
                if value is None or not str(value).strip():
                    continue  # an empty value counts as absent
                key = _norm(str(value))
                codes = self.codes.setdefault(field, {})
                column = self.columns.setdefault(field, np.full(self.n, -1, dtype=np.int32))
                column[i] = codes.setdefault(key, len(codes))
                self.written.setdefault(field, {}).setdefault(key, str(value))

    def check(self, query_id: str, predicate: Predicate, key: str) -> None:
        """Raise SpecError for a field no item has, or a value no item has for it."""
        for field, value in predicate.items():
            if field not in self.codes:
                fields = sorted(self.codes)
                raise SpecError(
                    f"query {query_id!r}: {key}: no item has field {field!r}"
                    f"{suggest(field, fields)}; fields: {', '.join(fields) or '(none)'}"
                )
            for v in _as_list(value):
                if _norm(v) not in self.codes[field]:
                    present = sorted(self.written[field].values())
                    raise SpecError(
                        f"query {query_id!r}: {key}: no item has {field}={v!r}"
                        f"{suggest(v, present)}; values: {_listing(present)}"
                    )

    def match(self, predicate: Predicate, any_of: bool = False) -> np.ndarray:
        """Items meeting every condition (or, with ``any_of``, at least one)."""
        result = np.full(self.n, not any_of)
        for field, value in predicate.items():
            codes = self.codes.get(field, {})
            wanted = [codes[k] for k in map(_norm, _as_list(value)) if k in codes]
            hit = np.isin(self.columns.get(field, np.full(self.n, -1)), wanted)
            result = (result | hit) if any_of else (result & hit)
        return result


def _listing(values: list[str], limit: int = 40) -> str:
    more = f" ... ({len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _id_key(item_id: str) -> tuple[int, int, str]:
    """Sort key: numeric ids numerically, then the others as text."""
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


Queries = QuerySet | Sequence[Query]  # a QuerySet lets errors name its file


def check_queries(queries: Queries, items: Sequence[Item]) -> None:
    """Raise SpecError for a predicate naming a field, or value, that no item has."""
    _checked_index(queries, items)


def _checked_index(queries: Queries, items: Sequence[Item]) -> _FieldIndex:
    index = _FieldIndex(items)
    try:
        for query in _as_queries(queries):
            for key in ("where", "where_not", "image_where"):
                predicate = getattr(query, key, None)
                if predicate:
                    index.check(query.id, predicate, key)
    except SpecError as err:
        if isinstance(queries, QuerySet):
            raise SpecError(f"{display_path(queries.path)}: {err}") from None
        raise
    return index


def _as_queries(queries: Queries) -> Sequence[Query]:
    return queries.queries if isinstance(queries, QuerySet) else queries


def _image_row(query: ImageQuery, index: _FieldIndex, ids: Sequence[str]) -> int:
    if query.image_id is not None:
        return index.row.get(query.image_id, -1)
    rows = np.flatnonzero(index.match(query.image_where or {}))
    if rows.size == 0:
        return -1
    rows = sorted(rows.tolist(), key=lambda r: _id_key(ids[r]))
    return rows[query.pick % len(rows)]


def resolve_image_queries(queries: Queries, items: Sequence[Item]) -> np.ndarray:
    """Row in ``items`` of each query's image (Q,), int; -1 where it is not among the items
    (a text query, an ``image_id`` outside this split, an ``image_where`` matching nothing):
    such queries cannot be scored here and should be reported as skipped."""
    index = _checked_index(queries, items)
    return _resolve(_as_queries(queries), index, [item.id for item in items])


def _resolve(queries: Sequence[Query], index: _FieldIndex, ids: Sequence[str]) -> np.ndarray:
    rows = [_image_row(q, index, ids) if isinstance(q, ImageQuery) else -1 for q in queries]
    return np.asarray(rows, dtype=np.int64)


def relevance_matrix(queries: Queries, items: Sequence[Item]) -> np.ndarray:
    """(Q, N) bool: item n is relevant to query q. Predicates are checked first (SpecError on
    an unknown field or value); an image query's own image is never relevant to it."""
    index = _checked_index(queries, items)
    queries = _as_queries(queries)
    relevant = np.zeros((len(queries), len(items)), dtype=bool)
    for q, query in enumerate(queries):
        if query.where:
            relevant[q] = index.match(query.where)
        if query.where_not:
            relevant[q] &= ~index.match(query.where_not, any_of=True)
        relevant[q, [index.row[i] for i in query.ids if i in index.row]] = True
    own = _resolve(queries, index, [item.id for item in items])
    scored = np.flatnonzero(own >= 0)
    relevant[scored, own[scored]] = False
    return relevant


@dataclass(frozen=True)
class Applicability:
    """Whether a query set applies to some items; falsy with a ``reason`` when it does not."""

    ok: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def applies_to(
    queryset: QuerySet, items: Sequence[Item], requires_field: Sequence[str] = ()
) -> Applicability:
    """Does the query set apply? Not when a field required by its header or by the task
    (``requires_field``) is absent from every item, e.g. lace queries on unannotated data."""
    present = {name for item in items for name, value in item.fields.items() if value}
    needed = dict.fromkeys([*queryset.header.requires_field, *requires_field])
    missing = [name for name in needed if name not in present]
    if missing:
        fields = ", ".join(repr(m) for m in missing)
        return Applicability(False, f"{display_path(queryset.path)}: no item has {fields}")
    return Applicability(True)
