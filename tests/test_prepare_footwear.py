"""`prepare footwear` and the catalogue reader: a fake catalogue in tmp_path, then the real one."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from evalsuite.data import captions, get_reader, prepared_folder
from evalsuite.data.catalogue import read_catalogue
from evalsuite.data.manifest import combine_hashes, content_hash, load_manifest, sha256_file
from evalsuite.data.prepare import prepare_footwear
from evalsuite.data.styles_csv import CATALOGUE_FIELDS
from evalsuite.errors import DataError

HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName"
)
CLASSES = {"Casual Shoes": 20, "Heels": 15, "Flats": 12, "Boots": 2}
SPLITS = ("train", "val", "test")


def make_catalogue(root: Path, extra_rows: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """styles.csv + images/<id>.jpg: 49 footwear items in 4 classes (Boots rare) + 5 apparel.

    The header is line 1, so ``extra_rows`` start at line 56.
    """
    images = root / "images"
    images.mkdir(parents=True)
    rows, item_id = [HEADER], 100
    for article, count in CLASSES.items():
        for _ in range(count):
            item_id += 1
            rows.append(
                f"{item_id},Men,Footwear,Shoes,{article},Black,Summer,2012,Casual,"
                f"Roadster Men Black {article} {item_id}"
            )
    for _ in range(5):
        item_id += 1
        rows.append(f"{item_id},Women,Apparel,Topwear,Tshirts,Red,Fall,2011,Casual,Red Tee")
    rows.extend(extra_rows)
    (root / "styles.csv").write_text("\n".join(rows) + "\n")
    for line in rows[1:]:
        save_jpeg(images / f"{line.split(',')[0]}.jpg", int(line.split(",")[0]))
    return images, root / "styles.csv"


def save_jpeg(path: Path, seed: int) -> None:
    Image.new("RGB", (6, 8), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(path)


@pytest.fixture()
def fake(tmp_path: Path) -> tuple[Path, Path]:
    return make_catalogue(tmp_path / "catalogue")


def split_ids(out: Path) -> dict[str, list[str]]:
    return {s: [item.id for item in read_catalogue(out, s)] for s in SPLITS}


def test_prepare_writes_splits_and_manifest(fake: tuple[Path, Path], tmp_path: Path) -> None:
    images, styles = fake
    out = tmp_path / "prepared"
    manifest = prepare_footwear(images, styles, out, seed=0)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "test.jsonl",
        "train.jsonl",
        "val.jsonl",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue", "prepared"]  # no temp
    assert load_manifest(out) == manifest == load_manifest(out / "manifest.json")
    sizes = manifest["sizes"]
    assert sizes["total"] == 49 == sizes["train"] + sizes["val"] + sizes["test"]
    assert sizes["test"] == 10  # ceil(0.2 * 47 stratifiable items)
    for split in SPLITS:
        assert manifest["files"][f"{split}.jsonl"] == sha256_file(out / f"{split}.jsonl")
        records = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert [int(r["id"]) for r in records] == sorted(int(r["id"]) for r in records)
        assert manifest["counts"][split]["items"] == len(records)
    assert manifest["sources"]["styles"] == str(styles.absolute())
    assert manifest["seed"] == 0
    assert manifest["skipped_missing_images"]["count"] == 0


def test_stratified_split_and_rare_class_rule(fake: tuple[Path, Path], tmp_path: Path) -> None:
    manifest = prepare_footwear(*fake, tmp_path / "out")
    counts = {split: manifest["counts"][split]["articleType"] for split in SPLITS}
    for article in ("Casual Shoes", "Heels", "Flats"):
        assert all(counts[split].get(article, 0) > 0 for split in SPLITS), article
    # Fewer than 3 items cannot be spread over the splits: the whole class stays in train.
    assert counts["train"]["Boots"] == 2
    assert "Boots" not in counts["val"] and "Boots" not in counts["test"]


def test_records_and_reader_fields(fake: tuple[Path, Path], tmp_path: Path) -> None:
    images, styles = fake
    out = tmp_path / "out"
    prepare_footwear(images, styles, out)
    record = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert list(record) == [
        "id",
        "image",
        "gender",
        "masterCategory",
        "subCategory",
        "articleType",
        "baseColour",
        "season",
        "year",
        "usage",
        "productDisplayName",
        "lace_colour",
        "description",
    ]
    assert record["image"] == str(images.absolute() / f"{record['id']}.jpg")
    assert record["year"] == 2012 and record["lace_colour"] is None
    items = get_reader("catalogue")(out, "train")
    item = items[0]
    assert item.id == record["id"] and item.path == Path(record["image"])
    assert item.fields["year"] == "2012" and item.fields["masterCategory"] == "Footwear"
    assert "lace_colour" not in item.fields
    assert item.caption == record["description"]
    assert len(read_catalogue(out, None)) == 49
    assert read_catalogue(out / "train.jsonl") == items


def test_description_captions_and_laces(fake: tuple[Path, Path], tmp_path: Path) -> None:
    images, styles = fake
    annotations = tmp_path / "laces.csv"
    annotations.write_text("id,lace_colour,annotator\n101,White,ann\n102,,ann\n")
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        '{"id": 101, "caption": "A black sneaker with a white sole"}\n\n'
        '{"id": "103", "text": "Low-top shoe."}\n'
    )
    out = tmp_path / "out"
    manifest = prepare_footwear(images, styles, out, annotations=annotations, captions=captions)
    items = {item.id: item for item in read_catalogue(out, None)}
    assert items["101"].caption == (
        "Black casual shoes for men: Roadster Men Black Casual Shoes 101. "
        "A casual style from the Summer 2012 collection. "
        "A black sneaker with a white sole. It has white shoelaces."
    )
    assert items["101"].fields["lace_colour"] == "White"
    assert "lace_colour" not in items["102"].fields  # an empty annotation is no annotation
    assert items["103"].caption is not None and items["103"].caption.endswith("Low-top shoe.")
    laces = sum(manifest["counts"][s]["lace_colour"].get("White", 0) for s in SPLITS)
    assert laces == 1
    assert manifest["sources"]["captions"] == str(captions.absolute())


def test_description_skips_missing_fields() -> None:
    row = dict.fromkeys(CATALOGUE_FIELDS, "")
    row.update(articleType="Heels", gender="Unisex", usage="Ethnic")
    assert captions.describe(row, None, None) == "Heels for men and women. An ethnic style."
    row.update(usage="", season="Fall", baseColour="Navy Blue", productDisplayName="X")
    assert captions.describe(row, "", "Red") == (
        "Navy blue heels for men and women: X. From the Fall collection. It has red shoelaces."
    )


def test_styles_row_with_extra_commas_is_repaired(tmp_path: Path) -> None:
    bad = "900,Women,Footwear,Shoes,Heels,Gold,Summer,2012,Party,Catwalk Women Gold, Red, Heels"
    images, styles = make_catalogue(tmp_path / "c", extra_rows=(bad,))
    manifest = prepare_footwear(images, styles, tmp_path / "out")
    assert manifest["styles_repaired_rows"] == [{"line": 56, "id": "900"}]
    items = {item.id: item for item in read_catalogue(tmp_path / "out", None)}
    assert items["900"].fields["productDisplayName"] == "Catwalk Women Gold, Red, Heels"
    assert items["900"].fields["usage"] == "Party"


def test_styles_row_with_missing_fields_fails(tmp_path: Path) -> None:
    images, styles = make_catalogue(tmp_path / "c", extra_rows=("901,Women,Footwear,Shoes",))
    with pytest.raises(DataError, match=r"styles\.csv, line 56: 4 fields, expected 10"):
        prepare_footwear(images, styles, tmp_path / "out")


def test_extra_commas_are_an_error_when_the_name_is_not_last(tmp_path: Path) -> None:
    images, styles = make_catalogue(tmp_path / "c")
    lines = styles.read_text().splitlines()
    lines[0] += ",link"
    lines[1:] = [line + ",http://x" for line in lines[1:]]
    lines.append("900,Men,Footwear,Shoes,Heels,Gold,Summer,2012,Party,Gold, Heels,http://x")
    styles.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 56: 12 fields, expected 11"):
        prepare_footwear(images, styles, tmp_path / "out")


def test_styles_duplicate_id_and_bad_header(tmp_path: Path) -> None:
    dup = "101,Men,Footwear,Shoes,Heels,Black,Summer,2012,Casual,Copy"
    images, styles = make_catalogue(tmp_path / "c", extra_rows=(dup,))
    with pytest.raises(DataError, match=r"line 56: id '101' appears twice"):
        prepare_footwear(images, styles, tmp_path / "out")
    styles.write_text("id;gender\n1;Men\n")
    with pytest.raises(DataError, match="line 1: header must start with id,gender"):
        prepare_footwear(images, styles, tmp_path / "out")


def test_missing_images_fail_or_skip(fake: tuple[Path, Path], tmp_path: Path) -> None:
    images, styles = fake
    (images / "105.jpg").unlink()
    (images / "130.jpg").unlink()
    with pytest.raises(DataError, match=r"2 image\(s\) missing, e\.g\. ids \['105', '130'\]"):
        prepare_footwear(images, styles, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    manifest = prepare_footwear(images, styles, tmp_path / "out", on_missing_image="skip")
    assert manifest["skipped_missing_images"] == {"count": 2, "first_ids": ["105", "130"]}
    assert manifest["sizes"]["total"] == 47


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "laces.csv",
            "id,lace_colour\n101,White\n999,Red\n",
            r"laces\.csv, line 3: unknown id '999'",
        ),
        ("laces.csv", "id,colour\n101,White\n", r"laces\.csv: missing column 'lace_colour'"),
        ("laces.csv", "id,lace_colour\n101,White\n101,Red\n", r"line 3: id '101' appears twice"),
    ],
)
def test_bad_annotations(
    fake: tuple[Path, Path], tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        prepare_footwear(*fake, tmp_path / "out", annotations=tmp_path / name)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": 101, "caption": "ok"}\n{"id": 7, "caption": "x"}\n', r"line 2: unknown id '7'"),
        ('{"id": 101, "caption": "ok"}\n{"id": 102, "caption": \n', r"line 2: malformed JSON"),
        ('{"id": 101}\n', r"line 1: expected \{\"id\""),
        ("[1, 2]\n", r"line 1: expected a JSON object"),
    ],
)
def test_bad_captions(fake: tuple[Path, Path], tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "captions.jsonl").write_text(text)
    with pytest.raises(DataError, match=r"captions\.jsonl, " + message):
        prepare_footwear(*fake, tmp_path / "out", captions=tmp_path / "captions.jsonl")


def test_per_item_json_fills_empty_fields(tmp_path: Path) -> None:
    row = "900,Women,Footwear,Shoes,Flats,,Summer,,Casual,Plain Flats"
    images, styles = make_catalogue(tmp_path / "c", extra_rows=(row,))
    (tmp_path / "c" / "styles").mkdir()
    data = {"data": {"baseColour": "Tan", "year": "2013", "articleType": {"typeName": "Boots"}}}
    (tmp_path / "c" / "styles" / "900.json").write_text(json.dumps(data))
    prepare_footwear(images, styles, tmp_path / "out")
    item = {i.id: i for i in read_catalogue(tmp_path / "out", None)}["900"]
    assert item.fields["baseColour"] == "Tan" and item.fields["year"] == "2013"
    assert item.fields["articleType"] == "Flats"  # only empty fields are filled


def test_same_seed_same_split_other_seed_differs(fake: tuple[Path, Path], tmp_path: Path) -> None:
    first = prepare_footwear(*fake, tmp_path / "a", seed=3)
    again = prepare_footwear(*fake, tmp_path / "b", seed=3)
    other = prepare_footwear(*fake, tmp_path / "c", seed=4)
    assert split_ids(tmp_path / "a") == split_ids(tmp_path / "b")
    assert first["manifest_hash"] == again["manifest_hash"]
    assert split_ids(tmp_path / "a")["test"] != split_ids(tmp_path / "c")["test"]
    assert other["manifest_hash"] != first["manifest_hash"]
    assert other["images_hash"] == first["images_hash"]  # same images, other split


def test_manifest_hash_follows_image_content_not_location(
    fake: tuple[Path, Path], tmp_path: Path
) -> None:
    images, styles = fake
    before = prepare_footwear(images, styles, tmp_path / "out")
    moved = shutil.copytree(images.parent, tmp_path / "moved")
    elsewhere = prepare_footwear(moved / "images", moved / "styles.csv", tmp_path / "out2")
    assert elsewhere["manifest_hash"] == before["manifest_hash"]
    assert elsewhere["files"] != before["files"]  # the JSONL files hold absolute paths
    save_jpeg(moved / "images" / "110.jpg", seed=1)
    changed = prepare_footwear(moved / "images", moved / "styles.csv", tmp_path / "out2")
    assert changed["images_hash"] != before["images_hash"]
    assert changed["manifest_hash"] != before["manifest_hash"]
    assert changed["split_hashes"] == before["split_hashes"]


def test_failed_prepare_keeps_previous_output(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    old = prepare_footwear(*fake, out, seed=0)
    real_write = prepared_folder.write_jsonl

    def failing_write(path: Path, records: list[dict]) -> None:
        if path.name == "test.jsonl":
            raise OSError("disk full")
        real_write(path, records)

    monkeypatch.setattr(prepared_folder, "write_jsonl", failing_write)
    with pytest.raises(OSError, match="disk full"):
        prepare_footwear(*fake, out, seed=1)
    assert load_manifest(out) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue", "out"]
    monkeypatch.undo()
    new = prepare_footwear(*fake, out, seed=1)
    assert load_manifest(out) == new != old


def test_refuses_to_replace_a_foreign_folder(fake: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a prepared catalogue folder"):
        prepare_footwear(*fake, out)
    assert (out / "thesis.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue", "precious"]


def test_bad_arguments(fake: tuple[Path, Path], tmp_path: Path) -> None:
    images, styles = fake
    with pytest.raises(DataError, match="no row has masterCategory 'Shoes'"):
        prepare_footwear(images, styles, tmp_path / "out", master_category="Shoes")
    with pytest.raises(DataError, match="test_size"):
        prepare_footwear(images, styles, tmp_path / "out", test_size=1.5)
    with pytest.raises(DataError, match="images folder not found"):
        prepare_footwear(tmp_path / "nope", styles, tmp_path / "out")


def test_val_size_zero_gives_empty_val(fake: tuple[Path, Path], tmp_path: Path) -> None:
    manifest = prepare_footwear(*fake, tmp_path / "out", val_size=0)
    assert manifest["sizes"]["val"] == 0
    assert read_catalogue(tmp_path / "out", "val") == []


def test_catalogue_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="prepared catalogue not found"):
        read_catalogue(tmp_path / "missing")
    bad = tmp_path / "test.jsonl"
    bad.write_text('{"id": "1", "image": "/x/1.jpg"}\n{"id": "2", "image": \n')
    with pytest.raises(DataError, match=r"test\.jsonl, line 2: malformed JSON"):
        read_catalogue(tmp_path)
    bad.write_text('{"id": "1"}\n')
    with pytest.raises(DataError, match=r"line 1: record needs 'id' and 'image'"):
        read_catalogue(bad)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        read_catalogue(tmp_path, "dev")
    with pytest.raises(DataError, match=r"train\.jsonl: split file not found"):
        read_catalogue(tmp_path, "train")
    with pytest.raises(DataError, match="manifest not found"):
        load_manifest(tmp_path)


def test_hash_helpers(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"alpha")
    (tmp_path / "b").write_bytes(b"beta")
    assert sha256_file(tmp_path / "a") == hashlib.sha256(b"alpha").hexdigest()
    assert combine_hashes({"x": "1", "y": "2"}) == combine_hashes([("y", "2"), ("x", "1")])
    assert combine_hashes({"x": "1", "y": "2"}) != combine_hashes({"x": "2", "y": "1"})
    files = {"a": tmp_path / "a", "b": tmp_path / "b"}
    swapped = {"a": tmp_path / "b", "b": tmp_path / "a"}
    assert content_hash(files) != content_hash(swapped)


# --- the real Kaggle subset -------------------------------------------------------------------

REAL_TYPES = {
    "Casual Shoes": 1324,
    "Sports Shoes": 1122,
    "Heels": 542,
    "Flip Flops": 450,
    "Sandals": 391,
    "Formal Shoes": 309,
    "Flats": 246,
    "Sports Sandals": 32,
}


def test_prepare_real_footwear(catalogue_dir: Path, tmp_path: Path) -> None:
    start = time.perf_counter()
    images, styles = catalogue_dir / "images", catalogue_dir / "styles.csv"
    manifest = prepare_footwear(images, styles, tmp_path / "seed0", seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"prepare took {elapsed:.1f} s"
    sizes = manifest["sizes"]
    assert sizes["total"] == 4416
    assert 883 <= sizes["test"] <= 884
    assert sizes["train"] + sizes["val"] == 4416 - sizes["test"]
    assert 0.09 < sizes["val"] / (sizes["train"] + sizes["val"]) < 0.11
    for split in SPLITS:
        assert set(manifest["counts"][split]["articleType"]) == set(REAL_TYPES), split
    for article, total in REAL_TYPES.items():
        assert sum(manifest["counts"][s]["articleType"][article] for s in SPLITS) == total
    assert manifest["styles_repaired_rows"] == []
    again = prepare_footwear(images, styles, tmp_path / "again", seed=0)
    other = prepare_footwear(images, styles, tmp_path / "seed1", seed=1)
    assert split_ids(tmp_path / "seed0") == split_ids(tmp_path / "again")
    assert again["manifest_hash"] == manifest["manifest_hash"]
    assert set(split_ids(tmp_path / "seed0")["test"]) != set(split_ids(tmp_path / "seed1")["test"])
    assert other["images_hash"] == manifest["images_hash"]
    items = read_catalogue(tmp_path / "seed0", "test")
    assert len(items) == sizes["test"] and all(item.path.is_file() for item in items[:50])
    assert all(item.caption and item.fields["articleType"] in REAL_TYPES for item in items)
