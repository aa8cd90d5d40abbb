"""Fashion-MNIST in its official IDX files (gzipped or not).

The header count says how many images a file holds (the shared copy holds the first 4,443 of
the 10,000 test images), so nothing here assumes 10,000 or 60,000. A file shorter than its
header promises, or labels that do not match the images one to one, raise :class:`DataError`.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from evalsuite.data.items import Item
from evalsuite.errors import DataError, SpecError

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
# The official name of each split's files; some mirrors write "images.idx3" instead.
SPLIT_PREFIXES = {"test": "t10k", "train": "train"}
_GZIP_MAGIC = b"\x1f\x8b"


def find_idx_file(folder: Path, prefix: str, kind: str, ndim: int) -> Path:
    """The IDX file ``<prefix>-<kind>-idx<ndim>-ubyte[.gz]`` in ``folder`` (or a dotted mirror)."""
    stems = (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte")
    candidates = [folder / (stem + suffix) for stem in stems for suffix in (".gz", "")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{folder}: Fashion-MNIST file not found; expected one of "
        + ", ".join(path.name for path in candidates)
    )


def read_idx_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic (whatever the name)."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == _GZIP_MAGIC else data
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc


def parse_idx(data: bytes, path: Path, magic: int) -> np.ndarray:
    """Decode an unsigned-byte IDX payload into an array of the header's shape."""
    if len(data) < 8:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    found_magic, count = (int(value) for value in np.frombuffer(data, ">u4", count=2))
    if found_magic != magic:
        raise DataError(f"{path}: IDX magic number is {found_magic}, expected {magic}")
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(data) < expected:
        raise DataError(
            f"{path}: file is shorter than its header says: header count {count} "
            f"of shape {shape[1:]} needs {expected} bytes, file has {len(data)}"
        )
    # Read-only view on the decompressed bytes: items share it without copying.
    return np.frombuffer(data, np.uint8, count=expected - header_size, offset=header_size).reshape(
        shape
    )


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, rows, cols] and labels [N] of one split, checked against each other."""
    prefix = SPLIT_PREFIXES[split]
    images_path = find_idx_file(folder, prefix, "images", 3)
    labels_path = find_idx_file(folder, prefix, "labels", 1)
    images = parse_idx(read_idx_bytes(images_path), images_path, IMAGES_MAGIC)
    labels = parse_idx(read_idx_bytes(labels_path), labels_path, LABELS_MAGIC)
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path}: {len(labels)} labels but {images_path.name} has {len(images)} images"
        )
    bad = np.flatnonzero(labels >= len(CLASS_NAMES))
    if bad.size:
        raise DataError(
            f"{labels_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is not a "
            f"Fashion-MNIST class (0..{len(CLASS_NAMES) - 1})"
        )
    return images, labels


def read_fashion_mnist(path: Path, split: str | None = "test", **options: object) -> list[Item]:
    """Items of one Fashion-MNIST split; ``path`` is the folder holding the IDX files.

    ``split`` is "test" (the default, also used for None: the evaluation split) or "train".
    Items carry 28x28 uint8 ``pixels``, ids like ``fmnist-test-000123`` (0-based position in
    the file) and fields ``label`` (official class name) and ``label_index`` ("0".."9").
    """
    if options:
        raise SpecError(f"fashion_mnist reader: unknown option(s) {sorted(options)}")
    split = split or "test"
    if split not in SPLIT_PREFIXES:
        raise DataError(f"fashion_mnist reader: unknown split {split!r}; use 'test' or 'train'")
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: Fashion-MNIST folder not found")
    images, labels = load_split(folder, split)
    return [
        Item(
            id=f"fmnist-{split}-{index:06d}",
            fields={"label": CLASS_NAMES[label], "label_index": str(label)},
            pixels=images[index],
        )
        for index, label in enumerate(labels.tolist())
    ]
