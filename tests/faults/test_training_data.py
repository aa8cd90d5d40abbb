"""A user's own training data in a bad state: each is refused by `finetune` before anything is
written, exit 2, with a message naming the file, row or field (issue 16, item 7)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from accelerate.state import AcceleratorState
from faultkit import tiny_training_inputs

from finetune.__main__ import main


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_training_inputs(tmp_path_factory.mktemp("training-data"))


def pairs_csv(folder: Path, catalogue: Path, edit: Callable[[list[dict]], None]) -> Path:
    """The synthetic catalogue's train items as open_clip's image-caption CSV, edited."""
    records = [json.loads(line) for line in (catalogue / "train.jsonl").read_text().splitlines()]
    rows = [
        {"filepath": r["image"], "title": r["description"], "articleType": r["articleType"]}
        for r in records
    ]
    for row in rows:  # relative to the CSV, inside its folder
        name = Path(row["filepath"]).name
        (folder / name).write_bytes(Path(row["filepath"]).read_bytes())
        row["filepath"] = name
    edit(rows)
    file = folder / "pairs.csv"
    with open(file, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return file


def drop_title(rows: list[dict]) -> None:
    for row in rows:
        del row["title"]


def empty_titles(rows: list[dict]) -> None:
    for row in rows:
        row["title"] = ""


def outside_path(rows: list[dict]) -> None:
    rows[2]["filepath"] = "../elsewhere/1002.png"


CSV_FAULTS = {
    "missing caption column": (drop_title, ["pairs.csv", "'title'", "columns found"]),
    "caption empty in every row": (empty_titles, ["pairs.csv", "'title'", "empty"]),
    "image path outside the folder": (outside_path, ["pairs.csv", "row 4", "'filepath'"]),
}


def run(folder: Path, model: Path, data: dict, capsys) -> tuple[int, str]:
    config = {
        "model": {"spec": str(model)},
        "data": {"val_split": None, "classes": ["Heels", "Sandals"], **data},
        "schedule": {"name": "constant"},
        "train": {"epochs": 1, "batch_size": 4},
        "output": {"dir": str(folder / "run")},
    }
    file = folder / "run.yaml"
    file.write_text(yaml.safe_dump(config))
    code = main(["--config", str(file)])
    return code, capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("fault", list(CSV_FAULTS))
def test_a_bad_image_caption_csv_is_refused_naming_it(
    fault: str, inputs: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    edit, words = CSV_FAULTS[fault]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    file = pairs_csv(data_dir, inputs[1], edit)
    data = {"reader": "pairs_csv", "path": str(file), "train_split": None}
    code, message = run(tmp_path, inputs[0], data, capsys)
    assert code == 2, message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "run").exists()


def test_a_shard_that_is_not_a_tar_is_refused_naming_it(
    inputs: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "shard-000000.tar").write_bytes(b"PK\x03\x04 a zip, not a tar" + bytes(600))
    data = {"reader": "webdataset", "path": str(shards), "train_split": None}
    code, message = run(tmp_path, inputs[0], data, capsys)
    assert code == 2 and "shard-000000.tar" in message and "tar" in message, message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.25])
def test_a_replay_fraction_outside_0_1_is_refused(
    fraction: float, inputs: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    replay = {"path": str(inputs[1]), "fraction": fraction}
    data = {"path": str(inputs[1]), "replay": replay}
    code, message = run(tmp_path, inputs[0], data, capsys)
    assert code == 2 and "data.replay.fraction" in message, message
    assert not (tmp_path / "run").exists()
