"""A corpus of bad inputs, generated here: each gives an error naming the file and the line
(or row, or field), or a recorded skip count; never a bare traceback, never a wrong score.

Covered elsewhere and not repeated here: single images of every mode and breakage
(tests/test_images.py), the engine's skip/fail policy (tests/test_embedding.py), styles.csv
rows with missing fields, duplicate ids and repaired extra commas, annotations naming unknown
ids (tests/test_prepare_footwear.py), misspelt YAML keys (tests/test_spec.py), query files
(tests/test_queries.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from faultkit import BENCHMARK, QUERIES, write_images_csv
from PIL import Image
from test_images import png_header_only

from evalsuite import store
from evalsuite.cli import main
from evalsuite.data.catalogue import read_catalogue
from evalsuite.data.custom import read_labelled_csv
from evalsuite.data.deepfashion import read_listing
from evalsuite.data.prepare import read_annotations, read_captions
from evalsuite.data.styles_csv import read_styles
from evalsuite.errors import DataError, SpecError
from evalsuite.runner import ScoreOptions, score_model

STYLES_HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName\n"
)
STYLES_ROW = "101,Men,Footwear,Shoes,Heels,Black,Summer,2012,Casual,Black Heels\n"
LATIN1_E = b"\xe9"  # "é" in Latin-1 / cp1252: not UTF-8


# --- text files: encoding, extra commas, empty files ------------------------------------------


def _styles(path: Path) -> object:
    return read_styles(path)


def _annotations(path: Path) -> object:
    return read_annotations(path, {"101", "102"})


def _captions(path: Path) -> object:
    return read_captions(path, {"101", "102"})


def _listing(path: Path) -> object:
    return read_listing(path, ("image_name", "category_label"))


CORPUS: list[tuple[str, Callable[[Path], object], bytes, str]] = [
    # (file name, reader, content, expected message after the file name)
    ("styles.csv", _styles, STYLES_HEADER.encode() + STYLES_ROW.encode().replace(b"Black Heels",
     b"Caf" + LATIN1_E + b" Heels"), r", line 2: styles CSV is not UTF-8 \(byte 0xe9"),
    ("laces.csv", _annotations, b"id,lace_colour\n101,White\n102,Cr" + LATIN1_E + b"me\n",
     r", line 3: annotations CSV is not UTF-8"),
    # pandas took the first column as an index and shifted the others: id 'White' was unknown
    ("laces.csv", _annotations, b"id,lace_colour\n101,White,Red\n102,Black\n",
     r", line 2: 3 fields, expected 2 \(id,lace_colour\); quote values that contain commas"),
    ("laces.csv", _annotations, b"", r": cannot parse annotations CSV: the file is empty"),
    ("captions.jsonl", _captions, b'{"id": 101, "caption": "ok"}\n{"id": 102, "caption": "'
     + LATIN1_E + b'"}\n', r", line 2: JSONL file is not UTF-8"),
    ("labels.csv", read_labelled_csv, b"path,label\n1.jpg,Heels\n2.jpg,Fl" + LATIN1_E + b"ts\n",
     r", line 3: CSV is not UTF-8"),
    # the silent bug: path 'Heels', label 'extra' for the first row, a wrong score downstream
    ("labels.csv", read_labelled_csv, b"path,label\n1.jpg,Heels,extra\n2.jpg,Flats\n",
     r", line 2: 3 fields, expected 2 \(path,label\)"),
    # a short row gets empty fields at the end, as pandas read it: here the label is missing
    ("labels.csv", read_labelled_csv, b"path,label\n1.jpg,Heels\n2.jpg\n",
     r", row 3, column 'label': empty label"),
    # an unclosed quote: in csv's lenient mode it swallowed every later row, silently; the
    # error names the line where the quote opened, not the end of the file
    ("labels.csv", read_labelled_csv, b'path,label\n1.jpg,"Heels\n2.jpg,Flats\n3.jpg,Flats\n',
     r", line 2: cannot parse CSV: a quote opened in this row is not closed"),
    ("labels.csv", read_labelled_csv, b"path,label,label\n1.jpg,Heels,Flats\n",
     r", line 1: column 'label' appears more than once in the header"),
    # the position of a bad byte counts the BOM
    ("labels.csv", read_labelled_csv, b"\xef\xbb\xbfpath,label\n1.jpg,Fl\xffts\n",
     r", line 2: CSV is not UTF-8 \(byte 0xff at column 9\)"),
    ("labels.csv", read_labelled_csv, b"path,label\n", r": no rows"),
    ("list_category_img.txt", _listing, b"1\nimage_name category_label\nimg/caf" + LATIN1_E
     + b".jpg 1\n", r", line 3: listing file is not UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "reader", "content", "message"),
    CORPUS,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CORPUS)],
)
def test_bad_text_files_name_file_and_line(
    tmp_path: Path, name: str, reader: Callable[[Path], object], content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        reader(path)
    assert str(caught.value).startswith(str(path)), caught.value
    assert caught.match(message)


def test_rows_without_their_last_empty_fields_still_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(b'path,label,caption\r\n1.jpg,Heels,"red, with a bow"\r\n2.jpg,Flats\r\n\r\n')
    items = read_labelled_csv(path)
    assert [(i.id, i.fields["label"], i.caption) for i in items] == [
        ("1.jpg", "Heels", "red, with a bow"),
        ("2.jpg", "Flats", None),
    ]


def test_styles_csv_with_missing_columns_names_the_header(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text(STYLES_HEADER.replace(",season", "") + STYLES_ROW)
    with pytest.raises(DataError, match=r"styles\.csv, line 1: header must start with id,gender"):
        read_styles(path)


# --- images: a scored benchmark over a corpus of odd and broken files -------------------------


def image_corpus(folder: Path) -> tuple[Path, dict[str, str]]:
    """labels.csv over red images in every odd mode plus broken files; {file: why broken}."""
    folder.mkdir(parents=True)
    red = np.full((24, 24, 3), (220, 30, 30), np.uint8)
    Image.fromarray(red).save(folder / "rgb.png")
    Image.fromarray(red).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(red).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(red).convert("P").save(folder / "palette.png")
    Image.fromarray(np.full((24, 24), 40000, np.uint16)).save(folder / "sixteen.png")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "full.jpg", quality=95)
    data = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    png_header_only(folder / "bomb.png", 20_000, 20_000)  # a decompression bomb
    broken = {"truncated.jpg": "cannot decode", "empty.jpg": "empty", "bomb.png": "bomb"}
    names = ["rgb.png", "cmyk.jpg", "rgba.png", "palette.png", "sixteen.png", *broken]
    labels = {"sixteen.png": "grey"}
    rows = [f"{name},{labels.get(name, 'red')}" for name in names]
    (folder / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return folder / "labels.csv", broken


def write_benchmark(bench_dir: Path, name: str, csv: Path, policy: str = "skip",
                    queries: str = QUERIES, edit: Callable[[str], str] = str) -> Path:  # fmt: skip
    folder = bench_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    yaml_text = BENCHMARK.format(name=name, csv=csv) + f"image_policy: {policy}\n"
    (folder / f"{name}.yaml").write_text(edit(yaml_text))
    (folder / "queries.jsonl").write_text(queries)
    return folder / f"{name}.yaml"


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "benchmarks"
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(folder))
    return folder


def score(model: Path, name: str, db: Path, tmp_path: Path) -> list:
    opts = ScoreOptions(benchmarks=(name,), db_path=db, cache_dir=tmp_path / "cache",
                        num_workers=0, n_bootstrap=20, progress=False)  # fmt: skip
    return score_model(model, opts)


QUERIES_RED = '{"id": "red", "text": "a red square", "where": {"label": "red"}}\n'


def test_broken_images_are_skipped_and_counted_odd_modes_are_scored(
    tiny_hf_dir: Path, tmp_path: Path, bench_dir: Path
) -> None:
    csv, broken = image_corpus(tmp_path / "images")
    write_benchmark(bench_dir, "corpus", csv, queries=QUERIES_RED)
    db = tmp_path / "results.duckdb"
    (run,) = score(tiny_hf_dir, "corpus", db, tmp_path)
    assert (run.n_items, run.n_skipped_images) == (8, 3)
    skipped = store.skipped_images(db, run.run_id)
    assert sorted(skipped["item_id"]) == sorted(broken)
    for item_id, path, reason in skipped.itertuples(index=False):
        assert broken[item_id] in reason and f"item {item_id!r}" in reason
        assert path == str(csv.parent / item_id)
    predicted = store.predictions(db, run.run_id, "colour", limit=None)
    assert sorted(predicted["item_id"]) == sorted(["rgb.png", "cmyk.jpg", "rgba.png",
                                                   "palette.png", "sixteen.png"])  # fmt: skip
    assert store.list_runs(db)["n_skipped"].tolist() == [3]


def test_strict_image_policy_fails_naming_item_and_path(
    tiny_hf_dir: Path, tmp_path: Path, bench_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, broken = image_corpus(tmp_path / "images")
    write_benchmark(bench_dir, "strict", csv, policy="fail", queries=QUERIES_RED)
    code = main(["--db", str(tmp_path / "results.duckdb"), "score", str(tiny_hf_dir),
                 "--benchmarks", "strict", "--workers", "0", "--no-cache", "--json"])  # fmt: skip
    assert code == 2  # a user error with a message, not a traceback
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the loading bars
    assert error.startswith("error: item '"), error
    assert any(f"({csv.parent / name})" in error for name in broken), error
    assert not (tmp_path / "results.duckdb").exists()


def test_no_readable_image_is_a_data_error_not_a_missing_field(
    tiny_hf_dir: Path, tmp_path: Path, bench_dir: Path
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(b"")
    (folder / "labels.csv").write_text("path,label\na.jpg,red\nb.jpg,blue\n")
    write_benchmark(bench_dir, "unreadable", folder / "labels.csv")
    with pytest.raises(DataError, match=r"none of the 2 images in .*labels\.csv could be read, "
                       r"e\.g\. item 'a\.jpg' .* empty"):  # fmt: skip
        score(tiny_hf_dir, "unreadable", tmp_path / "results.duckdb", tmp_path)


# --- benchmark definitions: classes without items, empty benchmarks, empty queries ------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda y: y.replace('templates: ["a photo of a {} square."]',
                             'templates: ["a photo of a {} square."]\n    classes: [red, purple]'),
         r"corpus\.yaml: task 'colour': class 'purple' has no item with that label"),
        (lambda y: y.replace('templates: ["a photo of a {} square."]',
                             'templates: ["a photo of a {} square."]\n    min_class_count: 99'),
         r"corpus\.yaml: task 'colour': no scored item has a label among the classes \(none "
         r"left after min_class_count\)"),
        (lambda y: y.replace("    field: label", "    field: colour"),
         r"corpus\.yaml: task 'colour': no item has field 'colour'"),
        (lambda y: y.replace("tasks:", "taskz:"), r"corpus\.yaml: taskz: unknown field"),
        (lambda y: y.replace('templates: ["a photo of a {} square."]',
                             'templates: ["a photo of a {} square."]\n    classes: []'),
         r"corpus\.yaml: tasks\[0\]\.classes: classes is empty"),
    ],
    ids=["class-without-items", "no-class-left", "unknown-field", "unknown-key", "empty-classes"],
)  # fmt: skip
def test_bad_benchmark_definitions_name_the_yaml(
    tiny_hf_dir: Path, tmp_path: Path, bench_dir: Path, edit: Callable[[str], str], message: str
) -> None:
    csv = write_images_csv(tmp_path / "data", per_colour=2)
    write_benchmark(bench_dir, "corpus", csv, edit=edit)
    with pytest.raises(SpecError, match=message):
        score(tiny_hf_dir, "corpus", tmp_path / "results.duckdb", tmp_path)


def test_empty_benchmarks_name_the_data(tiny_hf_dir: Path, tmp_path: Path, bench_dir: Path) -> None:
    empty_csv = tmp_path / "empty" / "labels.csv"
    empty_csv.parent.mkdir()
    empty_csv.write_text("path,label\n")
    write_benchmark(bench_dir, "nocsv", empty_csv)
    with pytest.raises(DataError, match=r"empty[/\\]labels\.csv: no rows"):
        score(tiny_hf_dir, "nocsv", tmp_path / "results.duckdb", tmp_path)

    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "test.jsonl").write_text("")
    write_benchmark(bench_dir, "nojsonl", prepared,
                    edit=lambda y: y.replace("reader: labelled_csv", "reader: catalogue")
                    .replace("  path:", "  split: test\n  path:"))  # fmt: skip
    assert read_catalogue(prepared) == []
    with pytest.raises(DataError, match=r"benchmark nojsonl: no items in .*prepared \(split"):
        score(tiny_hf_dir, "nojsonl", tmp_path / "results.duckdb", tmp_path)
    assert not (tmp_path / "results.duckdb").exists()  # nothing half-stored


def test_query_without_relevant_items_is_counted_and_scores_zero(
    tiny_hf_dir: Path, tmp_path: Path, bench_dir: Path
) -> None:
    csv = write_images_csv(tmp_path / "data", per_colour=2)
    write_benchmark(bench_dir, "plain", csv)
    nothing = '{"id": "none", "text": "a purple square", "ids": ["no-such-item"]}\n'
    write_benchmark(bench_dir, "withempty", csv, queries=QUERIES + nothing)
    db = tmp_path / "results.duckdb"
    (plain,) = score(tiny_hf_dir, "plain", db, tmp_path)
    (with_empty,) = score(tiny_hf_dir, "withempty", db, tmp_path)
    assert with_empty.extra["tasks"]["search"]["n_queries_without_relevant"] == 1
    assert plain.extra["tasks"]["search"]["n_queries_without_relevant"] == 0
    before = {m.name: m.value for m in plain.metrics if m.task == "search"}
    after = {m.name: m.value for m in with_empty.metrics if m.task == "search"}
    assert after["ir_hits"] == before["ir_hits"]  # the empty query adds no hit...
    for name in ("P@1", "Recall@5", "NDCG@5", "MAP@5", "MRR"):  # ...and 0 to each mean
        assert after[name] == pytest.approx(before[name] * 3 / 4), name
    stored = store.queries(db, with_empty.run_id, "search").set_index("query_id")
    assert stored.loc["none", "n_relevant"] == 0


def test_catalogue_record_without_id_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "test.jsonl").write_text(
        json.dumps({"id": "1", "image": "a.jpg"}) + "\n" + json.dumps({"image": "b.jpg"}) + "\n"
    )
    with pytest.raises(DataError, match=r"test\.jsonl, line 2: record needs 'id' and 'image'"):
        read_catalogue(tmp_path)
