"""`prepare catalogue`: filtered subsets, styles.csv or per-item JSON, the stratified split.

A small fake catalogue in tmp_path first, then the real Kaggle subset (skipped when absent).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from evalsuite.cli import main
from evalsuite.data.catalogue import FORMAT, read_catalogue
from evalsuite.data.manifest import load_manifest
from evalsuite.data.prepare import prepare_catalogue, prepare_footwear
from evalsuite.data.styles_csv import STYLES_COLUMNS
from evalsuite.errors import DataError, SpecError

SPLITS = ("train", "val", "test")
# (masterCategory, subCategory, articleType): item count
FAKE = {
    ("Footwear", "Shoes", "Casual Shoes"): 20,
    ("Footwear", "Shoes", "Heels"): 14,
    ("Footwear", "Sandal", "Sandals"): 8,
    ("Apparel", "Topwear", "Tshirts"): 25,
    ("Apparel", "Topwear", "Shirts"): 10,
    ("Apparel", "Bottomwear", "Jeans"): 9,
    ("Accessories", "Bags", "Handbags"): 6,
}  # 92 items: 10% of the 73 left after test is at least one per class (scikit-learn's rule)


def write_styles_json(rows: list[dict[str, str]], folder: Path) -> Path:
    """The full data set's layout: styles/<id>.json with categories as {"typeName": ...}
    objects, the id and year as numbers, and keys the reader ignores."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        data: dict[str, object] = {**row, "id": int(row["id"]), "styleImages": {"default": {}}}
        for name in ("masterCategory", "subCategory", "articleType"):
            data[name] = {"id": 1, "typeName": row[name], "active": True}
        data["year"] = int(row["year"]) if row["year"].isdigit() else row["year"]
        (folder / f"{row['id']}.json").write_text(json.dumps({"meta": {}, "data": data}))
    return folder


def styles_rows(styles: Path) -> list[dict[str, str]]:
    with open(styles, encoding="utf-8", newline="") as handle:
        return [
            dict(zip(STYLES_COLUMNS, row, strict=False)) for row in list(csv.reader(handle))[1:]
        ]


@pytest.fixture()
def fake(tmp_path: Path) -> Path:
    """catalogue/{styles.csv, images/<id>.jpg}; returns the images folder."""
    root = tmp_path / "catalogue"
    (root / "images").mkdir(parents=True)
    lines, item_id = [",".join(STYLES_COLUMNS)], 1000
    for (master, sub, article), count in FAKE.items():
        for _ in range(count):
            item_id += 1
            lines.append(
                f"{item_id},Women,{master},{sub},{article},Blue,Fall,2012,Casual,Item {item_id}"
            )
            Image.new("RGB", (4, 4), (item_id % 256, 0, 0)).save(root / "images" / f"{item_id}.jpg")
    (root / "styles.csv").write_text("\n".join(lines) + "\n")
    return root / "images"


def total_articles(manifest: dict) -> dict[str, int]:
    total: Counter = Counter()
    for split in SPLITS:
        total.update(manifest["counts"][split]["articleType"])
    return dict(total)


def test_no_filter_keeps_every_item(fake: Path, tmp_path: Path) -> None:
    manifest = prepare_catalogue(fake, tmp_path / "out")  # styles.csv found beside images/
    assert manifest["sizes"]["total"] == sum(FAKE.values())
    assert manifest["format"] == FORMAT  # read by the catalogue reader and the trainer
    assert manifest["styles_source"] == "csv" and manifest["stratify"] == "articleType"
    assert manifest["filters"] == {"masterCategory": [], "subCategory": [], "articleType": []}
    assert len(read_catalogue(tmp_path / "out", None)) == sum(FAKE.values())


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"master_category": "Apparel"}, {"Tshirts": 25, "Shirts": 10, "Jeans": 9}),
        ({"sub_category": ["Shoes", "Bags"]}, {"Casual Shoes": 20, "Heels": 14, "Handbags": 6}),
        ({"article_type": ["Heels", "Jeans"]}, {"Heels": 14, "Jeans": 9}),
        (
            {"master_category": ["Apparel", "Footwear"], "sub_category": ["Topwear", "Sandal"]},
            {"Tshirts": 25, "Shirts": 10, "Sandals": 8},
        ),
        ({"master_category": "Apparel", "article_type": "Jeans"}, {"Jeans": 9}),
    ],
)
def test_filters_or_within_and_across(
    fake: Path, tmp_path: Path, filters: dict, expected: dict[str, int]
) -> None:
    manifest = prepare_catalogue(fake, tmp_path / "out", **filters)
    assert total_articles(manifest) == expected
    assert manifest["sizes"]["total"] == sum(expected.values())
    recorded = manifest["filters"]
    for key, field in (("master_category", "masterCategory"), ("article_type", "articleType")):
        if key in filters:
            value = filters[key]
            assert recorded[field] == ([value] if isinstance(value, str) else value)


def test_footwear_is_the_footwear_filter(fake: Path, tmp_path: Path) -> None:
    styles = fake.parent / "styles.csv"
    footwear = prepare_footwear(fake, styles, tmp_path / "a")
    catalogue = prepare_catalogue(fake, tmp_path / "b", master_category="Footwear")
    assert footwear["manifest_hash"] == catalogue["manifest_hash"]
    assert footwear["files"] == catalogue["files"]  # the same JSONL bytes
    assert footwear["master_category"] == "Footwear"
    assert set(footwear["counts"]["test"]) == {"items", "articleType", "baseColour", "lace_colour"}


def test_json_source_equals_csv_source(fake: Path, tmp_path: Path) -> None:
    rows = styles_rows(fake.parent / "styles.csv")
    from_csv = prepare_catalogue(fake, tmp_path / "csv", sub_category=["Topwear", "Shoes"])
    folder = write_styles_json(rows, tmp_path / "json-styles")
    from_json = prepare_catalogue(
        fake, tmp_path / "json", folder, sub_category=["Topwear", "Shoes"]
    )
    assert from_json["styles_source"] == "json"
    assert from_json["manifest_hash"] == from_csv["manifest_hash"]
    # without styles.csv the styles/ folder beside images/ is found by default
    (fake.parent / "styles.csv").unlink()
    write_styles_json(rows, fake.parent / "styles")
    again = prepare_catalogue(fake, tmp_path / "json2", sub_category=["Topwear", "Shoes"])
    assert again["manifest_hash"] == from_csv["manifest_hash"]
    assert again["sources"]["styles"] == str((fake.parent / "styles").absolute())


def test_stratify_by_another_field(fake: Path, tmp_path: Path) -> None:
    manifest = prepare_catalogue(fake, tmp_path / "out", stratify="subCategory")
    assert manifest["stratify"] == "subCategory"
    assert set(manifest["counts"]["test"]["subCategory"]) == {
        "Shoes", "Sandal", "Topwear", "Bottomwear", "Bags"
    }  # fmt: skip
    with pytest.raises(SpecError, match=r"stratify field 'colour'.*did you mean 'baseColour'"):
        prepare_catalogue(fake, tmp_path / "out2", stratify="colour")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            {"master_category": "Apparell"},
            r"styles\.csv: no row has masterCategory 'Apparell' \(did you mean 'Apparel'\?\); "
            r"present: Accessories, Apparel, Footwear",
        ),
        (
            {"master_category": "Footwear", "sub_category": ["Shoes", "Topwear"]},
            r"no row has subCategory 'Topwear' among rows with masterCategory 'Footwear'; "
            r"present: Sandal, Shoes",
        ),
        ({"article_type": ["Heels", "heels"]}, r"articleType 'heels' \(did you mean 'Heels'\?\)"),
    ],
)
def test_filter_value_without_items(
    fake: Path, tmp_path: Path, filters: dict, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        prepare_catalogue(fake, tmp_path / "out", **filters)
    assert not (tmp_path / "out").exists()


def bad_json_cases() -> list[tuple[str, str, str]]:
    return [
        ("1001.json", '{"data": {"id": 1001, ', r"1001\.json: malformed JSON"),
        ("1001.json", '{"data": {"gender": "Men"}}', r"1001\.json: no 'id' in 'data'"),
        ("1001.json", '{"data": {"id": 1002}}', r"1001\.json: id '1002' does not match"),
        ("1001.json", "[1, 2]", r"1001\.json: expected a JSON object \{\"data\""),
        ("1001.json", '{"data": {"id": null}}', r"1001\.json: id must be a non-empty string"),
        (
            "1001.json",
            '{"data": {"id": 1001, "articleType": ["Heels"]}}',
            r"1001\.json: field 'articleType' must be text",
        ),
    ]


@pytest.mark.parametrize(("name", "text", "message"), bad_json_cases())
def test_bad_per_item_json(fake: Path, tmp_path: Path, name: str, text: str, message: str) -> None:
    folder = write_styles_json(styles_rows(fake.parent / "styles.csv"), tmp_path / "styles")
    (folder / name).write_text(text)
    with pytest.raises(DataError, match=message):
        prepare_catalogue(fake, tmp_path / "out", folder)
    assert not (tmp_path / "out").exists()


def test_json_item_without_stratify_class_names_its_file(fake: Path, tmp_path: Path) -> None:
    folder = write_styles_json(styles_rows(fake.parent / "styles.csv"), tmp_path / "styles")
    (folder / "1001.json").write_text('{"data": {"id": "1001", "masterCategory": "Footwear"}}')
    with pytest.raises(DataError, match=r"styles/1001\.json: no articleType"):
        prepare_catalogue(fake, tmp_path / "out", folder)


def test_missing_styles_and_empty_folder(fake: Path, tmp_path: Path) -> None:
    (fake.parent / "styles.csv").unlink()
    with pytest.raises(DataError, match=r"neither styles\.csv nor a styles/ folder"):
        prepare_catalogue(fake, tmp_path / "out")
    (fake.parent / "styles").mkdir()
    with pytest.raises(DataError, match=r"styles: no <id>\.json files"):
        prepare_catalogue(fake, tmp_path / "out")
    with pytest.raises(DataError, match="styles file not found"):
        prepare_catalogue(fake, tmp_path / "out", tmp_path / "nope.csv")


def test_cli_prepare_catalogue(fake: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    argv = ["prepare", "catalogue", "--images-dir", str(fake), "--out", str(out)]
    assert main([*argv, "--master-category", "Apparel", "--article-type", "Jeans"]) == 0
    assert load_manifest(out)["sizes"]["total"] == 9
    assert main([*argv, "--sub-category", "Topware"]) == 2
    assert "no row has subCategory 'Topware' (did you mean 'Topwear'?)" in capsys.readouterr().err
    assert load_manifest(out)["sizes"]["total"] == 9  # the failed run left the old folder
    (fake / "1001.jpg").unlink()
    assert main([*argv, "--master-category", "Footwear"]) == 2
    assert "1 image(s) missing" in capsys.readouterr().err
    assert main([*argv, "--master-category", "Footwear", "--on-missing-image", "skip"]) == 0
    assert load_manifest(out)["skipped_missing_images"]["first_ids"] == ["1001"]


# --- the real Kaggle subset -------------------------------------------------------------------


def test_real_footwear_same_hash_both_ways(catalogue_dir: Path, tmp_path: Path) -> None:
    images, styles = catalogue_dir / "images", catalogue_dir / "styles.csv"
    footwear = prepare_footwear(images, styles, tmp_path / "footwear")
    catalogue = prepare_catalogue(images, tmp_path / "catalogue", master_category="Footwear")
    assert footwear["sizes"]["total"] == 4416
    assert footwear["manifest_hash"].startswith("85834a306981")  # as before the catalogue step
    assert catalogue["manifest_hash"] == footwear["manifest_hash"]


def test_real_json_source_equals_csv(catalogue_dir: Path, tmp_path: Path) -> None:
    """Every real styles.csv row written as per-item JSON reads back to the same subset."""
    images, styles = catalogue_dir / "images", catalogue_dir / "styles.csv"
    folder = write_styles_json(styles_rows(styles), tmp_path / "styles")
    options = {"master_category": "Footwear", "sub_category": "Sandal"}
    from_csv = prepare_catalogue(images, tmp_path / "csv", styles, **options)
    from_json = prepare_catalogue(images, tmp_path / "json", folder, **options)
    assert from_json["sizes"] == from_csv["sizes"] and from_csv["sizes"]["total"] > 400
    assert from_json["manifest_hash"] == from_csv["manifest_hash"]


def test_real_topwear_split_is_stratified_80_20_then_10(
    catalogue_dir: Path, tmp_path: Path
) -> None:
    manifest = prepare_catalogue(
        catalogue_dir / "images", tmp_path / "out", master_category="Apparel",
        sub_category="Topwear",
    )  # fmt: skip
    sizes = manifest["sizes"]
    assert abs(sizes["test"] - 0.2 * sizes["total"]) <= 1
    rest = sizes["train"] + sizes["val"]
    assert abs(sizes["val"] - 0.1 * rest) <= 1
    counts = {s: manifest["counts"][s]["articleType"] for s in SPLITS}
    totals = total_articles(manifest)
    assert len(totals) > 5
    for article, n in totals.items():
        test, val = counts["test"].get(article, 0), counts["val"].get(article, 0)
        if n < 3:  # too few to spread: kept whole in train
            assert test == val == 0, article
            continue
        assert abs(test - 0.2 * n) <= 1, (article, n, test)  # each class's own 20%
        assert abs(val - 0.1 * (n - test)) <= 1, (article, n, val)
    assert set(manifest["counts"]["test"]["subCategory"]) == {"Topwear"}
