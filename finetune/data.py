"""Training and validation data: prepared catalogue items -> batches of pixels, tokens, labels.

The only place that reads images and captions for fine-tuning. Decisions:

* Images are decoded with :func:`evalsuite.images.load_item_image` and the model's own
  preprocessing (no augmentation, so a resumed run sees exactly the same pixels).
* ``data.on_bad_image: skip`` decodes every image once at start (threads) and drops the
  unreadable ones with one warning giving the count and the first ids; ``error`` skips that
  scan and fails on the first bad image. Dropping at build time, rather than per batch,
  keeps every batch full, which the accumulation cache and the cross-process gather need.
* The training order is a permutation seeded by (seed, epoch), cut to a whole number of
  optimizer steps on every process, then dealt out to processes (like DistributedSampler).
  :meth:`EpochSampler.set_epoch` can start mid-epoch, so a resumed run skips the batches it
  already trained on without decoding them.
* Hard negative captions swap the item's target value for another one of the vocabulary
  inside the caption (case-insensitive, whole words); the choice is seeded by (seed, epoch,
  index), so it does not depend on worker processes or RNG state.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from evalsuite.data.catalogue import read_catalogue
from evalsuite.data.items import Item
from evalsuite.errors import DataError, EvalSuiteError
from evalsuite.images import load_item_image
from evalsuite.models.base import ClipModel
from finetune.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """One split ready for a Dataset: items with their caption and class index (-1: none)."""

    items: list[Item]
    captions: list[str]
    labels: list[int]
    skipped: dict[str, int]


# --- reading -------------------------------------------------------------------------------


def caption_of(item: Item, field: str) -> str | None:
    return item.caption if field == "caption" else (item.fields.get(field) or None)


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


def read_split(cfg: TrainConfig, split: str) -> Split:
    """Read a split, subsample (data.max_items), drop items without caption or image; the
    labels are filled in by :func:`with_labels` once the classes are known."""
    data = cfg.data
    items = read_catalogue(Path(data.path), split)
    if data.max_items is not None and len(items) > data.max_items:
        keep = sorted(random.Random(cfg.train.seed).sample(range(len(items)), data.max_items))
        items = [items[i] for i in keep]
    with_caption = [i for i in items if caption_of(i, data.caption_field)]
    skipped = {"no_caption": len(items) - len(with_caption), "bad_image": 0}
    if skipped["no_caption"]:
        log.warning(
            "%s split: skipped %d item(s) without a %s",
            split,
            skipped["no_caption"],
            data.caption_field,
        )
    items = with_caption
    if data.on_bad_image == "skip":
        items, bad = readable(items)
        skipped["bad_image"] = len(bad)
        if bad:
            log.warning(
                "%s split: skipped %d unreadable image(s), e.g. %s", split, len(bad), bad[:5]
            )
    captions = [caption_of(i, data.caption_field) or "" for i in items]
    return Split(items, captions, [-1] * len(items), skipped)


def with_labels(split: Split, classes: Iterable[str], field: str, labelled_only: bool) -> Split:
    """``split`` with class indices of ``field`` (-1: no value or not a class); with
    ``labelled_only`` the items without a class are dropped."""
    index = {name: k for k, name in enumerate(classes)}
    labels = [index.get(item.fields.get(field, ""), -1) for item in split.items]
    keep = [k for k, label in enumerate(labels) if label >= 0 or not labelled_only]
    return Split(
        [split.items[k] for k in keep],
        [split.captions[k] for k in keep],
        [labels[k] for k in keep],
        split.skipped,
    )


def class_names(cfg: TrainConfig, splits: Sequence[Sequence[Item]]) -> dict[str, str]:
    """Target value -> name used in prompts: data.classes, or the sorted values present."""
    classes = cfg.data.classes
    if isinstance(classes, dict):
        return dict(classes)
    if classes is not None:
        return {value: value for value in classes}
    values = {i.fields.get(cfg.data.target_field, "") for items in splits for i in items}
    values.discard("")
    if not values:
        raise DataError(f"no item has a value for data.target_field {cfg.data.target_field!r}")
    return {value: value for value in sorted(values)}


# --- hard negatives --------------------------------------------------------------------------


def swap_attribute(caption: str, old: str, new: str) -> str | None:
    """``caption`` with every whole-word ``old`` (any case) replaced by ``new``; None when
    ``old`` does not occur. A capitalised occurrence gets a capitalised replacement."""
    if not old:
        return None
    pattern = re.compile(rf"(?<!\w){re.escape(old)}(?!\w)", re.IGNORECASE)

    def repl(match: re.Match[str]) -> str:
        text = new.lower() if match.group(0).islower() else new
        return text[:1].upper() + text[1:] if match.group(0)[:1].isupper() else text

    swapped, count = pattern.subn(repl, caption)
    return swapped if count else None


@dataclass(frozen=True)
class HardNegatives:
    """Makes ``count`` captions per item with the target value swapped for another value."""

    values: list[str]
    count: int
    fallback_template: str | None
    seed: int

    def captions(self, caption: str, value: str, index: int, epoch: int) -> list[str]:
        rng = random.Random(f"{self.seed}/{epoch}/{index}")
        others = [v for v in self.values if v.casefold() != value.casefold()]
        if not others:
            raise DataError(f"hard negatives: no value other than {value!r} to swap in")
        picks = (
            rng.sample(others, self.count)
            if len(others) >= self.count
            else [rng.choice(others) for _ in range(self.count)]
        )
        out = []
        for new in picks:
            swapped = swap_attribute(caption, value, new)
            if swapped is None and self.fallback_template is not None:
                swapped = self.fallback_template.format(caption=caption, value=new)
            out.append(swapped if swapped is not None else f"{new}. {caption}")
        return out


def build_hard_negatives(cfg: TrainConfig, train: Split) -> HardNegatives | None:
    spec = cfg.loss.hard_negatives
    if not spec.enabled:
        return None
    field = cfg.hard_negative_field
    values = spec.values or sorted({i.fields.get(field, "") for i in train.items} - {""})
    if len(values) < 2:
        raise DataError(f"hard negatives: field {field!r} has fewer than two values: {values}")
    return HardNegatives(list(values), spec.count, spec.fallback_template, cfg.train.seed)


# --- datasets and loaders ----------------------------------------------------------------------


class CaptionDataset(Dataset):
    """Item -> {pixel_values, caption, label[, negatives]}; ``epoch`` seeds hard negatives."""

    def __init__(
        self,
        split: Split,
        transform: Callable[[Any], torch.Tensor],
        negatives: HardNegatives | None = None,
        negative_field: str = "",
    ) -> None:
        self.split, self.transform = split, transform
        self.negatives, self.negative_field = negatives, negative_field
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.split.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item, caption = self.split.items[index], self.split.captions[index]
        example = {
            "pixel_values": self.transform(load_item_image(item)),
            "caption": caption,
            "label": self.split.labels[index],
        }
        if self.negatives is not None:
            value = item.fields.get(self.negative_field, "")
            example["negatives"] = self.negatives.captions(caption, value, index, self.epoch)
        return example


class Collator:
    """Stacks pixels, tokenises captions (and hard negatives, flattened item-major)."""

    def __init__(self, tokenize: Callable[[Sequence[str]], torch.Tensor]) -> None:
        self.tokenize = tokenize

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {
            "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "input_ids": self.tokenize([e["caption"] for e in examples]),
            "labels": torch.tensor([e["label"] for e in examples], dtype=torch.long),
        }
        if "negatives" in examples[0]:
            batch["negative_ids"] = self.tokenize([t for e in examples for t in e["negatives"]])
        return batch


class EpochSampler(Sampler[int]):
    """Seeded per-epoch order, cut to a multiple of ``multiple_of`` x processes, this process's
    share (positions rank, rank + world, ...), resumable from ``start`` (see module doc)."""

    def __init__(
        self,
        size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        multiple_of: int | None = 1,
    ) -> None:
        """``multiple_of`` None: keep every item (validation; shares differ by at most one)."""
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size, self.multiple_of = rank, world_size, multiple_of
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def shard(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        if self.multiple_of is not None:
            unit = self.multiple_of * self.world_size
            order = order[: len(order) // unit * unit]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.shard()) - self.start)


def build_loader(
    dataset: CaptionDataset, sampler: EpochSampler, cfg: TrainConfig, tokenize
) -> DataLoader:
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


def build_loaders(cfg: TrainConfig, model: ClipModel, rank: int = 0, world: int = 1) -> Loaders:
    """Train and val loaders of this process (its share of each split), and the classes."""
    splits = {"train": read_split(cfg, cfg.data.train_split)}
    if cfg.data.val_split:
        splits["val"] = read_split(cfg, cfg.data.val_split)
    classes = class_names(cfg, [s.items for s in splits.values()])
    only_labelled = cfg.loss.objective == "zeroshot_ce"  # only labelled items can be classified
    field = cfg.data.target_field
    splits = {k: with_labels(s, classes, field, only_labelled) for k, s in splits.items()}
    negatives = build_hard_negatives(cfg, splits["train"])
    train = CaptionDataset(splits["train"], model.transform, negatives, cfg.hard_negative_field)
    step = cfg.train.batch_size * cfg.train.accum_steps
    sampler = EpochSampler(len(train), cfg.train.seed, rank, world, True, multiple_of=step)
    val = None
    if "val" in splits:
        val_set = CaptionDataset(splits["val"], model.transform)
        val_sampler = EpochSampler(len(val_set), 0, rank, world, shuffle=False, multiple_of=None)
        val = build_loader(val_set, val_sampler, cfg, model.tokenize)
    counts: dict[str, Any] = {f"{k}_items": len(s.items) for k, s in splits.items()}
    counts["skipped"] = {k: s.skipped for k, s in splits.items()}
    return Loaders(classes, build_loader(train, sampler, cfg, model.tokenize), val, counts)


def set_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Start ``epoch`` (order and hard negatives), skipping batches already trained on."""
    loader.sampler.set_epoch(epoch, skip_batches * loader.batch_size)
    loader.dataset.epoch = epoch


# --- synthetic data (tests, benchmarks, smoke runs) --------------------------------------------

SYNTHETIC_COLOURS = {
    "Red": (220, 40, 40),
    "Blue": (40, 60, 220),
    "Green": (40, 170, 60),
    "Yellow": (230, 210, 40),
}
SYNTHETIC_TYPES = ("Casual Shoes", "Sports Shoes", "Heels", "Sandals")
SYNTHETIC_LACES = ("White", "Black", "Red")


def write_synthetic_catalogue(
    out: Path, train: int = 32, val: int = 8, test: int = 4, size: int = 24, seed: int = 0
) -> Path:
    """A prepared catalogue folder like ``prepare footwear`` writes (split JSONL + manifest)
    over coloured squares: the colour is ``baseColour``, a white corner block marks the
    ``articleType``, lace-up types get a ``lace_colour``. Images go to ``<out>-images/``."""
    from PIL import Image

    from evalsuite.data.catalogue import CATALOGUE_FIELDS, describe
    from evalsuite.data.prepared_folder import build_manifest, write_prepared

    out = Path(out)
    images = out.parent / f"{out.name}-images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    counts = {"train": train, "val": val, "test": test}
    splits: dict[str, list[dict[str, Any]]] = {name: [] for name in counts}
    for k, split in enumerate(name for name, n in counts.items() for _ in range(n)):
        colour, kind = (
            rng.choice(list(SYNTHETIC_COLOURS)),
            SYNTHETIC_TYPES[k % len(SYNTHETIC_TYPES)],
        )
        pixels = Image.new("RGB", (size, size), SYNTHETIC_COLOURS[colour])
        corner = SYNTHETIC_TYPES.index(kind)
        half = size // 2
        box = ((corner % 2) * half, (corner // 2) * half)
        pixels.paste((255, 255, 255), (*box, box[0] + half // 2, box[1] + half // 2))
        path = images / f"{1000 + k}.png"
        pixels.save(path)
        row = dict.fromkeys(CATALOGUE_FIELDS, "")
        row.update(
            id=str(1000 + k),
            gender="Men",
            masterCategory="Footwear",
            subCategory="Shoes",
            articleType=kind,
            baseColour=colour,
            season="Summer",
            year="2012",
            usage="Casual",
            productDisplayName=f"Synthetic {colour} {kind}",
        )
        lace = rng.choice(SYNTHETIC_LACES) if "Shoes" in kind else None
        record = {"id": row["id"], "image": str(path), **row, "year": 2012, "lace_colour": lace}
        record["description"] = describe(row, None, lace)
        splits[split].append(record)
    write_prepared(out, splits, build_manifest(splits, {"seed": seed, "synthetic": True}))
    return out
