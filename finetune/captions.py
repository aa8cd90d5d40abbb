"""Caption text for fine-tuning: which caption of an item is used, and hard negative captions.

* Several caption fields (``data.caption_field: [a, b]``, or a field holding a list): every
  caption of an item is a choice, one drawn per (seed, epoch, index) in training, the first in
  validation, so the choice depends on neither worker processes, RNG state nor an interruption.
* Hard negative captions swap the item's target value for another one of the vocabulary
  inside the caption (case-insensitive, whole words); the choice is seeded the same way.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from evalsuite.data.items import Item
from evalsuite.errors import ConfigError, DataError
from finetune.config import TrainConfig


def caption_choices(item: Item, fields: Sequence[str]) -> list[str]:
    """Every caption of ``item`` in ``fields`` order: "caption" is the item's caption, a
    list-valued field gives each of its entries; empty ones and repeats are left out (the
    catalogue's "caption" is also its "description" field: listing both must not weigh it
    twice)."""
    found: list[str] = []
    for name in fields:
        if name == "caption":
            values: Sequence[str | None] = [item.caption]
        elif name in item.lists:
            values = item.lists[name]
        else:
            values = [item.fields.get(name)]
        found.extend(v.strip() for v in values if v and v.strip())
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Captions:
    """One caption per item: drawn per (seed, epoch, index) in training, the first else."""

    fields: tuple[str, ...]
    seed: int = 0
    draw: bool = False

    def pick(self, item: Item, index: int, epoch: int) -> str | None:
        choices = caption_choices(item, self.fields)
        if len(choices) < 2 or not self.draw:
            return choices[0] if choices else None
        return random.Random(f"caption/{self.seed}/{epoch}/{index}").choice(choices)


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


def build_hard_negatives(
    cfg: TrainConfig, items: Sequence[Item], streamed: bool, classes: Sequence[str]
) -> HardNegatives | None:
    spec = cfg.loss.hard_negatives
    if not spec.enabled:
        return None
    field_name = cfg.hard_negative_field
    if spec.values:
        values = list(spec.values)
    elif not streamed:
        values = sorted({i.fields.get(field_name, "") for i in items} - {""})
    elif field_name == cfg.data.target_field:
        values = list(classes)
    else:
        raise ConfigError(
            f"loss.hard_negatives.values: needed for field {field_name!r} with a streamed "
            "training set (it is not read before training)"
        )
    if len(values) < 2:
        raise DataError(f"hard negatives: field {field_name!r} has fewer than two values: {values}")
    return HardNegatives(list(values), spec.count, spec.fallback_template, cfg.train.seed)
