"""What every file a user writes shares, whoever reads it: benchmark YAML and query JSONL
(:mod:`evalsuite.spec`, :mod:`evalsuite.queries`), ``embeddings.yaml``
(:mod:`evalsuite.models.precomputed`), fine-tuning configs and sweep spaces (:mod:`finetune`).

The strict pydantic base (an unknown key is an error), a pydantic ValidationError as lines
naming the file and the field path, a YAML file read as a mapping, and a path as the user
would type it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from evalsuite.errors import EvalSuiteError
from evalsuite.registry import suggest

# A list of field names; a single name is accepted too.
FieldNames = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class StrictModel(BaseModel):
    """Base of every schema model of a user's file: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_yaml_mapping(
    path: Path, error: type[EvalSuiteError], top: str = "keys at the top level"
) -> dict[str, Any]:
    """The YAML file at ``path``, which must hold a mapping (of ``top``, as the message says);
    an unreadable or invalid file raises ``error`` naming it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise error(f"{display_path(path)}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise error(f"{display_path(path)}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise error(f"{display_path(path)}: expected a mapping of {top}")
    return data


# --- validation errors ---------------------------------------------------------------------

_UNION_LABEL = re.compile(
    r"str|int|float|bool|none|(list|dict|tuple|set|literal|function-\w+|constrained-\w+)\[.*\]"
)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Union, list, dict, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    args = get_args(field.annotation) if field else ()
    return args[0] if args else None


def _walk(root: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, list[str], list[type]]:
    """Readable path of a pydantic error location ('tasks[0].templates'), the union branch
    labels met on the way ('int', 'list[str]'), and the models that the path ends in."""
    models: list[type[BaseModel]] = [root]
    text, labels = "", []
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        owner = next((m for m in models if part in m.model_fields), None)
        if owner is not None:
            text += f".{part}" if text else part
            models = _models_in(owner.model_fields[part].annotation)
        elif any(_tag(m) == part for m in models):  # discriminated union: keep the tagged one
            models = [m for m in models if _tag(m) == part]
        elif _UNION_LABEL.fullmatch(part) or part in {m.__name__ for m in models}:
            labels.append(part)
        else:  # a dict key or an unknown field name
            text += f".{part}" if text else part
    return text, labels, models


def _error_line(root: type[BaseModel], error: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """(path, message, union labels) for one pydantic error."""
    loc, kind = error["loc"], error["type"]
    if kind == "extra_forbidden":
        parent, _, models = _walk(root, loc[:-1])
        known = sorted({name for model in models for name in model.model_fields})
        path = f"{parent}.{loc[-1]}" if parent else str(loc[-1])
        return path, f"unknown field{suggest(str(loc[-1]), known)}", []
    path, labels, models = _walk(root, loc)
    if kind == "missing":
        return path, "required field missing", labels
    if kind == "union_tag_not_found":
        tags = ", ".join(repr(_tag(m)) for m in models)
        return f"{path}.type", f"required field missing; one of {tags}", []
    if kind == "union_tag_invalid":
        tag, expected = error["ctx"]["tag"], error["ctx"]["expected_tags"]
        hint = suggest(tag, [t.strip(" '") for t in expected.split(",")])
        return f"{path}.type", f"unknown type {tag!r}{hint}; expected one of {expected}", []
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind != "value_error":  # our own checks name the value themselves
        message += f" (got {_short(error.get('input'))})"
    return path, message, labels


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(error: ValidationError, root: type[BaseModel], prefix: str) -> str:
    """A pydantic ValidationError as lines '<prefix>: <field path>: <problem>'."""
    grouped: dict[str, list[tuple[str, list[str]]]] = {}
    for item in error.errors():
        path, message, labels = _error_line(root, item)
        grouped.setdefault(path, []).append((message, labels))
    lines = []
    for path, entries in grouped.items():
        labels = [label for _, ls in entries for label in ls]
        if len(entries) > 1 and labels:  # one value failed every member of a union
            got = entries[0][0].rsplit(" (got ", 1)[-1]
            message = f"expected {' or '.join(labels)} (got {got}"
        else:
            message = "; ".join(dict.fromkeys(m for m, _ in entries))
        lines.append(f"{prefix}: {path}: {message}" if path else f"{prefix}: {message}")
    return "\n".join(lines)


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
