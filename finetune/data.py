"""Training and validation data: a source's items -> batches of pixels, tokens, labels.

The only place that turns items into training examples (:mod:`finetune.sources` reads and
checks the items). Decisions:

* Images are decoded with :func:`evalsuite.images.load_item_image` and the model's own
  preprocessing (no augmentation, so a resumed run sees exactly the same pixels).
* A listed split was checked at start, so every batch is full, which the accumulation cache
  and the cross-process gather need. A streamed split (a lazy sequence, e.g. WebDataset
  shards) is not: an item without a caption (or a class, for ``zeroshot_ce``) or with an
  unreadable image is replaced, when its turn comes, by a seeded random other item (so
  batches stay full and the order stays a function of the seed), and counted
  (``items_replaced`` in each epoch's record of ``training.json``, all epochs so far).
* Captions and hard negatives: :mod:`finetune.captions` (one caption drawn per (seed, epoch,
  index) when an item has several).
* Replay (``data.replay``): a second data set fills ``round(fraction x batch_size)`` places
  of every training batch (:class:`finetune.sampling.ReplaySampler`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from evalsuite.data.items import Item
from evalsuite.device import spare_cores
from evalsuite.errors import (
    ConfigError,
    DataError,
    ImageError,
    ItemError,
)
from evalsuite.images import load_item_image
from evalsuite.models.base import ClipModel
from finetune.captions import Captions, HardNegatives, build_hard_negatives
from finetune.checkpoint import data_fingerprint
from finetune.config import TrainConfig
from finetune.sampling import EpochSampler, ReplaySampler
from finetune.sources import (
    Labels,
    Split,
    caption_fields,
    class_names,
    only_labelled,
    probe_streamed,
    read_split,
)

log = logging.getLogger(__name__)
MAX_REPLACEMENTS = 1000  # unusable streamed items in a row before training gives up


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


def loader_workers(cfg: TrainConfig, device_type: str, world: int) -> int:
    """``data.num_workers``, else: on CUDA one decode worker per core left to this process
    (the cores shared among the processes, at most 8), so the GPU is not left waiting for
    JPEG decoding; on the CPU none, as the forward and backward already use every core and
    workers would contend with them (benchmarks/speed/train.py)."""
    if cfg.data.num_workers is not None:
        return cfg.data.num_workers
    if device_type != "cuda":
        return 0
    return spare_cores(world)


def build_loader(
    dataset: Dataset, sampler: Sampler, cfg: TrainConfig, tokenize, device_type: str, world: int
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        collate_fn=Collator(tokenize),
        num_workers=loader_workers(cfg, device_type, world),
        pin_memory=device_type == "cuda",  # page-locked batches: the copy to the GPU overlaps
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


def build_loaders(
    cfg: TrainConfig, model: ClipModel, rank: int = 0, world: int = 1, device_type: str = "cpu"
) -> Loaders:
    """The train loader of this process (its share of the split), the whole val loader
    (``accelerator.prepare`` shares it out in training) and the classes; ``device_type`` is
    where the batches go (pinned memory and decode workers for CUDA)."""
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
        # every item in order: training's accelerator.prepare deals the batches to processes
        val_sampler = EpochSampler(len(val_set), 0, shuffle=False, multiple_of=None)
        val = build_loader(val_set, val_sampler, cfg, model.tokenize, device_type, world)
    train_loader = build_loader(train, sampler, cfg, model.tokenize, device_type, world)
    return Loaders(classes, train_loader, val, counts)


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
