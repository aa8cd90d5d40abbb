"""Image embeddings a user already has (a production service, a vector database), as a model.

Accepted layouts (``load_embeddings(path)``; ``evalsuite score embeddings:PATH``, or a folder
holding one of the files below, which is recognised without the prefix):

- a folder with ``embeddings.npy`` (float [N, D]) and ``ids.txt`` (the catalogue id of each
  row, one per line), the layout of ``../shared/data/.../clip-vit-b32-image-embeddings``;
- a Parquet file (or a folder with ``embeddings.parquet``) with an ``id`` column and an
  ``embedding`` column of equal-length float lists;
- a safetensors file (or a folder with ``embeddings.safetensors``) holding an
  ``embeddings`` tensor [N, D], with the ids as a JSON list in the metadata key ``ids`` or in
  ``ids.txt`` beside it.

An optional ``embeddings.yaml`` in the folder (for a file: ``<stem>.yaml`` beside it) gives
``name`` and ``text_model``: a model spec whose text tower embeds prompts and text queries in
the same space (e.g. the CLIP that produced the image vectors). Without it, tasks that need
text are reported as not applicable.

Rows are L2-normalised on load (the contract of every embedding here); the fingerprint hashes
the matrix as given, the ids and the text model's fingerprint. Bad input raises
:class:`ModelLoadError` naming the file and the row or line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml
from pydantic import ValidationError

from evalsuite.data.text import read_utf8
from evalsuite.errors import ModelLoadError
from evalsuite.models.base import ClipModel, ModelSource
from evalsuite.registry import Registry
from evalsuite.schema import StrictModel, validation_message

PREFIX = "embeddings:"
BACKEND = "precomputed"
MATRIX_FILES = ("embeddings.npy", "embeddings.parquet", "embeddings.safetensors")
CONFIG_FILE = "embeddings.yaml"
FORMAT_VERSION = "precomputed-embeddings/1"


@dataclass(eq=False)
class PrecomputedEmbeddings:
    """Image vectors looked up by item id; ``text_model`` embeds texts when one is given."""

    ids: list[str]
    vectors: np.ndarray  # (N, D) float32, L2-normalised
    source: ModelSource
    raw_digest: str  # sha256 of the matrix as given and the ids
    text_model: ClipModel | None = None
    row_of: dict[str, int] = field(init=False, repr=False)

    backend: ClassVar[str] = BACKEND
    parameter_count: ClassVar[int | None] = None  # no weights of its own

    def __post_init__(self) -> None:
        self.row_of = {item_id: row for row, item_id in enumerate(self.ids)}

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def spec(self) -> str:
        return self.source.spec

    @property
    def embed_dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{FORMAT_VERSION}:{self.raw_digest}".encode())
        if self.text_model is not None:
            digest.update(f":text:{self.text_model.fingerprint}".encode())
        return digest.hexdigest()

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Row of each id in the matrix, -1 where the id has no embedding."""
        return np.array([self.row_of.get(i, -1) for i in item_ids], dtype=np.int64)


def is_embeddings_spec(spec: str) -> bool:
    """``embeddings:PATH``, or a folder holding one of the embedding files."""
    if spec.startswith(PREFIX):
        return True
    path = Path(spec).expanduser()
    return path.is_dir() and any((path / name).is_file() for name in MATRIX_FILES)


def load_embeddings(
    spec: str | Path, load_text_model: Callable[[str], ClipModel]
) -> PrecomputedEmbeddings:
    """Read a precomputed-embeddings spec (see the module doc). ``load_text_model`` loads the
    config's ``text_model`` spec: :func:`evalsuite.models.factory.load_model`, passed in by
    ``load_scorable`` (the factory imports this module, so this one cannot import it)."""
    spec = str(spec)
    path = Path(spec.removeprefix(PREFIX)).expanduser()
    if not path.exists():
        raise ModelLoadError(f"precomputed embeddings {str(path)!r} not found")
    matrix_file, config_file = _files(path)
    config = _read_config(config_file)
    reader = MATRIX_READERS.get(matrix_file.suffix)
    matrix, ids = reader(matrix_file, config)
    vectors, raw_digest = _checked(matrix, ids, matrix_file)
    folder = path if path.is_dir() else path.parent
    source = ModelSource(
        spec=spec,
        name=str(config.get("name") or (path.name if path.is_dir() else path.stem)),
        path=folder.resolve(),
        extra={"embeddings_file": str(matrix_file.resolve()), "n_embeddings": len(ids)},
    )
    text_model = None
    if config.get("text_model"):
        text_spec = str(config["text_model"])
        text_model = load_text_model(text_spec)
        _check_text_model(text_model, text_spec, config_file, vectors.shape[1])
        source.extra["text_model"] = str(config["text_model"])
    return PrecomputedEmbeddings(ids, vectors, source, raw_digest, text_model)


def _files(path: Path) -> tuple[Path, Path | None]:
    if path.is_dir():
        found = [path / name for name in MATRIX_FILES if (path / name).is_file()]
        if not found:
            raise ModelLoadError(
                f"folder {path} holds no embeddings: expected one of {', '.join(MATRIX_FILES)}"
            )
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ModelLoadError(f"folder {path} holds several embedding files ({names}): keep one")
        config = path / CONFIG_FILE
        return found[0], config if config.is_file() else None
    if path.suffix not in MATRIX_READERS:  # said here with what each type needs beside it
        raise ModelLoadError(
            f"{path}: unknown embeddings file type {path.suffix!r}; expected .npy (with "
            "ids.txt beside it), .parquet or .safetensors"
        )
    config = path.with_suffix(".yaml")
    return path, config if config.is_file() else None


class EmbeddingsConfig(StrictModel):
    """``embeddings.yaml`` (or ``<stem>.yaml`` beside a file)."""

    name: str | None = None
    text_model: str | None = None  # a model spec; its text tower embeds texts
    description: str | None = None
    id_column: str = "id"  # Parquet only
    embedding_column: str = "embedding"  # Parquet only


def _read_config(file: Path | None) -> dict[str, Any]:
    if file is None:
        return {}
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        return EmbeddingsConfig.model_validate(data).model_dump()
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{file}: cannot read ({exc})") from None
    except ValidationError as exc:
        raise ModelLoadError(validation_message(exc, EmbeddingsConfig, str(file))) from None


def read_ids(file: Path) -> list[str]:
    """One id per line; a blank or repeated id is an error naming the line."""
    if not file.is_file():
        raise ModelLoadError(f"{file}: ids file not found (one catalogue id per matrix row)")
    lines = read_utf8(file, "ids file").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # trailing newlines are not ids
    return checked_ids(lines, file, lambda row: f"line {row + 1}")


def checked_ids(ids: Sequence[object], file: Path, place: Callable[[int], str]) -> list[str]:
    """``ids`` as stripped strings; an empty or repeated id is an error naming the file and
    ``place(row)`` (row 0-based): "line 3", "row 2", "metadata ids[2]"."""
    out: list[str] = []
    first: dict[str, int] = {}
    for row, value in enumerate(ids):
        item_id = "" if value is None else str(value).strip()
        if not item_id:
            raise ModelLoadError(f"{file}, {place(row)}: empty id")
        if item_id in first:
            raise ModelLoadError(
                f"{file}, {place(row)}: id {item_id!r} repeats {place(first[item_id])}"
            )
        first[item_id] = row
        out.append(item_id)
    return out


def _read_npy(file: Path, config: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    try:
        matrix = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{file}: not a readable .npy array ({exc})") from None
    return matrix, read_ids(file.parent / "ids.txt")


def _read_parquet(file: Path, config: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    id_col = config.get("id_column", "id")
    emb_col = config.get("embedding_column", "embedding")
    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ModelLoadError(f"{file}: not a readable Parquet file ({exc})") from None
    for column in (id_col, emb_col):
        if column not in table.column_names:
            raise ModelLoadError(
                f"{file}: no column {column!r}; columns: {', '.join(table.column_names)}"
            )
    if pa.types.is_floating(table.column(id_col).type):  # 15970 would read as '15970.0'
        raise ModelLoadError(
            f"{file}: column {id_col!r} holds floats ({table.column(id_col).type}); store the "
            "catalogue ids as integers or strings"
        )
    ids = checked_ids(table.column(id_col).to_pylist(), file, lambda row: f"row {row}")
    rows = table.column(emb_col).to_pylist()
    for row, values in enumerate(rows):
        if values is not None and not isinstance(values, (list, tuple)):
            raise ModelLoadError(
                f"{file}, row {row} (id {ids[row]!r}): column {emb_col!r} holds "
                f"{type(values).__name__} {values!r:.40}, not a list of numbers"
            )
    lengths = {len(r) if r is not None else -1 for r in rows}
    if len(lengths) > 1 or -1 in lengths:
        bad = next(i for i, r in enumerate(rows) if r is None or len(r) != len(rows[0] or []))
        raise ModelLoadError(
            f"{file}, row {bad} (id {ids[bad]!r}): embedding length differs from row 0 "
            "(every row needs the same number of values)"
        )
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        bad = next(i for i, r in enumerate(rows) if not all(_is_number(v) for v in r))
        raise ModelLoadError(
            f"{file}, row {bad} (id {ids[bad]!r}): column {emb_col!r} holds a value that is "
            f"not a number ({exc})"
        ) from None
    return matrix, ids


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_safetensors(file: Path, config: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="numpy") as handle:
            names = list(handle.keys())
            if "embeddings" not in names:
                raise ModelLoadError(
                    f"{file}: no tensor named 'embeddings'; tensors: {', '.join(names)}"
                )
            matrix = handle.get_tensor("embeddings")
            metadata = handle.metadata() or {}
    except ModelLoadError:
        raise
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise ModelLoadError(f"{file}: not a readable safetensors file ({exc})") from None
    if "ids" not in metadata:
        return matrix, read_ids(file.parent / "ids.txt")
    try:
        ids = json.loads(metadata["ids"])
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{file}: metadata 'ids' is not a JSON list ({exc})") from None
    if not isinstance(ids, list):
        raise ModelLoadError(f"{file}: metadata 'ids' must be a JSON list of ids")
    return matrix, checked_ids(ids, file, lambda row: f"metadata ids[{row}]")


# the embeddings file's suffix -> its reader: (file, embeddings.yaml) -> (matrix, ids)
MatrixReader = Callable[[Path, dict[str, Any]], tuple[np.ndarray, list[str]]]
MATRIX_READERS: Registry[MatrixReader] = Registry("embeddings file type", error=ModelLoadError)
MATRIX_READERS.register(".npy", _read_npy)
MATRIX_READERS.register(".parquet", _read_parquet)
MATRIX_READERS.register(".safetensors", _read_safetensors)


def check_vectors(
    matrix: np.ndarray, ids: Sequence[str], file: Path, dim: int | None = None
) -> np.ndarray:
    """``matrix`` as float32 once it is a non-empty 2-D matrix of numbers, one row per id
    (``dim`` columns when given), finite, without an all-zero row; else ModelLoadError
    naming the file and the first bad row. Also the check of the embedding cache's shards."""
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ModelLoadError(
            f"{file}: expected a non-empty 2-D matrix (rows x dimensions), got shape {matrix.shape}"
        )
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        raise ModelLoadError(f"{file}: expected numbers, got dtype {matrix.dtype}")
    if len(ids) != len(matrix):
        raise ModelLoadError(f"{file}: {len(matrix)} rows but {len(ids)} ids: they must match")
    if dim is not None and matrix.shape[1] != dim:
        raise ModelLoadError(f"{file}: vectors have {matrix.shape[1]} dimensions, expected {dim}")
    matrix = matrix.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise ModelLoadError(
            f"{file}, row {bad[0]} (id {ids[bad[0]]!r}): NaN or infinite value "
            f"({bad.size} row(s) affected)"
        )
    zero = np.flatnonzero(np.linalg.norm(matrix, axis=1) == 0)  # also rows whose norm underflows
    if zero.size:
        raise ModelLoadError(
            f"{file}, row {zero[0]} (id {ids[zero[0]]!r}): all zeros ({zero.size} row(s) affected)"
        )
    return matrix


def _checked(matrix: np.ndarray, ids: list[str], file: Path) -> tuple[np.ndarray, str]:
    """(L2-normalised float32 rows, sha256 of the matrix and ids); errors name file and row."""
    matrix = check_vectors(matrix, ids, file)
    norms = np.linalg.norm(matrix, axis=1)
    digest = hashlib.sha256(f"{matrix.shape}".encode())
    digest.update(np.ascontiguousarray(matrix).tobytes())
    digest.update(json.dumps(ids).encode())  # not "\n".join: an id may hold a newline
    return (matrix / norms[:, None]).astype(np.float32), digest.hexdigest()


def _check_text_model(model: ClipModel, spec: str, config_file: Path | None, dim: int) -> None:
    if model.embed_dim != dim:
        raise ModelLoadError(
            f"{config_file}: text_model {spec!r} embeds in {model.embed_dim} dimensions but "
            f"the image embeddings have {dim}"
        )
