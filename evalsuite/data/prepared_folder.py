"""A prepared catalogue folder: ``train``/``val``/``test`` JSONL files plus ``manifest.json``.

Written by the prepare step (:mod:`evalsuite.data.prepare`) and by synthetic-data helpers of
the trainer's tests; read back by :func:`evalsuite.data.catalogue.read_catalogue`.

``manifest_hash`` covers the records (without their absolute image paths) and the image bytes,
so the same data prepared in another folder has the same hash; ``files`` holds the literal
sha256 of each written JSONL file. The folder is written whole into a temp folder and swapped
in, so a failed run leaves the previous ``out`` (or none) and nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from evalsuite.data.catalogue import FORMAT
from evalsuite.data.manifest import (
    MANIFEST_NAME,
    combine_hashes,
    content_hash,
    sha256_bytes,
    sha256_file,
)
from evalsuite.errors import DataError

Record = dict[str, Any]
COUNTED_FIELDS = ("articleType", "baseColour", "lace_colour")


def split_counts(records: list[Record], fields: Iterable[str] = COUNTED_FIELDS) -> dict[str, Any]:
    """Item count and per-class counts (articleType, baseColour, lace_colour by default)."""
    counts: dict[str, Any] = {"items": len(records)}
    for name in fields:
        values = Counter(record.get(name) for record in records if record.get(name))
        counts[name] = dict(sorted(values.items()))
    return counts


def records_hash(records: list[Record]) -> str:
    """Hash of a split's records without their absolute image paths (location-independent)."""
    lines = [
        json.dumps({k: v for k, v in r.items() if k != "image"}, sort_keys=True) for r in records
    ]
    return sha256_bytes("\n".join(lines).encode("utf-8"))


def build_manifest(
    splits: Mapping[str, list[Record]],
    settings: Record,
    counted: Iterable[str] = COUNTED_FIELDS,
) -> Record:
    """Sizes, per-class counts (of the ``counted`` fields) and hashes of the prepared splits,
    plus the run's settings."""
    images = {r["id"]: Path(r["image"]) for records in splits.values() for r in records}
    images_hash = content_hash(images)
    split_hashes = {split: records_hash(records) for split, records in splits.items()}
    counted = tuple(counted)
    return {
        "format": FORMAT,
        **settings,
        "sizes": {**{s: len(r) for s, r in splits.items()}, "total": len(images)},
        "counts": {split: split_counts(records, counted) for split, records in splits.items()},
        "split_hashes": split_hashes,
        "images_hash": images_hash,
        "manifest_hash": combine_hashes({**split_hashes, "images": images_hash}),
    }


def write_jsonl(path: Path, records: list[Record]) -> None:
    """One JSON object per line, UTF-8, keys in record order."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def replace_dir(new: Path, out: Path) -> None:
    """Move the complete folder ``new`` to ``out``, replacing a previous prepared ``out``."""
    if not out.exists():
        new.rename(out)
        return
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).is_file()):
        raise DataError(f"{out}: exists and is not a prepared catalogue folder; not replacing it")
    backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    backup.rmdir()
    out.rename(backup)
    try:
        new.rename(out)
    except OSError:
        backup.rename(out)
        raise
    shutil.rmtree(backup)


def write_prepared(out: Path, splits: Mapping[str, list[Record]], manifest: Record) -> Record:
    """Write the split files and manifest into a temp folder, then swap it in as ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    temp.chmod(0o755)  # mkdtemp makes it private; the prepared folder is meant to be shared
    try:
        for split, records in splits.items():
            write_jsonl(temp / f"{split}.jsonl", records)
        manifest["files"] = {f"{s}.jsonl": sha256_file(temp / f"{s}.jsonl") for s in splits}
        (temp / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        replace_dir(temp, out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return manifest
