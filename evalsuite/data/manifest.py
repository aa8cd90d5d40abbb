"""A prepared folder's manifest, and the content hashes it records: a changed image, record
or seed changes the hash.

The hash helpers return lowercase hex SHA-256 digests. Combined hashes hash a canonical text
(sorted ``key<TAB>digest`` lines) so the result does not depend on the order of the inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError

_BLOCK = 1 << 20
MANIFEST_NAME = "manifest.json"


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def combine_hashes(hashes: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """One digest over named digests, independent of their order.

    Keys and digests must not contain tabs or newlines (ids and hex digests never do); a
    duplicate key is kept twice, so it changes the result instead of hiding.
    """
    pairs = hashes.items() if isinstance(hashes, Mapping) else hashes
    lines = sorted(f"{key}\t{digest}" for key, digest in pairs)
    return sha256_bytes("\n".join(lines).encode("utf-8"))


def hash_files(paths: Mapping[str, Path], workers: int = 8) -> dict[str, str]:
    """SHA-256 of many files, keyed like ``paths``; threads overlap the disk reads."""
    keys = list(paths)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(sha256_file, (paths[key] for key in keys)))
    return dict(zip(keys, digests, strict=True))


def content_hash(paths: Mapping[str, Path], workers: int = 8) -> str:
    """Hash of a set of files: sha256 over sorted ``(id, sha256 of the file's bytes)``."""
    return combine_hashes(hash_files(paths, workers))


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a prepared folder (``path`` the folder or its manifest.json)."""
    path = Path(path)
    file = path / MANIFEST_NAME if path.is_dir() else path
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{file}: manifest not found (run `prepare footwear` first)") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: cannot read manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{file}: manifest must be a JSON object")
    return manifest
