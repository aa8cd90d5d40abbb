"""Precomputed image embeddings as a model spec: the three layouts, bad input, the new task
types' validation, and `evalsuite score` on the real CLIP ViT-B/32 embeddings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import save_file

from evalsuite.errors import ModelLoadError, SpecError
from evalsuite.models import PrecomputedEmbeddings, load_model, load_scorable
from evalsuite.spec import load_benchmark_file

IDS = ["15970", "39386", "59263", "21379"]


def _matrix(n: int = 4, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _npy_folder(folder: Path, matrix: np.ndarray, ids: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "embeddings.npy", matrix)
    (folder / "ids.txt").write_text("\n".join(ids) + "\n")
    return folder


def test_the_three_layouts_give_the_same_vectors_and_fingerprint(tmp_path: Path) -> None:
    matrix = _matrix()
    folder = _npy_folder(tmp_path / "npy", matrix, IDS)
    table = pa.table({"id": IDS, "embedding": [row.tolist() for row in matrix]})
    pq.write_table(table, tmp_path / "vectors.parquet")
    save_file(
        {"embeddings": matrix}, tmp_path / "st.safetensors", metadata={"ids": json.dumps(IDS)}
    )
    loaded = [
        load_scorable(str(folder)),  # a folder is recognised without the prefix
        load_scorable(f"embeddings:{tmp_path / 'vectors.parquet'}"),
        load_scorable(f"embeddings:{tmp_path / 'st.safetensors'}"),
    ]
    # one id check serves the three layouts, each naming its own place
    repeated = [IDS[0], IDS[1], IDS[0], IDS[3]]
    pq.write_table(table.set_column(0, "id", pa.array(repeated)), tmp_path / "rep.parquet")
    metadata = {"ids": json.dumps(repeated)}
    save_file({"embeddings": matrix}, tmp_path / "rep.safetensors", metadata=metadata)
    for name, message in [
        ("rep.parquet", "rep.parquet, row 2: id '15970' repeats row 0"),
        ("rep.safetensors", "rep.safetensors, metadata ids[2]: id '15970' repeats metadata ids[0]"),
    ]:
        with pytest.raises(ModelLoadError, match=re.escape(message)):
            load_scorable(f"embeddings:{tmp_path / name}")
    for model in loaded:
        assert isinstance(model, PrecomputedEmbeddings)
        assert model.ids == IDS and model.embed_dim == 3 and model.backend == "precomputed"
        np.testing.assert_allclose(np.linalg.norm(model.vectors, axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(
            model.vectors, matrix / np.linalg.norm(matrix, axis=1, keepdims=True), rtol=1e-6
        )
        assert model.rows(["59263", "nope"]).tolist() == [2, -1]
    assert len({m.fingerprint for m in loaded}) == 1  # same matrix and ids, whatever the file
    other = load_scorable(str(_npy_folder(tmp_path / "b", _matrix(seed=1), IDS)))
    assert other.fingerprint != loaded[0].fingerprint
    (folder / "embeddings.yaml").write_text("name: prod-vectors\n")
    assert load_scorable(str(folder)).name == "prod-vectors"
    with pytest.raises(ModelLoadError, match="precomputed embeddings, not a model"):
        load_model(str(folder))  # cannot be fine-tuned: load_model says how to use them


@pytest.mark.parametrize(
    ("ids", "matrix", "message"),
    [
        (IDS[:3], _matrix(), r"4 rows but 3 ids"),
        (
            [IDS[0], IDS[1], IDS[0], IDS[3]],
            _matrix(),
            r"ids.txt, line 3: id '15970' repeats line 1",
        ),
        ([IDS[0], "", *IDS[2:]], _matrix(), r"ids.txt, line 2: empty id"),
        (
            IDS,
            np.where(np.arange(12).reshape(4, 3) == 7, np.nan, _matrix()),
            r"row 2 \(id '59263'\): NaN",
        ),
        (IDS, np.zeros((4, 3, 1), np.float32), r"expected a non-empty 2-D matrix"),
        (IDS, np.vstack([_matrix(3), np.zeros((1, 3))]), r"row 3 \(id '21379'\): all zeros"),
    ],
)
def test_bad_input_names_the_file_and_row(
    tmp_path: Path, ids: list[str], matrix: np.ndarray, message: str
) -> None:
    folder = _npy_folder(tmp_path / "bad", matrix, ids)
    with pytest.raises(ModelLoadError, match=message) as err:
        load_scorable(str(folder))
    assert str(folder) in str(err.value)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_scorable(f"embeddings:{tmp_path / 'absent'}")
    np.save(tmp_path / "embeddings.npy", _matrix())
    with pytest.raises(ModelLoadError, match=r"ids.txt: ids file not found"):
        load_scorable(str(tmp_path))
    (tmp_path / "vectors.csv").write_text("id,x\n")
    with pytest.raises(ModelLoadError, match=r"unknown embeddings file type '\.csv'"):
        load_scorable(f"embeddings:{tmp_path / 'vectors.csv'}")
    pq.write_table(pa.table({"id": IDS, "vec": [[1.0]] * 4}), tmp_path / "v.parquet")
    with pytest.raises(ModelLoadError, match="no column 'embedding'; columns: id, vec"):
        load_scorable(f"embeddings:{tmp_path / 'v.parquet'}")
    ragged = pa.table({"id": IDS, "embedding": [[1.0, 0.0], [1.0], [0.0, 1.0], [1.0, 1.0]]})
    pq.write_table(ragged, tmp_path / "r.parquet")
    with pytest.raises(ModelLoadError, match=r"row 1 \(id '39386'\): embedding length"):
        load_scorable(f"embeddings:{tmp_path / 'r.parquet'}")
    for name, table, message in [
        ("s", pa.table({"id": IDS, "embedding": ["1,0", "0,1", "1,1", "0,1"]}), "row 0 .*str"),
        ("f", pa.table({"id": IDS, "embedding": [1.0, 0.0, 1.0, 1.0]}), r"row 0 .*holds float"),
        ("i", pa.table({"id": [1.0, 2.0, 3.0, 4.0], "embedding": [[1.0]] * 4}), r"holds floats"),
    ]:
        pq.write_table(table, tmp_path / f"{name}.parquet")
        with pytest.raises(ModelLoadError, match=rf"{name}\.parquet.*{message}"):
            load_scorable(f"embeddings:{tmp_path / f'{name}.parquet'}")
    (tmp_path / "embeddings.yaml").write_text("nmae: x\n")
    with pytest.raises(ModelLoadError, match=r"nmae: unknown field \(did you mean 'name'"):
        load_scorable(str(tmp_path))


BASE = """
name: probes
version: 1
dataset: {reader: labelled_csv, path: x}
tasks:
"""


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("{type: knn, name: k, field: label, weighting: cosine}", r"tasks\[0\]\.weighting"),
        ("{type: knn, name: k, field: label, protocol: kfold}", r"tasks\[0\]\.protocol"),
        ("{type: knn, name: k, field: label, k: 0}", r"tasks\[0\]\.k: Input should be greater"),
        ("{type: linear_probe, name: p, field: label, protocol: leave_one_out}", "protocol"),
        ("{type: linear_probe, name: p, field: label, c_grid: [0]}", r"c_grid\[0\]"),
        ("{type: linear_probe, name: p, field: label, holdout: {test_size: 1.5}}", "test_size"),
        ("{type: embedding_stats, name: s, field: label}", r"tasks\[0\]\.field: unknown field"),
        ("{type: knnn, name: k, field: label}", r"unknown type 'knnn' \(did you mean 'knn'"),
    ],
)
def test_probe_task_errors_name_the_file_and_field(tmp_path: Path, task: str, message: str) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(BASE + f"  - {task}\n")
    with pytest.raises(SpecError, match=message) as err:
        load_benchmark_file(path)
    assert "probes.yaml" in str(err.value)


def test_probe_tasks_parse_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        BASE
        + "  - {type: knn, name: k, field: label, protocol: split}\n"
        + "  - {type: linear_probe, name: p, field: label, protocol: holdout}\n"
        + "  - {type: embedding_stats, name: s, fields: label}\n"
    )
    spec = load_benchmark_file(path)
    knn, probe, stats = spec.tasks
    assert (knn.k, knn.weighting, knn.splits.train) == (10, "uniform", "train")
    assert probe.c_grid == [0.01, 0.1, 1.0, 10.0, 100.0] and probe.holdout.test_size == 0.3
    assert stats.fields == ["label"] and not stats.needs_text
    assert spec.split_names() == ["train", "val", "test"]  # only the split-protocol kNN
