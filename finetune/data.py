"""Training and validation data: any evalsuite reader's items -> batches of pixels, tokens, labels.

The only place that reads images and captions for fine-tuning. The data are named as a
benchmark YAML names them (``data.reader``, ``data.path``, ``data.options``), through the same
registry (:mod:`evalsuite.data`). Decisions:

* Images are decoded with :func:`evalsuite.images.load_item_image` and the model's own
  preprocessing (no augmentation, so a resumed run sees exactly the same pixels).
* A reader that returns a list (every reader but ``webdataset``) is checked at start:
  items without a caption are dropped, and with ``data.on_bad_image: skip`` every image is
  decoded once (threads) and the unreadable ones dropped, with one warning giving the count
  and the first ids (``error`` skips that scan and fails on the first bad image). Dropping
  at build time keeps every batch full, which the accumulation cache and the cross-process
  gather need.
* A streamed reader (a lazy sequence, e.g. WebDataset shards) is not read before training:
  an item without a caption (or a class, for ``zeroshot_ce``) or with an unreadable image is
  replaced, when its turn comes, by a seeded random other item of the data set (so batches
  stay full and the order stays a function of the seed), and counted (``items_replaced`` in
  each epoch's record of ``training.json``, all epochs so far). Its first items are looked at
  (not decoded) at start, so a wrong caption field fails at once. Its classes come from
  ``data.classes`` or the validation split, which is read whole.
* Several caption fields (``data.caption_field: [a, b]``, or a field holding a list): every
  caption of an item is a choice, one drawn per (seed, epoch, index) in training, the first
  in validation. Hard negatives and caption choices are seeded the same way, so they depend
  on neither worker processes, RNG state nor an interruption.
* Replay (``data.replay``): a second data set fills ``round(fraction x batch_size)`` places
  of every training batch (:class:`finetune.sampling.ReplaySampler`).
* Hard negative captions swap the item's target value for another one of the vocabulary
  inside the caption (case-insensitive, whole words).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from evalsuite.data import get_reader
from evalsuite.data.items import Item
from evalsuite.errors import (
    ConfigError,
    DataError,
    EvalSuiteError,
    ImageError,
    ItemError,
    SpecError,
)
from evalsuite.images import load_item_image
from evalsuite.models.base import ClipModel
from finetune.captions import Captions, HardNegatives, build_hard_negatives, caption_choices
from finetune.checkpoint import data_fingerprint
from finetune.config import DataConfig, ReplayConfig, TrainConfig
from finetune.sampling import EpochSampler, ReplaySampler

log = logging.getLogger(__name__)
MAX_REPLACEMENTS = 1000  # unusable streamed items in a row before training gives up


# --- reading -------------------------------------------------------------------------------


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


# --- datasets and loaders ----------------------------------------------------------------------


@dataclass
class CaptionDataset(Dataset):
    """Item -> {pixel_values, caption, label[, negatives], replaced}; ``epoch`` seeds the
    caption drawn and the hard negatives. A streamed split replaces an unusable item by the
    next usable one (``replaced`` counts the items passed over)."""

    split: Split
    transform: Callable[[Any], torch.Tensor]
    captions: Captions
    labels: Labels
    negatives: HardNegatives | None = None
    negative_field: str = ""
    replace_bad_images: bool = True  # streamed: data.on_bad_image skip; error: raise
    source: str = "data"  # names the data in errors
    epoch: int = field(default=0)

    def __len__(self) -> int:
        return len(self.split.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.split.streamed:
            return self.example(index, self.split.items[index], load_item_image)
        size, failed, reason = len(self.split.items), 0, ""
        at = index
        for attempt in range(MAX_REPLACEMENTS):
            try:
                example = self.example(at, self.split.items[at], load_item_image)
            except (_Unusable, ItemError) as exc:
                if isinstance(exc, ImageError) and not self.replace_bad_images:
                    raise
                failed, reason = failed + 1, str(exc) or reason
                if failed == 1:
                    log.debug("item %d unusable, replaced: %s", at, exc)
                # a seeded random other item, not the next one: a run of bad items must not
                # put one good item several times into a batch (a false negative pair)
                rng = random.Random(f"replace/{self.captions.seed}/{self.epoch}/{index}/{attempt}")
                at = rng.randrange(size)
                continue
            example["replaced"] = failed
            return example
        raise DataError(
            f"{self.source}: {MAX_REPLACEMENTS} items drawn for index {index} had no caption "
            f"in {' or '.join(self.captions.fields)}, no class (zeroshot_ce) or no readable "
            f"image; the last: {reason or 'no caption or class'}"
        )

    def example(self, index: int, item: Item, load) -> dict[str, Any]:
        caption = self.captions.pick(item, index, self.epoch)
        label = self.labels.of(item)
        if caption is None or (self.labels.required and label < 0):
            raise _Unusable
        example = {
            "pixel_values": self.transform(load(item)),
            "caption": caption,
            "label": label,
            "replaced": 0,
        }
        if self.negatives is not None:
            value = item.fields.get(self.negative_field, "")
            example["negatives"] = self.negatives.captions(caption, value, index, self.epoch)
        return example


class _Unusable(Exception):
    """A streamed item without a caption (or a class where one is required)."""

    def __str__(self) -> str:
        return "no caption, or no class where one is required"


class MixedDataset(Dataset):
    """The target items, then the replay items (indices ``len(target) + j``)."""

    def __init__(self, target: CaptionDataset, replay: CaptionDataset) -> None:
        self.target, self.replay = target, replay

    def __len__(self) -> int:
        return len(self.target) + len(self.replay)

    def __getitem__(self, index: int) -> dict[str, Any]:
        size = len(self.target)
        if index < size:
            return self.target[index]
        example = self.replay[index - size]
        example["replay"] = True
        return example

    @property
    def epoch(self) -> int:
        return self.target.epoch

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self.target.epoch = self.replay.epoch = epoch


class Collator:
    """Stacks pixels, tokenises captions (and hard negatives, flattened item-major)."""

    def __init__(self, tokenize: Callable[[Sequence[str]], torch.Tensor]) -> None:
        self.tokenize = tokenize

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {
            "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "input_ids": self.tokenize([e["caption"] for e in examples]),
            "labels": torch.tensor([e["label"] for e in examples], dtype=torch.long),
            "replaced": torch.tensor(sum(e["replaced"] for e in examples)),
            "replay": torch.tensor([e.get("replay", False) for e in examples]),
        }
        if "negatives" in examples[0]:
            batch["negative_ids"] = self.tokenize([t for e in examples for t in e["negatives"]])
        return batch


def build_loader(dataset: Dataset, sampler: Sampler, cfg: TrainConfig, tokenize) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        collate_fn=Collator(tokenize),
        num_workers=cfg.data.num_workers,
    )


@dataclass
class Loaders:
    classes: dict[str, str]  # target value -> name in prompts; the order gives the index
    train: DataLoader
    val: DataLoader | None
    counts: dict[str, Any]  # items per split and skipped items: recorded in training.json


def replay_per_batch(cfg: TrainConfig) -> int:
    """Replay items in each batch: round(fraction x batch_size), at least 1, leaving 1."""
    fraction, size = cfg.data.replay.fraction, cfg.train.batch_size
    per_batch = round(fraction * size)
    if fraction > 0 and not 1 <= per_batch < size:
        raise ConfigError(
            f"data.replay.fraction {fraction} of train.batch_size {size} gives {per_batch} "
            "replay item(s) per batch: it must leave at least 1 replay and 1 target item; "
            "change the fraction or the batch size"
        )
    return per_batch


def build_loaders(cfg: TrainConfig, model: ClipModel, rank: int = 0, world: int = 1) -> Loaders:
    """Train and val loaders of this process (its share of each split), and the classes."""
    splits = {"train": read_split(cfg, cfg.data.train_split)}
    if splits["train"].streamed:
        where = f"{cfg.data.path} ({cfg.data.train_split or 'all'})"
        probe_streamed(splits["train"], caption_fields(cfg, cfg.data), where)
    if cfg.data.val_split:
        splits["val"] = read_split(cfg, cfg.data.val_split, streamed=False)
    classes = class_names(cfg, list(splits.values()))
    index = {name: k for k, name in enumerate(classes)}
    # only labelled items can be classified by zeroshot_ce
    labels = Labels(index, cfg.data.target_field, cfg.loss.objective == "zeroshot_ce")
    splits = {k: only_labelled(s, labels) for k, s in splits.items()}
    train_split = splits["train"]
    negatives = build_hard_negatives(cfg, train_split.items, train_split.streamed, list(classes))
    seed, fields = cfg.train.seed, caption_fields(cfg, cfg.data)
    skip_bad = cfg.data.on_bad_image == "skip"
    train: Dataset = CaptionDataset(
        splits["train"],
        model.transform,
        Captions(fields, seed, True),
        labels,
        negatives,
        cfg.hard_negative_field,
        skip_bad,
    )
    counts: dict[str, Any] = {f"{k}_items": len(s.items) for k, s in splits.items()}
    counts["skipped"] = {k: s.skipped for k, s in splits.items()}
    step = cfg.train.batch_size * cfg.train.accum_steps
    sampler: Sampler = EpochSampler(len(train), seed, rank, world, True, multiple_of=step)
    if cfg.data.replay is not None and (per_batch := replay_per_batch(cfg)):
        train, sampler, counts["replay"] = with_replay(cfg, train, labels, per_batch, rank, world)
    val = None
    if "val" in splits:
        val_set = CaptionDataset(splits["val"], model.transform, Captions(fields), labels)
        val_sampler = EpochSampler(len(val_set), 0, rank, world, shuffle=False, multiple_of=None)
        val = build_loader(val_set, val_sampler, cfg, model.tokenize)
    return Loaders(classes, build_loader(train, sampler, cfg, model.tokenize), val, counts)


def with_replay(
    cfg: TrainConfig, train: CaptionDataset, labels: Labels, per_batch: int, rank: int, world: int
) -> tuple[MixedDataset, ReplaySampler, dict[str, Any]]:
    """The training set mixed with ``data.replay`` (``per_batch`` items of every batch)."""
    spec = cfg.data.replay
    assert spec is not None
    split = only_labelled(read_split(cfg, spec.split, spec), labels)
    if not len(split.items):
        raise DataError(f"data.replay: {spec.path} ({spec.split or 'all'}) has no usable item")
    fields = caption_fields(cfg, spec)
    replay = CaptionDataset(
        split,
        train.transform,
        Captions(fields, cfg.train.seed, True),
        labels,
        train.negatives,
        train.negative_field,
        train.replace_bad_images,
    )
    sampler = ReplaySampler(
        len(train),
        len(replay),
        cfg.train.batch_size,
        per_batch,
        cfg.train.seed,
        rank,
        world,
        cfg.train.accum_steps,
    )
    record = {
        **data_fingerprint(spec.path, spec.reader, spec.options),
        **spec.model_dump(exclude={"caption_field", "path"}),
        "caption_field": list(fields),
        "items": len(split.items),
        "skipped": split.skipped,
        "per_batch": per_batch,
        "batch_size": cfg.train.batch_size,
    }
    return MixedDataset(train, replay), sampler, record


def set_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Start ``epoch`` (order, captions, hard negatives), skipping batches already trained on."""
    loader.sampler.set_epoch(epoch, skip_batches * loader.batch_size)
    loader.dataset.epoch = epoch
