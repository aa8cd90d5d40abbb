"""The ``webdataset`` reader: WebDataset tar shards as a lazy, randomly accessible sequence.

The trainer samples by index with a seeded permutation (a resumed run and several processes
see the order every other reader gives), so the shards are read through wids' indexed tar
access, not streamed in shard order. Opening reads only counts (``sizes.json``, a wids index,
or else the tar headers) and each shard's first block; a shard is indexed when one of its
items is first asked for, and no image is ever decoded here: an item carries the encoded
bytes (``Item.data``), and a missing or corrupt image fails in ``load_item_image`` like any
unreadable file, where scoring and training skip and count it.

Sample -> Item: ``__key__`` is the id (option ``id_key``: a key of the sample's .json instead),
the image the first member whose extension is in ``image_key`` ("jpg;jpeg;png;webp", as
open_clip names it), the caption ``caption_key`` ("txt"); every key of the .json is a field
(a list of strings goes to ``Item.lists``), and so is any other small UTF-8 member (.cls).
"""

from __future__ import annotations

import bisect
import json
import operator
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

from evalsuite.data.items import Item
from evalsuite.data.shard_files import Shard, resolve_shards
from evalsuite.data.text import field_text, is_missing, record_fields
from evalsuite.errors import DataError, ItemError, SpecError

if TYPE_CHECKING:
    from wids.wids import IndexedTarSamples

_OPTIONS = {"image_key", "caption_key", "id_key", "open_shards"}
_SMALL_TEXT = 4096  # bytes: larger non-image members (embeddings, masks) are not fields


class ShardItems(Sequence[Item]):
    """Items of WebDataset shards by global index, shard after shard, in each shard's order.

    At most ``open_shards`` shard indexes are kept per process (least recently used closed).
    Pickling (a DataLoader worker) carries only the shard list: each process opens its own.
    """

    def __init__(self, shards: list[Shard], options: dict[str, Any]) -> None:
        self.shards = shards
        self._image_exts = _extensions(options, "image_key", "jpg;jpeg;png;webp")
        self._caption_exts = _extensions(options, "caption_key", "txt")
        self._id_key: str | None = options.get("id_key")
        self._open_limit = open_shards_option(options)
        self._ends: list[int] = []
        for shard in shards:
            self._ends.append((self._ends[-1] if self._ends else 0) + shard.count)
        self._reset()

    def _reset(self) -> None:
        self._open: OrderedDict[int, IndexedTarSamples] = OrderedDict()
        self._pid = os.getpid()
        self.shards_indexed = 0  # shards indexed by this process: laziness is observable

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # open files and mmaps stay in their process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @overload
    def __getitem__(self, index: SupportsIndex) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Item | list[Item]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = operator.index(index)  # numpy integers too (the runner's positions)
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"item {index} of {len(self)}")
        number = bisect.bisect_right(self._ends, position)
        inner = position - (self._ends[number - 1] if number else 0)
        return self._item(number, self._samples(number)[inner])

    def __iter__(self) -> Iterator[Item]:
        for number, shard in enumerate(self.shards):
            samples = self._samples(number) if shard.count else None
            for inner in range(shard.count):
                yield self._item(number, samples[inner])  # type: ignore[index]

    def close(self) -> None:
        """Close every open shard (its file and mmap)."""
        while self._open:
            self._open.popitem()[1].close()

    def _samples(self, number: int) -> IndexedTarSamples:
        """Shard ``number``'s wids index, built on first use and checked against its count."""
        if self._pid != os.getpid():  # a forked worker: the parent's mmaps are not ours to use
            self._reset()
        if number in self._open:
            self._open.move_to_end(number)
            return self._open[number]
        from wids.wids import IndexedTarSamples  # imports torch: only when a shard is read

        shard = self.shards[number]
        try:
            samples = IndexedTarSamples(path=str(shard.path))
        except (OSError, ValueError, AssertionError, UnicodeDecodeError) as exc:
            raise DataError(f"{shard.path}: cannot index the shard ({exc})") from None
        if len(samples) != shard.count:
            samples.close()
            raise DataError(
                f"{shard.path}: the shard holds {len(samples)} samples but {shard.counted_by} "
                f"says {shard.count}; rewrite that count"
            )
        self.shards_indexed += 1
        self._open[number] = samples
        if len(self._open) > self._open_limit:
            self._open.popitem(last=False)[1].close()
        return samples

    def _item(self, number: int, sample: dict[str, Any]) -> Item:
        where = f"{self.shards[number].path}: sample {sample['__key__']!r}"
        members = {
            name[1:]: value.getvalue() for name, value in sample.items() if name.startswith(".")
        }
        fields, lists = _json_fields(members.get("json"), where)
        used = {"json", *self._image_exts, *self._caption_exts}
        for ext, data in members.items():
            text = _small_text(data) if ext not in used else None
            if text is not None and ext not in fields:
                fields[ext] = field_text(text)
        image = next((members[e] for e in self._image_exts if e in members), b"")
        caption = next((members[e] for e in self._caption_exts if e in members), None)
        return Item(
            id=self._item_id(sample["__key__"], fields, where),
            fields=fields,
            data=image,  # b"" when the sample has no image: ImageError "empty" when loaded
            caption=_caption(caption, where),
            lists=lists,
        )

    def _item_id(self, key: str, fields: dict[str, str], where: str) -> str:
        if self._id_key is None:
            return key
        value = fields.get(self._id_key, "")
        if not value:
            raise ItemError(f"{where}: no id: its .json has no {self._id_key!r} (id_key)")
        return value


def _extensions(options: dict[str, Any], name: str, default: str) -> list[str]:
    value = options.get(name, default)
    if not isinstance(value, str) or not value.strip(";").strip():
        raise SpecError(f"webdataset reader: {name} must be extensions like 'jpg;png'")
    return [ext.strip().lower().lstrip(".") for ext in value.split(";") if ext.strip()]


def _json_fields(
    data: bytes | None, where: str
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Fields (text) and list fields (tuples of text) of a sample's .json member."""
    if data is None:
        return {}, {}
    try:
        record = json.loads(data)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both
        raise ItemError(f"{where}: its .json member is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ItemError(f"{where}: its .json member is not an object of fields")
    try:
        return record_fields(f"{where}, .json", record)
    except DataError as exc:  # one sample's fields: the others may be fine
        raise ItemError(str(exc)) from None


def _small_text(data: bytes) -> str | None:
    """A member as text when it is small UTF-8 (a .cls label), else None (binary data)."""
    if len(data) > _SMALL_TEXT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _caption(data: bytes | None, where: str) -> str | None:
    if data is None:
        return None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ItemError(f"{where}: its caption is not UTF-8 ({exc})") from None
    return None if is_missing(text) else text


def read_webdataset(path: Path, split: str | None = None, **options: Any) -> ShardItems:
    """The items of WebDataset shards, lazily (see the module doc).

    ``path``: a .tar, a folder of *.tar (by name; with ``split`` its ``<split>-*.tar`` or
    ``<split>/*.tar``), a brace pattern (``train-{000000..000009}.tar``, ``{split}`` allowed)
    or a wids shard index .json. Options: ``image_key``, ``caption_key``, ``id_key``,
    ``open_shards`` (shard indexes kept open per process, default 64).
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise SpecError(
            f"webdataset reader: unknown option(s) {unknown}; known: {sorted(_OPTIONS)}"
        )
    open_shards_option(options)  # checked before any shard is looked at
    for name in ("image_key", "caption_key", "id_key"):
        if name in options and not (options[name] is None or isinstance(options[name], str)):
            raise SpecError(f"webdataset reader: option {name} must be text, got {options[name]!r}")
    return ShardItems(resolve_shards(path, split), dict(options))


def open_shards_option(options: dict[str, Any]) -> int:
    """The ``open_shards`` option: a whole number >= 1 (default 64)."""
    value = options.get("open_shards", 64)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(
            f"webdataset reader: open_shards must be a whole number >= 1, got {value!r}"
        )
    return value
