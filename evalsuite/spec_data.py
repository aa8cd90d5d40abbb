"""Where a benchmark's data is, the reader that loads it, and which of its tasks apply.

The spec names a reader and default locations (:mod:`evalsuite.spec`); this module resolves
them against the command line and the environment, checks the items read (unique ids), and
says why a task does not apply to them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.errors import DataError, EvalSuiteError, SpecError
from evalsuite.registry import suggest
from evalsuite.spec import BenchmarkSpec, spec_location
from evalsuite.spec_tasks import (
    EmbeddingStatsTask,
    KnnTask,
    LinearProbeTask,
    Task,
    ZeroShotTask,
)

if TYPE_CHECKING:
    from evalsuite.data.items import Item

DATA_ROOT_ENV = "EVALSUITE_DATA_ROOT"


def _candidates(spec: BenchmarkSpec, data_root: Path | None) -> list[Path]:
    found: list[Path] = []
    for raw in spec.dataset.paths:
        path = Path(raw).expanduser()
        if not path.is_absolute() and data_root is not None:
            found.append(Path(data_root).expanduser() / path)
        found.append(path)
    return list(dict.fromkeys(found))


def resolve_dataset_path(
    spec: BenchmarkSpec, data_root: Path | None = None, cli_override: Path | None = None
) -> Path:
    """Where the benchmark's data is: CLI override > $<dataset.path_env> > dataset.path (under
    the data root, $EVALSUITE_DATA_ROOT when no root is given, then as is). Missing -> SpecError
    naming the benchmark, the paths tried and how to pass one."""
    env = spec.dataset.path_env
    if cli_override is not None:
        tried, source = [Path(cli_override).expanduser()], "given on the command line"
    elif env and os.environ.get(env):
        tried, source = [Path(os.environ[env]).expanduser()], f"from ${env}"
    else:
        if data_root is None and os.environ.get(DATA_ROOT_ENV):
            data_root = Path(os.environ[DATA_ROOT_ENV])
        tried, source = _candidates(spec, data_root), "default location"
    for path in tried:
        if path.exists():
            return path
    how = "pass --data-root DIR" + (f" or set {env}=/path/to/data" if env else "")
    where = ", ".join(str(p) for p in tried) or "(no dataset.path in the spec)"
    raise SpecError(f"benchmark {spec.name!r}: data not found ({source}): tried {where}; {how}")


@dataclass(frozen=True)
class ResolvedDataset:
    """A benchmark's reader and data location, checked; ``load()`` reads the items."""

    reader: Callable[..., Sequence[Item]]
    path: Path
    split: str | None
    options: Mapping[str, Any]

    def load(self, split: str | None = None) -> list[Item]:
        """The items of the spec's split (or of ``split``) as a list: scoring reads every
        image anyway, and a lazy reader (webdataset) then reads each sample once."""
        chosen = self.split if split is None else split
        items = list(self.reader(self.path, chosen, **self.options))
        first: dict[str, int] = {}
        for position, item in enumerate(items):
            # results are keyed by id: a repeated one would take the other item's embedding
            if first.setdefault(item.id, position) != position:
                raise DataError(
                    f"{self.path} (split {chosen!r}): id {item.id!r} of item {position} repeats "
                    f"item {first[item.id]} (ids must be unique: a shard writer that restarts "
                    "its keys in each shard gives such ids; use the reader's id_key option)"
                )
        return items


def resolve_dataset(
    spec: BenchmarkSpec, data_root: Path | None = None, cli_override: Path | None = None
) -> ResolvedDataset:
    """Look up the spec's reader (an unknown name is a SpecError naming the file) and path."""
    from evalsuite.data import get_reader  # lazily: readers load heavy modules

    try:
        reader = get_reader(spec.dataset.reader)
    except (LookupError, EvalSuiteError) as err:
        shown = spec_location(spec)
        message = err.args[0] if err.args else str(err)
        raise SpecError(f"{shown}: dataset.reader: {message}") from None
    path = resolve_dataset_path(spec, data_root, cli_override)
    return ResolvedDataset(reader, path, spec.dataset.split, dict(spec.dataset.options))


def task_skip_reason(spec: BenchmarkSpec, task: Task, items: Sequence[Item]) -> str | None:
    """Why ``task`` does not apply to these items (None when it does).

    A zero-shot or probe field missing from every item is a SpecError unless the task says
    ``when_field_present: true``; a retrieval task is skipped when a required field is absent;
    a statistics field missing from every item is a SpecError.
    """
    if isinstance(task, EmbeddingStatsTask):
        for name in task.fields:
            if not any(item.fields.get(name) for item in items):
                fields = sorted({f for item in items for f in item.fields})
                raise SpecError(
                    f"{spec_location(spec)}: task {task.name!r}: no item has field {name!r}"
                    f"{suggest(name, fields)}; fields present: {', '.join(fields) or '(none)'}"
                )
        return None
    if isinstance(task, (ZeroShotTask, KnnTask, LinearProbeTask)):
        if any(item.fields.get(task.field) for item in items):
            return None
        reason = f"no item has field {task.field!r}"
        if task.when_field_present:
            return f"{reason} (the task applies only to data annotated with it)"
        fields = sorted({name for item in items for name in item.fields})
        shown = spec_location(spec)
        raise SpecError(
            f"{shown}: task {task.name!r}: {reason}{suggest(task.field, fields)}; "
            f"fields present: {', '.join(fields) or '(none)'}"
        )
    from evalsuite.queries import applies_to

    return applies_to(spec.query_set(task), items, task.requires_field).reason
