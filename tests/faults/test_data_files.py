"""Data files that used to give a silent wrong result or a traceback (issue 15, round two):
an unclosed quote in styles.csv, missing-value markers ("nan", NaN, null) read as labels or
captions, and ids that would name a file outside the images folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultkit import write_benchmarks, write_images_csv
from PIL import Image

from evalsuite import store
from evalsuite.cli import main
from evalsuite.data.catalogue import read_catalogue
from evalsuite.data.custom import read_labelled_csv
from evalsuite.data.prepare import read_captions
from evalsuite.data.styles import read_styles_catalogue
from evalsuite.data.styles_csv import read_styles
from evalsuite.errors import DataError
from evalsuite.runner import ScoreOptions, score_model
from finetune.config import TrainConfig, validate_config
from finetune.sources import class_names, read_split
from testkit.synthetic import write_synthetic_catalogue

HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName"
)
TYPES = ("Heels", "Flats", "Casual Shoes", "Sandals")


def styles_rows(count: int = 80) -> list[str]:
    """``count`` footwear rows, ids 101..; row k (0-based) is line k + 2 of the file."""
    return [
        f"{101 + k},Women,Footwear,Shoes,{TYPES[k % 4]},Black,Summer,2012,Casual,"
        f"Roadster Women Black {TYPES[k % 4]} {101 + k}"
        for k in range(count)
    ]


def write_catalogue(root: Path, rows: list[str]) -> tuple[Path, Path]:
    """styles.csv and a tiny images/<id>.jpg for each row whose id is a plain number."""
    images = root / "images"
    images.mkdir(parents=True)
    (root / "styles.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    for row in rows:
        item_id = row.split(",")[0]
        if item_id.isdigit():
            Image.new("RGB", (6, 8), (int(item_id) % 256, 80, 80)).save(images / f"{item_id}.jpg")
    return images, root / "styles.csv"


def train_config(folder: Path, **data: object) -> TrainConfig:
    """A fine-tuning config reading ``folder``'s train split only (no model is loaded)."""
    return validate_config(
        {
            "model": {"spec": "unused"},
            "data": {"path": str(folder), "val_split": None, **data},
            "schedule": {"name": "cosine"},
        }
    )


def prepare_cli(images: Path, styles: Path, out: Path) -> int:
    return main(["prepare", "footwear", "--images-dir", str(images), "--styles", str(styles),
                 "--out", str(out)])  # fmt: skip


# --- 1. an unclosed quote in styles.csv -----------------------------------------------------


def with_quote_opened_on_line_11(closed_later: bool) -> list[str]:
    """80 rows; the productDisplayName of line 11 opens a quote that is never closed. With
    ``closed_later``, a later row holds a quoted value, whose quote the parser reads as the
    closing one (the lenient reader then glued lines 11..40 into one productDisplayName)."""
    rows = styles_rows()
    rows[9] = rows[9].replace("Roadster Women", '"Roadster Women')  # line 11
    if closed_later:
        rows[39] = rows[39].replace("Roadster Women", '"Roadster, Women"')  # line 41
    return rows


@pytest.mark.parametrize("closed_later", [False, True], ids=["runs-to-the-end", "meets-a-quote"])
def test_unclosed_quote_in_styles_names_the_row_where_it_opened(
    tmp_path: Path, closed_later: bool
) -> None:
    """The line where the quote opened is the one to fix; the line where the parser gave up
    (the end of the file, or a later quoted value) tells the user nothing."""
    _, styles = write_catalogue(tmp_path, with_quote_opened_on_line_11(closed_later))
    with pytest.raises(DataError) as caught:
        read_styles(styles)
    message = str(caught.value)
    assert message.startswith(f"{styles}, line 11: cannot parse styles CSV: "), message
    assert "quote" in message and "not closed" in message, message


def test_unclosed_quote_in_styles_catalogue_reader_is_an_error(tmp_path: Path) -> None:
    """The styles_catalogue reader shares read_styles: no benchmark over 4 of 80 items."""
    write_catalogue(tmp_path, with_quote_opened_on_line_11(closed_later=True))
    with pytest.raises(DataError, match=r"styles\.csv, line 11: cannot parse styles CSV"):
        read_styles_catalogue(tmp_path)


def test_prepare_with_an_unclosed_quote_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, styles = write_catalogue(tmp_path / "kaggle", with_quote_opened_on_line_11(True))
    out = tmp_path / "prepared" / "footwear"
    assert prepare_cli(images, styles, out) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {styles}, line 11: cannot parse styles CSV: "), error
    assert not out.exists()
    assert not (tmp_path / "prepared").exists() or not any((tmp_path / "prepared").iterdir())


def test_unclosed_quote_in_a_labelled_csv_names_the_row_where_it_opened(tmp_path: Path) -> None:
    """The labelled-CSV reader shares the same CSV code, so it names the opening line too."""
    path = tmp_path / "labels.csv"
    path.write_text('path,label\n1.jpg,"Heels\n2.jpg,Flats\n3.jpg,Flats\n')
    with pytest.raises(DataError, match=r"labels\.csv, line 2: cannot parse CSV: .*not closed"):
        read_labelled_csv(path)


# --- 6. missing-value markers in label fields -----------------------------------------------

# What a missing value becomes in text: str() of a float NaN ("nan", as pandas' astype(str)
# and numpy write it), in any letter case, with stray spaces.
MARKERS = ("nan", "NaN", "NAN", "Nan", " nan ")
# Real values of catalogues, not missing ones: lace colour "None" of a laceless shoe, "NA"
# (not applicable), and the other strings pandas' read_csv would read as missing by default.
REAL_WORDS = ("None", "NA", "N/A", "NULL", "null", "n/a", "<NA>", "none")


def test_missing_value_markers_in_a_labelled_csv_are_missing_not_classes(
    tmp_path: Path,
) -> None:
    """The text "nan" (any case) is what a NaN float becomes, so it means "no value", like an
    empty cell, not a class "nan" with support 20 and F1 0 that drags macro F1 down."""
    rows = [f"{k}.jpg,Heels,{marker}" for k, marker in enumerate(MARKERS)]
    rows += ["8.jpg,Heels,", "9.jpg,Heels,Red", "10.jpg,Heels,nano"]
    path = tmp_path / "labels.csv"
    path.write_text("path,label,colour\n" + "\n".join(rows) + "\n")
    colours = [item.fields["colour"] for item in read_labelled_csv(path)]
    assert colours == [""] * len(MARKERS) + ["", "Red", "nano"]


def test_real_words_like_none_and_na_stay_labels_not_missing_values(tmp_path: Path) -> None:
    """Only NaN, null, "" and "nan" are missing. "None", "NA", "NULL"... are real values in
    catalogues (the lace colour "None" of laceless shoes, "NA" for not applicable): reading
    them as missing, as pandas' read_csv does by default, refused a class named "None" as a
    missing label and silently emptied colour=NA."""
    rows = [f"{k}.jpg,{word},{word}" for k, word in enumerate(REAL_WORDS)]
    path = tmp_path / "labels.csv"
    path.write_text("path,label,colour\n" + "\n".join(rows) + "\n")
    items = read_labelled_csv(path)
    assert [item.fields["label"] for item in items] == list(REAL_WORDS)
    assert [item.fields["colour"] for item in items] == list(REAL_WORDS)


def test_missing_value_marker_as_the_required_label_is_refused_like_an_empty_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("path,label\n1.jpg,Heels\n2.jpg,nan\n")
    with pytest.raises(DataError, match=r"labels\.csv, row 3, column 'label': missing label "
                       r"\('nan' means a missing value\)"):  # fmt: skip
        read_labelled_csv(path)


def test_missing_value_markers_in_styles_are_missing_not_classes(tmp_path: Path) -> None:
    """styles.csv: an empty catalogue field is left out of captions and classes; "nan" and
    "NaN" too. "None" and "NA" are kept: real values, as in a labelled CSV."""
    rows = styles_rows(6)
    rows[0] = rows[0].replace(",Black,", ",nan,")
    rows[1] = rows[1].replace(",Black,", ",NaN,").replace(",Casual,Roadster", ",None,Roadster")
    rows[2] = rows[2].replace(",Black,", ",NA,")
    write_catalogue(tmp_path, rows)
    items = {item.id: item for item in read_styles_catalogue(tmp_path)}
    assert items["101"].fields["baseColour"] == "" and items["102"].fields["baseColour"] == ""
    assert "nan" not in items["101"].caption.lower() and "nan" not in items["102"].caption
    assert (items["102"].fields["usage"], items["103"].fields["baseColour"]) == ("None", "NA")


def test_real_words_in_a_prepared_catalogue_stay_labels(tmp_path: Path) -> None:
    """A prepared record's lace colour "None" (laceless shoes) is a class, not a missing one."""
    folder = write_synthetic_catalogue(tmp_path / "catalogue", train=4, val=0, test=0)
    train = folder / "train.jsonl"
    records = [json.loads(line) for line in train.read_text().splitlines()]
    records[0]["lace_colour"], records[1]["baseColour"] = "None", "NA"
    records[2]["lace_colour"] = "nan"
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    items = read_catalogue(folder, "train")
    assert items[0].fields["lace_colour"] == "None" and items[1].fields["baseColour"] == "NA"
    assert "lace_colour" not in items[2].fields


def test_nan_in_a_prepared_catalogue_label_is_missing_in_scoring_and_training(
    tmp_path: Path,
) -> None:
    """A record written with json.dumps of a float NaN (``"baseColour": NaN``), the string
    "nan" or null: all three are a missing colour, so no class "nan" in training either."""
    folder = write_synthetic_catalogue(tmp_path / "catalogue", train=8, val=0, test=0)
    train = folder / "train.jsonl"
    records = [json.loads(line) for line in train.read_text().splitlines()]
    records[0]["baseColour"], records[1]["baseColour"] = float("nan"), "nan"
    records[2]["baseColour"] = None
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    items = read_catalogue(folder, "train")
    assert [item.fields["baseColour"] for item in items[:3]] == ["", "", ""]
    cfg = train_config(folder, target_field="baseColour")
    classes = class_names(cfg, [read_split(cfg, "train")])
    assert "nan" not in classes and "" not in classes
    assert set(classes) == {r["baseColour"] for r in records[3:]}


def test_nan_label_is_counted_with_the_unlabelled_when_scoring(
    tiny_hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scored end to end: the "nan" rows join the empty one in n_unlabelled_or_other_class,
    and no class "nan" reaches the per-class table (where it had support 2 and F1 0)."""
    folder = tmp_path / "squares"
    csv = write_images_csv(folder, per_colour=3)
    lines = csv.read_text().splitlines()
    shade = {1: "nan", 4: "NaN", 7: ""}  # one item of each colour loses its shade
    rows = [f"{line},{shade.get(k, line.split(',')[1])}" for k, line in enumerate(lines[1:], 1)]
    csv.write_text("path,label,shade\n" + "\n".join(rows) + "\n")
    bench = tmp_path / "benchmarks"
    write_benchmarks(bench, csv, ("shades",))
    yaml = bench / "shades" / "shades.yaml"
    yaml.write_text(yaml.read_text().replace("field: label", "field: shade"))
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(bench))
    db = tmp_path / "results.duckdb"
    opts = ScoreOptions(benchmarks=("shades",), db_path=db, cache_dir=tmp_path / "cache",
                        num_workers=0, n_bootstrap=20, progress=False)  # fmt: skip
    (run,) = score_model(tiny_hf_dir, opts)
    task = run.extra["tasks"]["colour"]
    assert (task["n_unlabelled_or_other_class"], task["n_scored"]) == (3, 6)
    assert sorted(set(store.class_metrics(db, [run.run_id])["class_name"])) == [
        "blue", "green", "red"
    ]  # fmt: skip


# --- 11. a caption that is not text ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"), [(float("nan"), "NaN"), (5, "5"), (["red"], r"\[\"red\"\]")]
)
def test_caption_that_is_not_text_names_file_line_and_item(
    tmp_path: Path, value: object, shown: str
) -> None:
    """A description that is a number, NaN or a list is not a caption: training would fail
    later with a tokenizer TypeError naming no item. NaN is refused rather than read as a
    missing caption (unlike a label): JSON has null for that, NaN is not even valid JSON
    (RFC 8259), so a NaN description means the writer lost the text column, which a user
    wants to hear about, not to train on the other rows. null stays "no caption" (skipped
    and counted, as before)."""
    folder = write_synthetic_catalogue(tmp_path / "catalogue", train=6, val=0, test=0)
    train = folder / "train.jsonl"
    records = [json.loads(line) for line in train.read_text().splitlines()]
    records[2]["description"] = value
    records[3]["description"] = None
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    message = rf"train\.jsonl, line 3: item '1002': description must be text, got {shown}"
    with pytest.raises(DataError, match=message):
        read_catalogue(folder, "train")
    cfg = train_config(folder)
    with pytest.raises(DataError, match=message):
        read_split(cfg, "train")
    records[2]["description"] = "A red heel."
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert read_split(cfg, "train").skipped["no_caption"] == 1  # the null one


def test_generated_caption_that_is_not_text_names_file_line_and_item(tmp_path: Path) -> None:
    path = tmp_path / "captions.jsonl"
    path.write_text('{"id": 101, "caption": "ok"}\n{"id": 102, "caption": NaN}\n')
    with pytest.raises(DataError, match=r"captions\.jsonl, line 2: item '102': caption must "
                       r"be text, got NaN"):  # fmt: skip
        read_captions(path, {"101", "102"})


def test_missing_value_marker_as_a_csv_caption_is_no_caption(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("path,label,caption\n1.jpg,Heels,nan\n2.jpg,Flats,Flat shoes\n")
    assert [item.caption for item in read_labelled_csv(path)] == [None, "Flat shoes"]


# --- 12. ids that would name a file outside the images folder -------------------------------

BAD_IDS = ("../secret", "sub/101", "/etc/passwd", "..", "a\\b")


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_styles_id_that_is_not_a_plain_name_is_refused_naming_the_line(
    tmp_path: Path, bad_id: str
) -> None:
    """An id becomes images/<id>.jpg and styles/<id>.json: one with a path separator or a
    dot-name would read (and copy into a benchmark) a file outside those folders."""
    rows = styles_rows(6)
    rows[3] = rows[3].replace("104,", f"{bad_id},", 1)  # line 5
    _, styles = write_catalogue(tmp_path, rows)
    with pytest.raises(DataError) as caught:
        read_styles(styles)
    assert str(caught.value) == (
        f"{styles}, line 5: id {bad_id!r} is not a plain name (it names the files "
        f"images/<id>.jpg and styles/<id>.json; no '/', '\\' or '..')"
    )


def test_prepare_refuses_an_id_that_leaves_the_images_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = styles_rows(40)
    rows[5] = rows[5].replace("106,", "../secret,", 1)  # line 7
    images, styles = write_catalogue(tmp_path / "kaggle", rows)
    Image.new("RGB", (6, 8)).save(tmp_path / "kaggle" / "secret.jpg")  # would be read
    out = tmp_path / "footwear"
    assert prepare_cli(images, styles, out) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {styles}, line 7: id '../secret' is not a plain name"), error
    assert not out.exists()


@pytest.mark.parametrize("marker", ["nan", "NaN"])
def test_prepare_refuses_a_styles_id_that_is_a_missing_value_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], marker: str
) -> None:
    """One id rule for styles.csv and the prepared JSONL: an id "nan" (a missing id, as pandas
    writes it) was accepted by prepare, then refused by score and finetune reading the
    prepared folder, far from the styles.csv line that holds it."""
    rows = styles_rows(40)
    rows[3] = rows[3].replace("104,", f"{marker},", 1)  # line 5
    images, styles = write_catalogue(tmp_path / "kaggle", rows)
    Image.new("RGB", (6, 8)).save(images / f"{marker}.jpg")  # an image for it exists
    out = tmp_path / "footwear"
    assert prepare_cli(images, styles, out) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"error: {styles}, line 5: id {marker!r} is a missing value, not an id (pandas writes "
        "a missing id as 'nan')"
    )
    assert not out.exists()


# --- C. a quote closed by a later one in styles.csv -----------------------------------------


def with_quote_closed_by_an_inch_mark() -> list[str]:
    """79 rows; line 4's productDisplayName opens a quote that the inch mark ending line 21
    (`4"`) closes: a well-formed CSV record of 10 fields whose name holds lines 4 to 21."""
    rows = styles_rows(79)
    rows[2] = rows[2].replace("Roadster Women", '"Roadster Women')  # line 4
    rows[19] += ' 4"'  # line 21
    return rows


def test_quote_closed_by_a_later_inch_mark_in_styles_names_both_lines(tmp_path: Path) -> None:
    """Kaggle's styles.csv holds no value over several lines (none in the 8,231-row subset, no
    quote at all), so a record that spans lines is a quote not closed where it should be:
    refused, naming where it starts (the line to fix) and where it ends. It had been read as
    62 items, one of them named with 18 lines of CSV, and prepare exited 0."""
    _, styles = write_catalogue(tmp_path, with_quote_closed_by_an_inch_mark())
    with pytest.raises(DataError) as caught:
        read_styles(styles)
    assert str(caught.value) == (
        f"{styles}, line 4: cannot parse styles CSV: a quoted value runs from line 4 to "
        "line 21: a quote is probably not closed"
    )


def test_prepare_with_a_quote_closed_lines_later_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, styles = write_catalogue(tmp_path / "kaggle", with_quote_closed_by_an_inch_mark())
    out = tmp_path / "footwear"
    assert prepare_cli(images, styles, out) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {styles}, line 4: cannot parse styles CSV: a quoted "), error
    assert "from line 4 to line 21" in error and not out.exists()


def test_labelled_csv_may_hold_a_caption_over_several_lines(tmp_path: Path) -> None:
    """Unlike styles.csv, a user's labelled CSV may quote a caption with line breaks (a
    spreadsheet cell with Alt+Enter is saved so): it stays one caption, lines and all."""
    path = tmp_path / "labels.csv"
    path.write_text('path,label,caption\n1.jpg,Heels,"A red heel.\nLeather sole."\n2.jpg,Flats,x\n')
    items = read_labelled_csv(path)
    assert [item.caption for item in items] == ["A red heel.\nLeather sole.", "x"]


def test_labelled_csv_quote_in_a_label_closed_rows_later_names_the_row(tmp_path: Path) -> None:
    """A quote opened in a label and closed by a later quote (an inch mark in another row's
    caption) merged the rows between into one label, silently. Only a caption may span lines,
    so a line break in any other column is refused, naming the row where it starts."""
    rows = [f"{n}.jpg,Heels,plain\n" for n in range(3, 9)]
    path = tmp_path / "labels.csv"
    path.write_text("path,label,caption\n1.jpg,Flats,x\n2.jpg,\"Heels,y\n" + "".join(rows)
                    + '9.jpg,Flats,heel of 4"\n10.jpg,Flats,z\n')  # fmt: skip
    with pytest.raises(DataError) as err:
        read_labelled_csv(path)
    assert str(err.value).startswith(
        f"{path}, row 3, column 'label': a quoted value runs over 8 lines: a quote is probably "
        "not closed"
    ), err.value
