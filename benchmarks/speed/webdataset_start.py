"""Start-up cost of the ``webdataset`` reader: open the shards, then decode a first batch.

    python benchmarks/speed/webdataset_start.py [--n 2000] [--per-shard 64] [--batch 32]

The first N real catalogue images (by id) are written as WebDataset shards in a temporary
folder (testkit/shards.py's writer: image bytes, caption .txt, fields .json, sizes.json), then
each repeat measures, on a fresh reader:

- open: ``get_reader("webdataset")(folder)``, with sizes.json (counts read, no shard indexed)
  and without it (every shard's tar headers scanned);
- first batch: ``--batch`` items at seeded random indices, their images decoded with
  ``load_item_image`` (each touched shard indexed through wids on first use);
- reference: the same images decoded from their original files.

The shards were just written, so they are in the OS page cache: the figures are the reader's
own cost, not a cold disk's. The lead extends this to time ``finetune`` to its first step.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # testkit/: not installed

from embed import SHARED_DATA, load_average, machine

from evalsuite.data import get_reader
from evalsuite.data.items import Item
from evalsuite.data.styles import read_styles_catalogue
from evalsuite.images import load_item_image
from testkit.shards import write_shards

CATALOGUE = SHARED_DATA / "fashion-product-images-small"


def first_items(n: int) -> list[Item]:
    """The first ``n`` catalogue items by id whose image file exists."""
    items = [i for i in read_styles_catalogue(CATALOGUE) if i.path and i.path.is_file()]
    if len(items) < n:
        sys.exit(f"only {len(items)} catalogue images in {CATALOGUE}, asked for {n}")
    return items[:n]


def timed(action: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()  # type: ignore[operator]
    return time.perf_counter() - started, result


def first_batch(folder: Path, indices: list[int]) -> float:
    """Seconds to open a fresh reader and decode the images at ``indices``."""
    started = time.perf_counter()
    items = get_reader("webdataset")(folder)
    for index in indices:
        load_item_image(items[index])
    return time.perf_counter() - started


def report(name: str, seconds: list[float]) -> None:
    print(
        f"{name:<40} median {statistics.median(seconds) * 1000:9.1f} ms   "
        f"min {min(seconds) * 1000:9.1f} ms   ({len(seconds)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--per-shard", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the no-sizes.json warning once per repeat
    print(machine())
    print(f"start: {load_average()}")
    items = first_items(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shards"
        write_time, _ = timed(lambda: write_shards(items, folder, per_shard=args.per_shard))
        nbytes = sum(p.stat().st_size for p in folder.glob("*.tar"))
        shards = len(list(folder.glob("*.tar")))
        size = f"{nbytes / 1e6:.1f} MB"
        print(f"wrote {args.n} items in {shards} shards ({size}) in {write_time:.2f} s")
        indices = random.Random(0).sample(range(args.n), args.batch)
        figures: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            seconds, opened = timed(lambda: get_reader("webdataset")(folder))
            assert opened.shards_indexed == 0  # type: ignore[attr-defined]
            figures.setdefault("open (sizes.json)", []).append(seconds)
            figures.setdefault(f"open + first {args.batch} decoded", []).append(
                first_batch(folder, indices)
            )
            reference = [items[i] for i in indices]
            seconds, _ = timed(lambda: [load_item_image(i) for i in reference])  # noqa: B023
            figures.setdefault(f"reference: {args.batch} files decoded", []).append(seconds)
        sizes = folder / "sizes.json"
        sizes.rename(folder.parent / "sizes.json")
        for _ in range(args.repeats):
            seconds, _ = timed(lambda: get_reader("webdataset")(folder))
            figures.setdefault("open (no sizes.json: header scan)", []).append(seconds)
        for name, seconds in figures.items():
            report(name, seconds)
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
