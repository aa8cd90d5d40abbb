"""Data files that used to give a silent wrong result or a traceback (issue 15, round two):
an unclosed quote in styles.csv, missing-value markers ("nan", NaN, null) read as labels or
captions, and ids that would name a file outside the images folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from evalsuite.cli import main
from evalsuite.data.catalogue import read_styles
from evalsuite.data.custom import read_labelled_csv
from evalsuite.data.styles import read_styles_catalogue
from evalsuite.errors import DataError

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
