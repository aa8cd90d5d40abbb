"""Finding WebDataset shards and their sample counts without reading their contents.

A catalogue of millions of items must start training in seconds, so opening shards reads at
most each shard's first 512 bytes (to refuse a file that is not a tar). Counts come from
open_clip's ``sizes.json`` (shard file name -> samples) in the shard folder or from a wids
shard index; only when neither names a shard are its tar headers scanned (no member is read).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import braceexpand

from evalsuite.errors import DataError

log = logging.getLogger(__name__)

SIZES_FILE = "sizes.json"  # open_clip's name and format: {"shard-000000.tar": 1000, ...}
_BLOCK = 512
_KEY = re.compile(r"^((?:.*/)?.*?)(\..*)$")  # wids' splitname: the key ends at the first dot


@dataclass(frozen=True)
class Shard:
    """One tar shard, its sample count and where the count came from (for error messages)."""

    path: Path
    count: int
    counted_by: str  # "sizes.json at ...", "wids index ...", or "scanning its tar headers"


def find_shards(path: Path | str, split: str | None) -> tuple[list[Path], Path | None]:
    """Shard files named by ``path`` (a .tar, a folder of *.tar, a brace pattern or a wids
    index .json) and ``split``, in order; the wids index when ``path`` is one."""
    text = str(path)
    if split is not None and "{split}" in text:  # a pattern may place the split: {split}-*.tar
        text = text.replace("{split}", split)
    elif split is not None and not Path(text).is_dir():
        raise DataError(
            f"{text}: split {split!r} needs a folder of shards (<split>-*.tar or <split>/*.tar) "
            "or '{split}' in the pattern"
        )
    if "{" in text:
        shards = [Path(p) for p in braceexpand.braceexpand(text)]
        for shard in shards:  # a pattern names its shards: a gap is an error, not less data
            if not shard.is_file():
                raise DataError(f"{shard}: shard of {text} not found")
        return shards, None
    where = Path(text)
    if where.is_dir():
        return _folder_shards(where, split), None
    if not where.is_file():
        raise DataError(f"{where}: no such shard, folder or wids index")
    if where.suffix == ".json":
        return [], where
    return [where], None


def _folder_shards(folder: Path, split: str | None) -> list[Path]:
    """The folder's *.tar sorted by name, or with a split its <split>-*.tar or <split>/*.tar.
    No split and only split folders (train/, val/, test/): every split, folder by folder."""
    if split is None:
        tried, shards = f"{folder}/*.tar or {folder}/*/*.tar", sorted(folder.glob("*.tar"))
        if not shards:
            shards = [t for sub in sorted(folder.iterdir()) for t in sorted(sub.glob("*.tar"))]
    else:
        tried = f"{folder}/{split}-*.tar or {folder}/{split}/*.tar"
        shards = sorted(folder.glob(f"{split}-*.tar")) or sorted((folder / split).glob("*.tar"))
    if not shards:
        raise DataError(f"{folder}: no shards found (looked for {tried})")
    return shards


def read_wids_index(index: Path) -> list[Shard]:
    """The shards of a wids shard index (``shardlist`` of {url, nsamples}, urls relative to
    the index's folder); local files only."""
    try:
        spec = json.loads(index.read_text(encoding="utf-8"))
        entries = spec["shardlist"]
        listed = [(str(e["url"]), int(e["nsamples"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{index}: not a wids shard index (a 'shardlist' of url/nsamples): {exc}"
        ) from None
    if not listed:
        raise DataError(f"{index}: no shards found (empty shardlist)")
    shards = []
    for url, count in listed:
        if re.match(r"^[a-z][a-z0-9+.-]*:", url) and not url.startswith("file:"):
            raise DataError(f"{index}: shard {url}: only local shard files are supported")
        path = index.parent / url.removeprefix("file:")
        if not path.is_file():
            raise DataError(f"{path}: shard listed in {index} not found")
        shards.append(Shard(path, count, f"wids index {index}"))
    return shards


def check_tar(path: Path) -> None:
    """DataError naming ``path`` unless its first block is a tar header (ustar magic or a
    valid checksum); reads 512 bytes, so every shard is checked at open at no real cost."""
    try:
        with open(path, "rb") as handle:
            block = handle.read(_BLOCK)
    except OSError as exc:
        raise DataError(f"{path}: cannot read shard ({exc.strerror or exc})") from None
    if len(block) < _BLOCK:
        raise DataError(f"{path}: not a tar file ({len(block)} bytes; a tar has 512-byte blocks)")
    if block[257:262] == b"ustar" or _checksum_ok(block):
        return
    hint = " (gzip: shards must be uncompressed .tar)" if block[:2] == b"\x1f\x8b" else ""
    raise DataError(f"{path}: not a tar file (no tar header in its first 512 bytes){hint}")


def _checksum_ok(block: bytes) -> bool:
    """The header checksum of old (pre-POSIX) tars: bytes summed with the field as spaces."""
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"x", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:])


def read_sizes(folder: Path) -> dict[str, int]:
    """open_clip's sizes.json of ``folder`` (file name -> samples), {} when there is none."""
    sizes = folder / SIZES_FILE
    if not sizes.is_file():
        return {}
    try:
        data = json.loads(sizes.read_text(encoding="utf-8"))
        return {str(name): int(count) for name, count in data.items()}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise DataError(f"{sizes}: not a sizes.json (shard file name -> count): {exc}") from None


def count_samples(path: Path) -> int:
    """Samples in a shard, from its tar headers only (members are skipped, never read).

    Grouped as wids groups them (consecutive members of one key; regular files whose name
    holds a dot), so the count is the length wids' index of the shard will have."""
    # wids' package imports torch (2 s): only when a shard must be scanned
    from wids.wids_mmtar import next_header, parse_tar_header

    count, last = 0, None
    with open(path, "rb") as handle:
        offset = 0
        while offset >= 0:
            handle.seek(offset)
            block = handle.read(_BLOCK)
            if len(block) < _BLOCK:
                break
            header = parse_tar_header(block[:500])
            name = header.name.decode("utf-8").strip("\0")
            kind = header.typeflag.decode("utf-8").strip("\0")
            if name and name != "././@PaxHeader" and kind in ("0", "") and "." in name:
                key = _KEY.match(name).group(1)  # type: ignore[union-attr]
                count, last = count + (key != last), key
            offset = next_header(offset, header)
    return count


def resolve_shards(path: Path | str, split: str | None) -> list[Shard]:
    """Every shard with its count, each checked to be a tar; one warning when some had to be
    counted by scanning (with the sizes.json that would have spared it)."""
    paths, index = find_shards(path, split)
    listed = read_wids_index(index) if index is not None else None
    for shard_path in paths if listed is None else [s.path for s in listed]:
        check_tar(shard_path)  # before any scan: a non-tar is named as such, not as bad headers
    return listed if listed is not None else _counted(paths)


def _counted(paths: list[Path]) -> list[Shard]:
    sizes: dict[Path, dict[str, int]] = {}
    shards, scanned, started = [], {}, time.perf_counter()
    for path in paths:
        folder_sizes = sizes.setdefault(path.parent, read_sizes(path.parent))
        if path.name in folder_sizes:
            where = f"{SIZES_FILE} at {path.parent / SIZES_FILE}"
            shards.append(Shard(path, folder_sizes[path.name], where))
            continue
        try:
            count = count_samples(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the shard's tar headers ({exc})") from None
        scanned[path.name] = count
        shards.append(Shard(path, count, "scanning its tar headers"))
    if scanned:
        example = json.dumps(dict(list(scanned.items())[:2]))
        log.warning(
            "counted the samples of %d shard(s) by scanning their tar headers in %.2f s; a %s "
            "in the shard folder (file name -> samples, e.g. %s) skips this",
            len(scanned),
            time.perf_counter() - started,
            SIZES_FILE,
            example,
        )
    return shards
