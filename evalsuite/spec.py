"""Benchmark specs: the schema of ``benchmarks/<name>/<name>.yaml``, its loader and its hash.

A benchmark is data, not code (as in lm-evaluation-harness): a YAML file naming a dataset
reader, where its data lives, and a list of tasks (their schema: :mod:`evalsuite.spec_tasks`).
Every model uses ``extra="forbid"``, so a misspelt key is an error naming the file and the
field path. See benchmarks/README.md for an annotated example. Where the data is and which
tasks apply to it: :mod:`evalsuite.spec_data`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PrivateAttr, StringConstraints, ValidationError, model_validator

from evalsuite.errors import SpecError
from evalsuite.registry import Registry
from evalsuite.schema import StrictModel, display_path, read_yaml_mapping, validation_message
from evalsuite.spec_tasks import Name, ProbeTask, RetrievalTask, Task, TaskDisplay

if TYPE_CHECKING:  # queries.py (numpy) is imported when a query file is read
    from evalsuite.queries import QuerySet

BENCHMARKS_ENV = "EVALSUITE_BENCHMARKS_DIR"
DEFAULT_BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks"

EnvVar = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class DatasetSpec(StrictModel):
    """Which reader loads the data and where the data lives by default."""

    reader: str
    # Default location(s): ~ is expanded; a relative path is tried under the data root, then
    # under the working directory. A list gives candidates: the first that exists wins.
    path: str | list[str] | None = None
    path_env: EnvVar | None = None  # environment variable that overrides `path`
    split: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # passed to the reader as **options

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path or [])


class BenchmarkSpec(StrictModel):
    """One benchmark file. ``name`` equals the file stem; bump ``version`` on data/prompt change."""

    name: Name
    version: int | str
    description: str = ""
    # How surfaces show it (``evalsuite.labels``; not part of ``spec_hash``): its display
    # name; its role (target: what fine-tuning aims at; general: what fine-tuning may cost);
    # its place in displays (lower first, unset after, by name); the tasks the leaderboard's
    # trade-off aims at by default (the first scored wins).
    label: str | None = None
    role: Literal["target", "general"] = "target"
    display_order: int | None = None
    target_tasks: list[Name] = Field(default_factory=list)
    dataset: DatasetSpec
    image_policy: Literal["skip", "fail"] = "skip"  # what an unreadable image does
    tasks: list[Task] = Field(min_length=1)

    _source: Path | None = PrivateAttr(None)
    _tasks_dir: Path | None = PrivateAttr(None)
    _query_sets: dict[str, QuerySet] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _unique_task_names(self) -> BenchmarkSpec:
        names = [task.name for task in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique: {', '.join(duplicates)} repeated")
        unknown = sorted(set(self.target_tasks) - set(names))
        if unknown:
            raise ValueError(f"target_tasks: no task named {', '.join(unknown)}")
        return self

    @property
    def source(self) -> Path | None:
        """The YAML file this spec was loaded from (None when built in code)."""
        return self._source

    @property
    def tasks_included(self) -> bool:
        """Whether the tasks come from another benchmark's file through ``include:``."""
        return self._source is not None and self._tasks_dir != self._source.parent

    def split_names(self) -> list[str]:
        """Dataset splits that ``protocol: split`` probes read besides the scored items."""
        names = [
            name
            for task in self.tasks
            if isinstance(task, ProbeTask) and task.protocol == "split"
            for name in (task.splits.train, task.splits.val, task.splits.test)
        ]
        return list(dict.fromkeys(names))

    def task(self, name: str) -> Task:
        tasks = Registry[Task](f"task of benchmark {self.name!r}", error=SpecError)
        for task in self.tasks:
            tasks.register(task.name, task)
        return tasks.get(name)

    def queries_path(self, task: RetrievalTask) -> Path:
        base = self._tasks_dir or Path.cwd()
        return (base / task.queries).resolve()

    def query_set(self, task: RetrievalTask) -> QuerySet:
        """The task's parsed query file (parsed once, then cached on the spec)."""
        if task.name not in self._query_sets:
            from evalsuite.queries import load_query_set

            self._query_sets[task.name] = load_query_set(self.queries_path(task))
        return self._query_sets[task.name]


def spec_location(spec: BenchmarkSpec) -> str:
    """The YAML file a spec came from, as the user would type it (its name when built in code)."""
    return display_path(spec.source) if spec.source else spec.name


# --- loading -------------------------------------------------------------------------------


def _resolve_includes(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Path]:
    """The file's keys over those of its ``include:`` (shallow: a key given replaces the
    included one whole, `tasks` and `dataset` included), and the folder of the file that
    supplied `tasks` (query paths are relative to it)."""
    path = path.resolve()
    if path in seen:
        raise SpecError(f"{display_path(path)}: include cycle: {' -> '.join(map(str, seen))}")
    data = read_yaml_mapping(path, SpecError)
    include = data.pop("include", None)
    if include is None:
        return data, path.parent
    if not isinstance(include, str):
        raise SpecError(f"{display_path(path)}: include: expected a relative file path")
    target = path.parent / include
    if not target.is_file():
        raise SpecError(f"{display_path(path)}: include: file not found: {display_path(target)}")
    base, tasks_dir = _resolve_includes(target, (*seen, path))
    return {**base, **data}, path.parent if "tasks" in data else tasks_dir


def load_benchmark_file(path: Path) -> BenchmarkSpec:
    """Parse and check one benchmark YAML (includes resolved, query files parsed)."""
    path = Path(path)
    shown = display_path(path)
    data, tasks_dir = _resolve_includes(path)
    try:
        spec = BenchmarkSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(validation_message(err, BenchmarkSpec, shown)) from None
    if spec.name != path.stem:
        raise SpecError(f"{shown}: name: {spec.name!r} must equal the file stem {path.stem!r}")
    spec._source, spec._tasks_dir = path.resolve(), tasks_dir
    for task in spec.tasks:
        if not isinstance(task, RetrievalTask):
            continue
        queries = spec.query_set(task)
        if queries.kind != task.type.split("_")[0]:
            raise SpecError(
                f"{shown}: task {task.name!r}: {task.type} needs {task.type.split('_')[0]} "
                f"queries but {display_path(queries.path)} holds {queries.kind} queries"
            )
    return spec


def get_benchmarks_dir(override: Path | None = None) -> Path:
    """The benchmarks folder: argument > $EVALSUITE_BENCHMARKS_DIR > <repo>/benchmarks."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get(BENCHMARKS_ENV) or DEFAULT_BENCHMARKS_DIR)


def _benchmark_files(directory: Path) -> Registry[Path]:
    files = Registry[Path](f"benchmark in {display_path(directory)}/", error=SpecError)
    for file in sorted(directory.glob("*/*.yaml")):
        files.register(file.stem, file)  # two files with one stem raise: names are unique
    return files


def list_benchmarks(benchmarks_dir: Path | None = None) -> list[str]:
    """Names of the benchmarks (stems of ``<dir>/*/*.yaml``), sorted."""
    return _benchmark_files(get_benchmarks_dir(benchmarks_dir)).names()


def load_benchmark(name_or_path: str | Path, benchmarks_dir: Path | None = None) -> BenchmarkSpec:
    """A benchmark by name (``<dir>/<name>/<name>.yaml``, any ``<dir>/*/<name>.yaml``) or by
    path to a YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise SpecError(f"{text}: benchmark file not found")
        return load_benchmark_file(path)
    directory = get_benchmarks_dir(benchmarks_dir)
    preferred = directory / text / f"{text}.yaml"
    if preferred.is_file():
        return load_benchmark_file(preferred)
    return load_benchmark_file(_benchmark_files(directory).get(text))


DISPLAY_FIELDS = ("label", "role", "display_order", "target_tasks")


def spec_hash(spec: BenchmarkSpec) -> str:
    """sha256 over what decides the results: the resolved spec with defaults (so a change of
    templates, classes or k changes it, comments and `description` do not) and every query
    file's parsed content. The data location (path, path_env) and how surfaces show the
    benchmark (labels, role, headline and gated metrics) are not part of it."""
    location = {"description": True, "dataset": {"path", "path_env"}}
    display = {name: True for name in DISPLAY_FIELDS}
    tasks = {"__all__": {name: True for name in TaskDisplay.model_fields}}
    content = spec.model_dump(mode="json", exclude={**location, **display, "tasks": tasks})
    content["queries"] = {
        task.name: spec.query_set(task).canonical()
        for task in spec.tasks
        if isinstance(task, RetrievalTask)
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
