"""Seconds from ``finetune``'s start to its first optimizer step, by data format.

    python benchmarks/speed/finetune_start.py [--n 2000] [--per-shard 64] [--batch 32]

The first N real catalogue images (by id) are written twice in a temporary folder: as
WebDataset shards (testkit/shards.py's writer, with sizes.json) and as a prepared catalogue
folder (train.jsonl over the original image files). Each repeat runs ``finetune.loop.train``
on a fresh output folder with the tiny test CLIP (``tiny-train``, built locally: no
download) until its first optimizer step, timed by an optimizer hook from the call to
``train``; both formats use the same config (no validation split, classes given,
``data.on_bad_image: skip``). The WebDataset reader is streamed: nothing is listed or decoded
before training, while the listed catalogue decodes every image once at start to drop the
unreadable ones — which is what the ratio shows.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # testkit/: not installed

from accelerate.state import AcceleratorState
from embed import load_average, machine
from torch.optim.optimizer import register_optimizer_step_post_hook
from webdataset_start import first_items

from evalsuite.data.items import Item
from finetune.config import validate_config
from finetune.loop import train
from testkit.shards import write_shards
from testkit.tiny import build_tiny_hf


class FirstStep(Exception):
    """Raised by the optimizer hook: the first step is done, stop the run there."""


def write_catalogue(items: list[Item], out: Path) -> Path:
    """The items as a prepared-catalogue split (train.jsonl), images left where they are."""
    out.mkdir(parents=True)
    lines = [
        json.dumps({"id": i.id, "image": str(i.path), **i.fields, "description": i.caption})
        for i in items
    ]
    (out / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def seconds_to_first_step(config: dict, out: Path) -> float:
    """Run ``train`` until its first optimizer step; the seconds from the call to it."""
    cfg = validate_config({**config, "output": {"dir": str(out)}})
    started = time.perf_counter()
    stamp: list[float] = []

    def hook(optimizer, args, kwargs) -> None:
        stamp.append(time.perf_counter())
        raise FirstStep

    handle = register_optimizer_step_post_hook(hook)
    try:
        train(cfg)
    except FirstStep:
        pass
    finally:
        handle.remove()
        AcceleratorState._reset_state(True)
    return stamp[0] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--per-shard", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(machine())
    print(f"start: {load_average()}")
    items = first_items(args.n)
    classes = sorted({i.fields["articleType"] for i in items} - {""})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_tiny_hf(work / "model", seed=0, name="tiny-train")
        sources = {
            "webdataset": write_shards(items, work / "shards", per_shard=args.per_shard)[1],
            "catalogue": write_catalogue(items, work / "catalogue"),
        }
        figures: dict[str, list[float]] = {name: [] for name in sources}
        for repeat in range(args.repeats):
            for name, path in sources.items():
                config = {
                    "model": {"spec": str(model)},
                    "data": {
                        "reader": name,
                        "path": str(path),
                        "train_split": None if name == "webdataset" else "train",
                        "val_split": None,
                        "classes": classes,
                    },
                    "schedule": {"name": "constant"},
                    "train": {"epochs": 1, "batch_size": args.batch},
                }
                figures[name].append(seconds_to_first_step(config, work / f"run-{name}-{repeat}"))
        for name, seconds in figures.items():
            print(
                f"{name:<12} {args.n} items: first step after median "
                f"{statistics.median(seconds):6.2f} s (min {min(seconds):6.2f} s, "
                f"{len(seconds)} runs)"
            )
        ratio = statistics.median(figures["catalogue"]) / statistics.median(figures["webdataset"])
        print(f"catalogue / webdataset start-up: {ratio:.1f}x")
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
