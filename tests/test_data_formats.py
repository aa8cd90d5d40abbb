"""The user-format readers (pairs_csv, hf_imagefolder, hf_dataset): 256 real catalogue items
written in each format read back unchanged, and each kind of bad input refused by name."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from evalsuite.data import get_reader
from evalsuite.data.hf_dataset import read_hf_dataset
from evalsuite.data.hf_folder import read_hf_imagefolder
from evalsuite.data.items import Item
from evalsuite.data.pairs import read_pairs_csv
from evalsuite.data.styles import read_styles_catalogue
from evalsuite.data.styles_csv import CATALOGUE_FIELDS
from evalsuite.errors import DataError, SpecError
from evalsuite.images import item_content_hash
from tests.fixtures.formats import FORMATS, write_format

N_ITEMS = 256


@pytest.fixture(scope="module")
def real_items(catalogue_dir: Path) -> list[Item]:
    items = read_styles_catalogue(catalogue_dir, "train", master_category="Footwear")
    return items[:N_ITEMS]


def assert_same_items(read: Sequence[Item], source: list[Item]) -> None:
    """Same ids in order, every source field, caption, lists and image bytes."""
    assert [item.id for item in read] == [item.id for item in source]
    for got, want in zip(read, source, strict=True):
        assert {k: got.fields[k] for k in want.fields} == dict(want.fields), want.id
        assert got.caption == want.caption
        assert dict(got.lists) == dict(want.lists)
        assert item_content_hash(got) == item_content_hash(want)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_format_reads_back_the_written_items(
    name: str, real_items: list[Item], tmp_path: Path
) -> None:
    reader, path, options = write_format(name, real_items, tmp_path / name)
    items = get_reader(reader)(path, **options)
    assert len(items) == N_ITEMS
    assert_same_items(items, real_items)
    assert set(CATALOGUE_FIELDS) <= set(items[0].fields)


def test_lists_and_extra_keys_are_kept(real_items: list[Item], tmp_path: Path) -> None:
    source = [
        Item(
            id=item.id,
            fields={**item.fields, "brand": f"b{i}"},
            path=item.path,
            caption=item.caption,
            lists={"captions": (item.caption or "", f"shoe {i}")},
        )
        for i, item in enumerate(real_items[:8])
    ]
    for name in ("hf_imagefolder", "hf_dataset", "hf_parquet"):
        reader, path, options = write_format(name, source, tmp_path / name)
        items = get_reader(reader)(path, **options)
        assert_same_items(items, source)
        assert items[3].fields["brand"] == "b3"
        assert items[3].lists["captions"][1] == "shoe 3"


def test_hf_dataset_is_a_lazy_sequence(real_items: list[Item], tmp_path: Path) -> None:
    reader, path, options = write_format("hf_dataset", real_items[:10], tmp_path / "d")
    items = get_reader(reader)(path, **options)
    assert not isinstance(items, list)
    assert items[-1].id == real_items[9].id
    assert [i.id for i in items[2:4]] == [i.id for i in real_items[2:4]]
    joined = items + [real_items[0]]  # noqa: RUF005 (the + of the lazy sequence is tested)
    assert [i.id for i in joined][-2:] == [real_items[9].id, real_items[0].id]
    with pytest.raises(IndexError):
        items[10]


# --- pairs_csv --------------------------------------------------------------------------------


def write_csv(folder: Path, text: str, name: str = "pairs.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.jpg").write_bytes(b"x")
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_pairs_keeps_every_column_and_empty_caption_is_none(tmp_path: Path) -> None:
    file = write_csv(tmp_path, "filepath,title,brand\na.jpg,red shoe,acme\nb.jpg,,zed\n")
    items = read_pairs_csv(file)
    assert items[0].fields == {"filepath": "a.jpg", "title": "red shoe", "brand": "acme"}
    assert items[0].id == "a.jpg" and items[0].path == tmp_path / "a.jpg"
    assert items[0].caption == "red shoe" and items[1].caption is None


def test_pairs_split_column_and_split_files(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "one", "filepath,title,split\na.jpg,x,train\nb.jpg,y,test\n")
    assert [i.id for i in read_pairs_csv(file, "test")] == ["b.jpg"]
    with pytest.raises(DataError, match=r"no row has split 'val'; splits present"):
        read_pairs_csv(file, "val")
    write_csv(tmp_path / "many", "img\tcap\nc.jpg\tz\n", name="val.tsv")
    items = read_pairs_csv(tmp_path / "many", "val", img_key="img", caption_key="cap")
    assert [i.caption for i in items] == ["z"]


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        (
            "path,title\na.jpg,x\n",
            {},
            r"row 1, column 'filepath' \(img_key\): no such column; "
            r"columns found: \['path', 'title'\]",
        ),
        ("filepath,caption\na.jpg,x\n", {}, r"column 'title' \(caption_key\).*found"),
        ("filepath,title\na.jpg,x\n", {"id_key": "sku"}, r"column 'sku' \(id_key\)"),
        (
            "filepath,title\na.jpg,\nb.jpg,nan\n",
            {},
            r"rows 2-3, column 'title': the caption "
            "is empty in every row",
        ),
        ("filepath,title\na.jpg,x\n,y\n", {}, r"row 3, column 'filepath': empty image path"),
        (
            "filepath,title\n../x.jpg,y\n",
            {},
            r"row 2, column 'filepath': image path '\.\./x\.jpg'"
            " is outside the folder",
        ),
        ("filepath,title\n/etc/passwd,y\n", {}, r"row 2, column 'filepath': .*outside"),
        ("filepath,title\na/../../x.jpg,y\n", {}, r"row 2, .*outside"),
        (
            "filepath,title\na.jpg,x\nb.jpg,y\na.jpg,z\n",
            {},
            r"row 4, column 'filepath': id "
            r"'a\.jpg' repeats row 2",
        ),
        (
            "filepath,title,sku\na.jpg,x,1\nb.jpg,y,1\n",
            {"id_key": "sku"},
            r"row 3, column 'sku'"
            r": id '1' repeats row 2",
        ),
    ],
)
def test_pairs_errors_name_file_row_and_column(
    tmp_path: Path, text: str, options: dict[str, str], message: str
) -> None:
    file = write_csv(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_pairs_csv(file, **options)
    assert str(file) in str(info.value)


def test_pairs_absolute_path_inside_folder_and_unknown_option(tmp_path: Path) -> None:
    file = write_csv(tmp_path, f"filepath,title\n{tmp_path / 'a.jpg'},x\n")
    assert read_pairs_csv(file)[0].path == tmp_path / "a.jpg"
    with pytest.raises(SpecError, match="img_col"):
        read_pairs_csv(file, img_col="x")


# --- hf_imagefolder ---------------------------------------------------------------------------


def write_metadata(folder: Path, records: list[object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record) for record in records]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "metadata.jsonl"


def test_imagefolder_split_csv_metadata_and_values(tmp_path: Path) -> None:
    write_metadata(tmp_path / "train", [{"file_name": "a.jpg", "text": "x", "year": 2012}])
    item = read_hf_imagefolder(tmp_path, "train")[0]
    assert item.fields == {"file_name": "a.jpg", "text": "x", "year": "2012"}
    assert item.path == tmp_path / "train" / "a.jpg" and item.id == "a.jpg"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "metadata.csv").write_text("file_name,label\nb.png,red\n")
    item = read_hf_imagefolder(tmp_path / "c", caption_key=None)[0]
    assert item.fields == {"file_name": "b.png", "label": "red"} and item.caption is None


@pytest.mark.parametrize(
    ("records", "options", "message"),
    [
        (
            [{"file_name": "../a.jpg", "text": "x"}],
            {},
            r"line 1, key 'file_name': image path "
            r"'\.\./a\.jpg' is outside",
        ),
        ([{"text": "x"}], {}, r"line 1, key 'file_name': missing"),
        (
            [{"file_name": "a.jpg", "caption": "x"}],
            {},
            r"no record has the caption key 'text'.*"
            r"keys found: \['caption', 'file_name'\]",
        ),
        (
            [{"file_name": "a.jpg", "text": "x"}, {"file_name": "a.jpg", "text": "y"}],
            {},
            r"line 2, key 'file_name': id 'a\.jpg' repeats line 1",
        ),
        (
            [{"file_name": "a.jpg", "text": "x", "tags": [1, 2]}],
            {},
            r"line 1, key 'tags': "
            "expected text",
        ),
        ([{"file_name": "a.jpg", "text": "x"}], {"id_key": "sku"}, r"line 1, key 'sku': no id"),
    ],
)
def test_imagefolder_errors_name_file_and_line(
    tmp_path: Path, records: list[object], options: dict[str, str], message: str
) -> None:
    file = write_metadata(tmp_path, records)
    with pytest.raises(DataError, match=message) as info:
        read_hf_imagefolder(tmp_path, **options)
    assert str(file) in str(info.value)


# --- hf_dataset -------------------------------------------------------------------------------


def test_hf_dataset_dict_splits_and_missing_columns(real_items: list[Item], tmp_path: Path) -> None:
    import datasets

    from tests.fixtures.formats import to_dataset

    both = datasets.DatasetDict(
        {"train": to_dataset(real_items[:3]), "test": to_dataset(real_items[3:5])}
    )
    both.save_to_disk(str(tmp_path / "dd"))
    test = read_hf_dataset(tmp_path / "dd", "test", id_key="id")
    assert [i.id for i in test] == [i.id for i in real_items[3:5]]
    with pytest.raises(
        DataError,
        match=r"dd: no split given; splits in this DatasetDict: "
        r"\['train', 'test'\]",
    ):
        read_hf_dataset(tmp_path / "dd")
    with pytest.raises(
        DataError,
        match=r"no column 'caption' \(caption_key\); columns found: "
        r"\['image', 'id', 'text'",
    ):
        read_hf_dataset(tmp_path / "dd", "train", caption_key="caption")
    with pytest.raises(DataError, match=r"no column 'img' \(image_key\)"):
        read_hf_dataset(tmp_path / "dd", "train", image_key="img")


def test_hf_dataset_parquet_split_layouts_and_ids(real_items: list[Item], tmp_path: Path) -> None:
    from tests.fixtures.formats import to_dataset

    layouts = ("test-00000.parquet", "test/part.parquet", "data/test-00000.parquet")
    for number, relative in enumerate(layouts):
        root = tmp_path / f"layout{number}"
        (root / relative).parent.mkdir(parents=True)
        to_dataset(real_items[:2]).to_parquet(str(root / relative))
        to_dataset(real_items[2:3]).to_parquet(str(root / relative.replace("test", "train")))
        items = read_hf_dataset(root, "test")
        assert [i.id for i in items] == ["000000.jpg", "000001.jpg"]  # default: image path
    twice = to_dataset([real_items[0], real_items[0]])
    twice.to_parquet(str(tmp_path / "twice.parquet"))
    with pytest.raises(DataError, match=r"twice\.parquet, row 1, column 'id': id '\d+' repeats"):
        read_hf_dataset(tmp_path / "twice.parquet", id_key="id")


# --- scoring ----------------------------------------------------------------------------------


def test_benchmark_scores_a_saved_dataset_dict(
    real_items: list[Item], catalogue_dir: Path, tiny_hf_dir: Path, tmp_path: Path
) -> None:
    """A benchmark YAML naming hf_dataset scores its test split, with a kNN probe that reads
    the train split through the reader too (the lazy sequence joined with a list)."""
    import datasets

    from evalsuite.runner import ScoreOptions, score_model
    from tests.fixtures.formats import to_dataset

    test = read_styles_catalogue(catalogue_dir, "test", master_category="Footwear")[:64]
    train, val = to_dataset(real_items[:64]), to_dataset(real_items[64:80])
    splits = {"train": train, "val": val, "test": to_dataset(test)}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "data"))
    yaml = tmp_path / "mine.yaml"
    yaml.write_text(
        f"""name: mine
version: 1
dataset:
  reader: hf_dataset
  path: {tmp_path / "data"}
  split: test
  options: {{id_key: id}}
tasks:
  - {{type: zeroshot, name: article, field: articleType}}
  - {{type: knn, name: knn, field: articleType, protocol: split, k: 3}}
""",
        encoding="utf-8",
    )
    options = ScoreOptions(
        benchmarks=(str(yaml),),
        db_path=None,
        cache_dir=tmp_path / "cache",
        progress=False,
        n_bootstrap=20,
    )
    (run,) = score_model(tiny_hf_dir, options)
    assert run.n_items == 64
    assert {m.task for m in run.metrics} == {"article", "knn"}


def test_hf_dataset_class_labels_read_as_their_names(real_items: list[Item], tmp_path: Path):
    """A ClassLabel column (the usual label type of Hugging Face image data sets) stores
    integers; an item carries the class name, and -1 (no label) as a missing value."""
    import datasets

    from evalsuite.data import get_reader

    rows = real_items[:3]
    names = ["Casual Shoes", "Heels"]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "id": datasets.Value("string"),
            "label": datasets.ClassLabel(names=names),
        }
    )
    columns = {
        "image": [{"bytes": Path(i.path).read_bytes(), "path": None} for i in rows],
        "text": [i.caption for i in rows],
        "id": [i.id for i in rows],
        "label": [1, 0, -1],
    }
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(tmp_path / "ds"))
    items = get_reader("hf_dataset")(tmp_path / "ds", id_key="id")
    assert [item.fields["label"] for item in items] == ["Heels", "Casual Shoes", ""]
