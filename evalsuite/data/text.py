"""Reading users' text files (CSV, JSONL, listings) so that a bad byte names its line, and
the values in them: missing-value markers, captions that are not text, ids used as file names.

Python's UnicodeDecodeError gives a byte offset in the whole file, which nobody can find in
a 40,000-line styles.csv; :func:`read_utf8` turns it into a line and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError

Record = dict[str, Any]  # one JSON object of a JSONL file


def read_utf8(path: Path, what: str) -> str:
    """The text of ``path`` (UTF-8, a leading BOM dropped), or DataError naming the line of
    the first byte that is not UTF-8; ``what`` says what the file is ("styles CSV")."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        start = skip + exc.start  # the offset in the file, BOM included
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise DataError(
            f"{path}, line {line}: {what} is not UTF-8 (byte 0x{data[start]:02x} at "
            f"column {column}); save the file as UTF-8"
        ) from None


def is_missing(value: object) -> bool:
    """None (JSON null), a float NaN, "" or the text "nan" in any letter case (what str()
    of a NaN float writes, as pandas' astype(str) does); surrounding spaces ignored.

    Only these. pandas' other NA strings ("None", "NA", "NULL", "N/A"...) are real values in
    catalogues, e.g. the lace colour "None" of laceless shoes or "NA" for not applicable.
    """
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in ("", "nan")


def is_id(text: str) -> bool:
    """True when ``text`` can be an item id: not missing (:func:`is_missing`). styles.csv and
    the prepared JSONL share this rule, so `prepare` writes only ids that are read back."""
    return not is_missing(text)


def field_text(value: object) -> str:
    """A label value as stripped text; a missing one (:func:`is_missing`) is "", the value
    every task already counts as unlabelled."""
    return "" if is_missing(value) else str(value).strip()


def text_field(path: Path, line: int, item_id: str, key: str, value: Any) -> str | None:
    """A caption read from JSON: the text, or None when missing (null, "", "nan"). Any
    other value (a number, NaN, a list) is refused here, naming the item: the tokenizer would
    fail on it much later with a TypeError that names nothing."""
    if value is None or isinstance(value, str):
        return None if is_missing(value) else value
    raise DataError(
        f"{path}, line {line}: item {item_id!r}: {key} must be text, got {json.dumps(value)}"
    )


def id_text(path: Path, line: int, value: Any) -> str:
    """An item id read from JSON: a non-empty string, or an integer as its digits. Anything
    else is refused naming the line: NaN became the item "nan", a float 12.0 (pandas writes
    ids so when some are missing) the id "12.0" of no image, and "" or "nan" (:func:`is_id`)
    is what a missing id was turned into upstream."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and is_id(value):
        return value
    raise DataError(
        f"{path}, line {line}: id must be a non-empty string or an integer, got {json.dumps(value)}"
    )


def is_plain_name(item_id: str) -> bool:
    """True when ``item_id`` can name a file inside a folder: no separator of any OS, not
    "." or "..", no NUL."""
    return not any(c in item_id for c in "/\\\0") and item_id not in (".", "..")


def csv_records(
    path: Path, what: str, one_line: bool = False, delimiter: str = ","
) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields) of each CSV record, blank lines included (as []).

    ``strict``: an unclosed quote is an error, not a field that swallows the rest of the file.
    The error names the line where the failing record starts, which is where a quote that is
    never closed was opened; the parser itself only knows where it gave up. ``one_line``: a
    record over several lines is an error too, for files whose values never hold a line
    break: there, it is a quote left open until a later quote (an inch mark) closed it.
    ``delimiter``: "," or another one character ("\\t" for a TSV).
    """
    text = io.StringIO(read_utf8(path, what), newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    start = 1
    try:
        for record in reader:
            if one_line and reader.line_num > start:
                raise DataError(
                    f"{path}, line {start}: cannot parse {what}: a quoted value runs from line "
                    f"{start} to line {reader.line_num}: a quote is probably not closed"
                )
            yield start, record
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):  # strict mode's word for an unclosed quote
            runs_to = "the end of the file"
        elif reader.line_num > start:  # a record spans lines only inside a quoted value
            runs_to = f"line {reader.line_num}: {exc}"
        else:
            raise DataError(f"{path}, line {start}: cannot parse {what} ({exc})") from exc
        raise DataError(
            f"{path}, line {start}: cannot parse {what}: a quote opened in this row is not "
            f"closed (the value runs on to {runs_to})"
        ) from exc


def read_csv_rows(
    path: Path, what: str, delimiter: str = ","
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a CSV file, every field stripped, blank lines
    skipped. A row with more fields than the header is a DataError naming its line: pandas
    would instead shift the columns silently when the first data row has one field too many
    (it takes the first column as the index), e.g. an unquoted comma. A row with fewer fields
    gets empty ones at the end, as pandas read it (a caption left off)."""
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for line, record in csv_records(path, what, delimiter=delimiter):
        if not any(field.strip() for field in record):
            continue  # blank line
        fields = [field.strip() for field in record]
        if header is None:
            header = fields
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise DataError(
                    f"{path}, line {line}: column {repeated[0]!r} appears more than once in "
                    "the header"
                )
        elif len(fields) > len(header):
            raise DataError(
                f"{path}, line {line}: {len(fields)} fields, expected {len(header)} "
                f"({','.join(header)}); quote values that contain "
                + ("commas" if delimiter == "," else repr(delimiter))
            )
        else:
            rows.append((line, fields + [""] * (len(header) - len(fields))))
    if header is None:
        raise DataError(f"{path}: cannot parse {what}: the file is empty (no header row)")
    return header, rows


def record_fields(
    where: str, record: Mapping[str, Any], exclude: Collection[str] = ()
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Every key of a JSON record (but ``exclude``) as a field, one rule for every reader:
    scalars as text (:func:`field_text`), a list of texts into the second mapping (several
    captions of one item; missing entries left out), an object as its JSON text. A list
    holding anything but text is refused, naming ``where`` and the key: a field must be text
    for the tasks to compare it."""
    fields: dict[str, str] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for key, value in record.items():
        if key in exclude:
            continue
        if isinstance(value, list):
            if not all(v is None or isinstance(v, str) for v in value):
                raise DataError(
                    f"{where}, key {key!r}: expected text, a number or a list of texts, got "
                    f"{json.dumps(value)[:80]}"
                )
            lists[key] = tuple(v.strip() for v in value if not is_missing(v))
        elif isinstance(value, dict):
            fields[key] = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            fields[key] = field_text(value)
    return fields, lists


def read_jsonl(path: Path) -> Iterable[tuple[int, Record]]:
    """(line number, object) for each non-blank line; bad JSON names the file and line."""
    lines = read_utf8(path, "JSONL file").splitlines()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: malformed JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object")
        yield number, record
