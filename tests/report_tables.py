"""Read the verdicts back out of the Markdown of ``evalsuite report``: tests can then check
that the report says what ``evalsuite compare --json`` says, metric by metric."""

from __future__ import annotations

import json
import re

from evalsuite.report import VERDICT_TABLE_TAG
from evalsuite.verdicts import BETTER, NOT_COMPARABLE, TIED, WORSE

_TAG = re.compile(rf"^<!-- {VERDICT_TABLE_TAG} (\{{.*\}}) -->$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_VERDICTS = (NOT_COMPARABLE, BETTER, WORSE, TIED)  # "not comparable" first: the longest


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row, ``\\|`` unescaped."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(inner)]


def _verdict_word(cell: str) -> str:
    """``▼ worse, **regression**`` -> ``worse``; ``n/a not comparable: why`` -> ``not
    comparable``."""
    text = cell.replace("*", "").strip()
    text = text.split(" ", 1)[1] if " " in text else text  # the marker (▲ ▼ ≈ n/a)
    for verdict in _VERDICTS:
        if text.startswith(verdict):
            return verdict
    raise ValueError(f"no verdict in the cell {cell!r}")


def report_verdicts(markdown: str) -> dict[tuple[str, str, str, str], str]:
    """Every verdict of the report's "Is the change real?" tables.

    Contract: returns ``{(candidate, benchmark, task, metric): verdict}`` for every row of
    every verdict table, i.e. every *gated* metric that the candidate and the baseline both
    scored. ``candidate`` is the model's name as stored in the database (the ``candidate`` of
    ``evalsuite compare --json``, read from the HTML comment above each table, not the
    report's display name, which gets a fingerprint suffix when two models share a name);
    ``benchmark``, ``task`` and ``metric`` are the stored identifiers (the table's ``Key``
    column, ``benchmark/task/metric`` as ``--tolerance`` takes it); ``verdict`` is one of
    ``"better"``, ``"worse"``, ``"tied"``, ``"not comparable"``, as in the ``verdict`` field
    of ``compare --json``'s metrics. A regression reads ``"worse"`` (it is a worse gated
    metric; ``--tolerance`` margins are not used by the report). Raises ValueError on a
    verdict table it cannot read (a missing column, a repeated key).
    """
    out: dict[tuple[str, str, str, str], str] = {}
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        match = _TAG.match(line.strip())
        if not match:
            continue
        candidate = json.loads(match.group(1))["candidate"]
        rows = [row for row in lines[i + 1 :] if row.strip()]
        table = []
        for row in rows:  # the table: the lines starting with "|" after the tag
            if not row.lstrip().startswith("|"):
                break
            table.append(_cells(row))
        if len(table) < 2 or "Key" not in table[0] or "Verdict" not in table[0]:
            raise ValueError(f"no verdict table under line {i + 1}: {line!r}")
        key_at, verdict_at = table[0].index("Key"), table[0].index("Verdict")
        for cells in table[2:]:  # after the header and the alignment row
            benchmark, rest = cells[key_at].strip("`").split("/", 1)
            task, metric = rest.rsplit("/", 1)  # metric names hold no "/"
            key = (candidate, benchmark, task, metric)
            if key in out:
                raise ValueError(f"{key} appears twice in the report's verdict tables")
            out[key] = _verdict_word(cells[verdict_at])
    return out
