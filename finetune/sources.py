"""Fine-tuning data sources: one split of any evalsuite reader's items, checked for training.

The data are named as a benchmark YAML names them (``data.reader``, ``data.path``,
``data.options``), through the same registry (:mod:`evalsuite.data`). A reader that returns a
list is checked here at start (items without a caption dropped; with ``data.on_bad_image:
skip`` every image decoded once, in threads, and the unreadable ones dropped), each drop
counted. A lazy sequence (a streamed source, e.g. WebDataset shards) is not read: only its
first items are looked at, for a caption (:func:`probe_streamed`); :mod:`finetune.data`
replaces its unusable items while training.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from evalsuite.data import get_reader
from evalsuite.data.items import Item
from evalsuite.errors import ConfigError, DataError, EvalSuiteError, ItemError, SpecError
from evalsuite.images import load_item_image
from finetune.captions import caption_choices
from finetune.config import DataConfig, ReplayConfig, TrainConfig

log = logging.getLogger("finetune.data")


class Picked(Sequence[Item]):
    """The items at ``indices`` of a (lazy) sequence, read only when asked for."""

    def __init__(self, items: Sequence[Item], indices: Sequence[int]) -> None:
        self.items, self.indices = items, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.items[self.indices[index]]


def open_source(source: DataConfig | ReplayConfig, split: str | None) -> Sequence[Item]:
    """The items of one split of a data source, through evalsuite's reader registry."""
    key = "data.replay.options" if isinstance(source, ReplayConfig) else "data.options"
    try:
        return get_reader(source.reader)(Path(source.path), split, **source.options)
    except SpecError as err:  # a bad reader option is a config error here
        raise ConfigError(f"{key} ({source.reader} reader, {source.path}): {err}") from None


@dataclass(frozen=True)
class Labels:
    """Class index of an item's target field (-1: none); ``required``: no class, not usable."""

    index: Mapping[str, int]
    field: str
    required: bool = False

    def of(self, item: Item) -> int:
        return self.index.get(item.fields.get(self.field, ""), -1)


@dataclass(frozen=True)
class Split:
    """One split's items (a list, or a lazy sequence checked while training) and what was
    dropped from it at start."""

    items: Sequence[Item]
    skipped: dict[str, int]

    @property
    def streamed(self) -> bool:
        return not isinstance(self.items, list)


def readable(items: Sequence[Item], threads: int = 4) -> tuple[list[Item], list[str]]:
    """Items whose image decodes, and the ids of those that do not."""

    def ok(item: Item) -> bool:
        try:
            load_item_image(item)
        except (EvalSuiteError, OSError, ValueError):
            return False
        return True

    with ThreadPoolExecutor(max_workers=threads) as pool:
        flags = list(pool.map(ok, items))
    good = [item for item, flag in zip(items, flags, strict=True) if flag]
    return good, [item.id for item, flag in zip(items, flags, strict=True) if not flag]


def read_split(
    cfg: TrainConfig,
    split: str | None,
    source: DataConfig | ReplayConfig | None = None,
    streamed: bool = True,
) -> Split:
    """Read a split of ``source`` (default ``cfg.data``), subsample (data.max_items); a list
    (or, with ``streamed`` False, any source) is checked now: items without a caption or
    image dropped and counted. A streamed source is checked while training."""
    data, source = cfg.data, source or cfg.data
    fields = caption_fields(cfg, source)
    items = open_source(source, split)
    if source is data and data.max_items is not None and len(items) > data.max_items:
        keep = sorted(random.Random(cfg.train.seed).sample(range(len(items)), data.max_items))
        items = Picked(items, keep) if not isinstance(items, list) else [items[i] for i in keep]
    skipped = {"no_caption": 0, "bad_image": 0}
    if not isinstance(items, list):
        if streamed:
            return Split(items, skipped)
        items = list(items)
    where = f"{source.path} ({split or 'all'})"
    with_caption = [i for i in items if caption_choices(i, fields)]
    skipped["no_caption"] = len(items) - len(with_caption)
    if skipped["no_caption"]:
        log.warning(
            "%s: skipped %d item(s) without a %s",
            where,
            len(items) - len(with_caption),
            " or ".join(fields),
        )
    if not with_caption and items:
        raise DataError(f"{where}: no item has a caption in {' or '.join(fields)}")
    items = with_caption
    if data.on_bad_image == "skip":
        items, bad = readable(items)
        skipped["bad_image"] = len(bad)
        if bad:
            log.warning("%s: skipped %d unreadable image(s), e.g. %s", where, len(bad), bad[:5])
    return Split(items, skipped)


def caption_fields(cfg: TrainConfig, source: DataConfig | ReplayConfig) -> tuple[str, ...]:
    """The caption fields of a source (replay: its own, else data.caption_field)."""
    fields = source.caption_field or cfg.data.caption_field
    return (fields,) if isinstance(fields, str) else tuple(fields)


def probe_streamed(split: Split, fields: Sequence[str], where: str, count: int = 16) -> None:
    """Look at a streamed split's first items (fields only, no image decoded): none with a
    caption is a wrong caption field or reader option, better said now than mid-run."""
    seen: list[Item] = []
    for index in range(min(count, len(split.items))):
        try:
            item = split.items[index]
        except ItemError:
            continue
        if caption_choices(item, fields):
            return
        seen.append(item)
    if seen:
        keys = sorted({*seen[0].fields, *seen[0].lists, *(["caption"] if seen[0].caption else [])})
        raise DataError(
            f"{where}: none of the first {len(seen)} items has a caption in "
            f"{' or '.join(fields)} (data.caption_field); the first item has: {keys}"
        )


def only_labelled(split: Split, labels: Labels) -> Split:
    """A listed split without the items that have no class (``labels.required``)."""
    if split.streamed or not labels.required:
        return split
    items = [item for item in split.items if labels.of(item) >= 0]
    return Split(items, {**split.skipped, "no_class": len(split.items) - len(items)})


def class_names(cfg: TrainConfig, splits: Sequence[Split]) -> dict[str, str]:
    """Target value -> name used in prompts: data.classes, or the sorted values present in
    the listed splits (a streamed training set is not read before training)."""
    classes = cfg.data.classes
    if isinstance(classes, dict):
        return dict(classes)
    if classes is not None:
        return {value: value for value in classes}
    listed = [s for s in splits if not s.streamed]
    if listed and len(listed) < len(splits):
        log.warning(
            "data.classes not given: the classes are the %s values of the validation split "
            "(the streamed training set is not read before training)",
            cfg.data.target_field,
        )
    if not listed:
        raise ConfigError(
            f"data.classes: needed with a streamed {cfg.data.reader} training set and no "
            "validation split (it is not read before training): list the target values"
        )
    field_name = cfg.data.target_field
    values = {i.fields.get(field_name, "") for s in listed for i in s.items}
    values.discard("")
    if not values:
        raise DataError(f"no item has a value for data.target_field {field_name!r}")
    return {value: value for value in sorted(values)}
