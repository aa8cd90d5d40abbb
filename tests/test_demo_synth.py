"""The demo's procedural data: deterministic, in Kaggle's layout, readable by the suite."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from evalsuite.data.catalogue import read_catalogue
from evalsuite.data.custom import read_labelled_csv
from evalsuite.data.prepare import prepare_footwear
from evalsuite.data.styles_csv import STYLES_COLUMNS
from evalsuite.errors import DataError
from evalsuite.spec import load_benchmark_file
from evalsuite.spec_tasks import ZeroShotTask
from examples.demo import synth
from examples.demo.shapes import (
    ARTICLE_TYPES,
    BASE_COLOURS,
    GENERAL_COLOURS,
    GENERAL_SHAPES,
    LACE_COLOURS,
)
from examples.demo.synth import generate_footwear_catalogue, generate_general_benchmark

ROOT = Path(__file__).resolve().parents[1]
LACED = {name for name, kind in ARTICLE_TYPES.items() if kind.laced}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def footwear(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_footwear_catalogue(tmp_path_factory.mktemp("demo") / "footwear", 400, seed=3)


@pytest.fixture(scope="module")
def general(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_general_benchmark(tmp_path_factory.mktemp("demo") / "general", 12, seed=3)


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    first = folder_bytes(generate_footwear_catalogue(tmp_path / "a", 40, seed=7))
    again = folder_bytes(generate_footwear_catalogue(tmp_path / "b", 40, seed=7))
    other = folder_bytes(generate_footwear_catalogue(tmp_path / "c", 40, seed=8))
    assert first == again
    assert len(first) == 40 + 4  # images, styles.csv, lace annotations, captions, synth.json
    images = [name for name in first if name.startswith("images/")]
    assert sum(first[name] != other[name] for name in images) == len(images)
    general_a = folder_bytes(generate_general_benchmark(tmp_path / "ga", 6, seed=7))
    assert general_a == folder_bytes(generate_general_benchmark(tmp_path / "gb", 6, seed=7))


def test_regenerating_in_place_replaces_the_previous_run(tmp_path: Path) -> None:
    out = generate_footwear_catalogue(tmp_path / "fw", 30, seed=0)
    generate_footwear_catalogue(out, 10, seed=0)
    assert len(list((out / "images").iterdir())) == 10
    assert json.loads((out / "synth.json").read_text())["n_items"] == 10


def test_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text("someone else's catalogue\n")
    with pytest.raises(DataError, match="not written by"):
        generate_footwear_catalogue(tmp_path, 5)
    assert (tmp_path / "styles.csv").read_text() == "someone else's catalogue\n"


# --- footwear layout --------------------------------------------------------------------------


def test_kaggle_layout(footwear: Path) -> None:
    rows = read_rows(footwear / "styles.csv")
    assert tuple(rows[0]) == STYLES_COLUMNS
    assert len(rows) == 400 and len({row["id"] for row in rows}) == 400
    assert {row["masterCategory"] for row in rows} == {"Footwear"}
    assert {row["articleType"] for row in rows} == set(ARTICLE_TYPES)
    for row in rows[:20]:
        with Image.open(footwear / "images" / f"{row['id']}.jpg") as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (60, 80))
        assert row["baseColour"] in row["productDisplayName"]


def test_lace_annotations_balanced_and_only_on_laced_types(footwear: Path) -> None:
    styles = {row["id"]: row for row in read_rows(footwear / "styles.csv")}
    laces = {row["id"]: row["lace_colour"] for row in read_rows(footwear / "lace_annotations.csv")}
    assert set(laces) == {i for i, row in styles.items() if row["articleType"] in LACED}
    counts = Counter(laces.values())
    assert set(counts) == set(LACE_COLOURS)
    assert max(counts.values()) - min(counts.values()) <= 1
    # Chosen independently of the body colour: a common body colour has several lace colours.
    black = Counter(laces[i] for i in laces if styles[i]["baseColour"] == "Black")
    assert len(black) >= 4


def test_generated_captions_never_mention_laces(footwear: Path) -> None:
    lines = (footwear / "generated_captions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [row["id"] for row in read_rows(footwear / "styles.csv")]
    assert all("lace" not in r["caption"].lower() for r in records)
    assert all(
        "lace" not in row["productDisplayName"].lower()
        for row in read_rows(footwear / "styles.csv")
    )


def test_prepare_footwear_reads_it(footwear: Path, tmp_path: Path) -> None:
    manifest = prepare_footwear(
        footwear / "images",
        footwear / "styles.csv",
        tmp_path / "prepared",
        annotations=footwear / "lace_annotations.csv",
        captions=footwear / "generated_captions.jsonl",
    )
    sizes = manifest["sizes"]
    assert sizes["total"] == 400
    assert 0.65 < sizes["train"] / 400 < 0.8 and 0.15 < sizes["test"] / 400 < 0.25
    for split in ("train", "val", "test"):
        counts = manifest["counts"][split]
        assert set(counts["articleType"]) == set(ARTICLE_TYPES), split
        assert set(counts["lace_colour"]) == set(LACE_COLOURS), split
    items = read_catalogue(tmp_path / "prepared", "test")
    laced = [item for item in items if item.fields["articleType"] in LACED]
    assert all(item.fields["lace_colour"] for item in laced)
    assert all(item.caption.endswith("shoelaces.") for item in laced)


def test_stock_footwear_benchmark_classes_are_all_generated(tmp_path: Path) -> None:
    """benchmarks/footwear lists its classes explicitly: the demo data must have each one."""
    path = ROOT / "benchmarks" / "footwear" / "footwear.yaml"
    if not path.is_file():
        pytest.skip("benchmarks/footwear/footwear.yaml not found")
    spec = load_benchmark_file(path)
    generated = {"articleType": set(ARTICLE_TYPES), "baseColour": set(BASE_COLOURS)}
    for task in spec.tasks:
        if isinstance(task, ZeroShotTask) and task.field in generated and task.classes:
            assert set(task.classes) <= generated[task.field], task.name


# --- general benchmark ------------------------------------------------------------------------


def test_general_benchmark_reads_by_split(general: Path) -> None:
    train = read_labelled_csv(general, "train")
    test = read_labelled_csv(general, "test")
    assert len(train) + len(test) == 12 * len(GENERAL_SHAPES)
    assert len(test) == 4 * len(GENERAL_SHAPES)
    for items in (train, test):
        assert {item.fields["label"] for item in items} == set(GENERAL_SHAPES)
        assert all(item.path.is_file() and item.caption for item in items)
    assert {item.fields["colour"] for item in train} == set(GENERAL_COLOURS)
    for item in train + test:  # a caption names the item's colour or no colour at all
        named = set(GENERAL_COLOURS) & set(re.findall(r"[a-z]+", item.caption.lower()))
        assert named <= {item.fields["colour"]}, item.caption
    with Image.open(test[0].path) as image:
        assert image.size == (64, 64)


# --- speed and CLI ----------------------------------------------------------------------------


def test_two_thousand_items_in_seconds(tmp_path: Path) -> None:
    # CPU time of this process: other jobs on a shared machine do not count against it.
    started = time.process_time()
    generate_footwear_catalogue(tmp_path / "fw", 2000, seed=0)
    assert time.process_time() - started < 10


def test_cli_writes_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synth.main(["--out", str(tmp_path), "--n", "16", "--per-class", "3"]) == 0
    assert len(read_rows(tmp_path / "footwear" / "styles.csv")) == 16
    assert len(read_rows(tmp_path / "general" / "labels.csv")) == 3 * len(GENERAL_SHAPES)
    assert "done in" in capsys.readouterr().out
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "footwear").mkdir()
    (tmp_path / "elsewhere" / "footwear" / "notes.txt").write_text("mine")
    assert synth.main(["--out", str(tmp_path / "elsewhere"), "--n", "4"]) == 2
    assert "not written by" in capsys.readouterr().err
