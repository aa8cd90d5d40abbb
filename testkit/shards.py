"""Writes items as WebDataset tar shards, for the tests of the ``webdataset`` reader and the
speed scripts.

Each item becomes one sample: its image bytes as ``<key>.<ext>`` (none when ``data`` is
b"", so a sample without image can be written), its caption as ``.txt``, its fields and list
fields as ``.json``. Shard ``shard-000000.tar`` ... holds ``per_shard`` samples each.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

from evalsuite.data.items import Item


def image_member(item: Item) -> tuple[str, bytes] | None:
    """(extension, encoded bytes) of the item's image; None for empty ``data``."""
    if item.path is not None:
        ext = Path(item.path).suffix.lower().lstrip(".")
        return ext, Path(item.path).read_bytes()
    if item.data is not None:
        if not item.data:
            return None
        return ("png" if item.data.startswith(b"\x89PNG") else "jpg"), item.data
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(item.pixels)).save(buffer, format="PNG")
    return "png", buffer.getvalue()


def sample_of(item: Item) -> dict[str, Any]:
    """The WebDataset sample (extension -> bytes) of one item."""
    sample: dict[str, Any] = {"__key__": item.id}
    image = image_member(item)
    if image is not None:
        sample[image[0]] = image[1]
    if item.caption is not None:
        sample["txt"] = item.caption.encode("utf-8")
    record = {**item.fields, **{key: list(values) for key, values in item.lists.items()}}
    sample["json"] = json.dumps(record).encode("utf-8")
    return sample


def write_shards(
    items: Sequence[Item], out: Path, per_shard: int = 64, sizes: bool = True
) -> tuple[str, Path, dict[str, Any]]:
    """Write ``items`` as shards in ``out`` (with open_clip's sizes.json when ``sizes``);
    the (reader name, path, options) that read them back."""
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for start in range(0, len(items), per_shard):
        name = f"shard-{start // per_shard:06d}.tar"
        chunk = items[start : start + per_shard]
        with wds.TarWriter(str(out / name), encoder=False) as sink:
            for item in chunk:
                sink.write(sample_of(item))
        counts[name] = len(chunk)
    if sizes:
        (out / "sizes.json").write_text(json.dumps(counts))
    return "webdataset", out, {}
