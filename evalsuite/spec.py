"""Benchmark specs: the pydantic schema of ``benchmarks/<name>/<name>.yaml`` and its loader.

A benchmark is data, not code (as in lm-evaluation-harness): a YAML file naming a dataset
reader, where its data lives, and a list of tasks. Every model uses ``extra="forbid"``, so a
misspelt key is an error naming the file and the field path. See benchmarks/README.md for an
annotated example. All metrics of all tasks are higher-is-better; zero-shot tasks report F1
with both ``macro`` and ``weighted`` averaging (``f1_average``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from evalsuite.errors import DataError, EvalSuiteError, SpecError
from evalsuite.registry import Registry, suggest
from evalsuite.schema import (
    FieldNames,
    StrictModel,
    display_path,
    read_yaml_mapping,
    validation_message,
)

if TYPE_CHECKING:  # queries.py (numpy) is imported when a query file is read
    from evalsuite.data.items import Item
    from evalsuite.queries import QuerySet

BENCHMARKS_ENV = "EVALSUITE_BENCHMARKS_DIR"
DATA_ROOT_ENV = "EVALSUITE_DATA_ROOT"
DEFAULT_BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks"

# CLIP-style prompt ensemble used when a zero-shot task gives no templates.
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a good photo of a {}.",
    "a close-up photo of a {}.",
    "a product photo of a {}.",
    "a photo of the {}.",
)
PLACEHOLDERS = ("{}", "{c}")

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$")]
EnvVar = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PositiveInt = Annotated[int, Field(ge=1)]


def _distinct_sorted(ks: list[int]) -> list[int]:
    if len(set(ks)) != len(ks):
        raise ValueError(f"values must be distinct, got {ks}")
    return sorted(ks)


Ks = Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(_distinct_sorted)]


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


MetricNames = list[Annotated[str, StringConstraints(min_length=1)]]


class TaskDisplay(StrictModel):
    """How surfaces show a task (read by ``evalsuite.labels``; not part of ``spec_hash``):
    ``label`` names the task standing alone ("footwear type"); ``headline`` lists the metrics
    shown by default, in order ([] shows none until "every metric" is asked for); ``gated``
    the metrics the gate judges. Unset: the defaults of ``evalsuite.labels``."""

    label: str | None = None
    headline: MetricNames | None = None
    gated: MetricNames | None = None


class ZeroShotTask(TaskDisplay):
    """Classify each image among the label values of ``field`` by prompt similarity."""

    type: Literal["zeroshot"]
    needs_text: ClassVar[bool] = True  # class prompts go through a text encoder
    name: Name
    field: str
    # Label values, or label value -> display name used in prompts. Default: the distinct
    # values of `field` in the scored items, sorted. Items with other labels are not scored.
    classes: list[str] | dict[str, str] | None = None
    templates: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPLATES), min_length=1)
    min_class_count: PositiveInt | None = None  # drop classes with fewer scored items
    k_values: Ks = Field(default_factory=lambda: [1, 5])
    pretest_k: PositiveInt = 5  # K of the pretest score (K - rank + 1 points if rank <= K)
    # k_values >= and pretest_k > the classes scored follow the cutoff rule (tasks.warn_cutoff)
    f1_average: list[Literal["macro", "weighted"]] = Field(
        default_factory=lambda: ["macro", "weighted"], min_length=1
    )
    when_field_present: bool = False  # skip (with a reason) where no item has `field`

    @field_validator("templates")
    @classmethod
    def _has_placeholder(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if sum(template.count(p) for p in PLACEHOLDERS) != 1:
                raise ValueError(f"template {template!r} needs exactly one '{{}}' or '{{c}}'")
        return templates

    @field_validator("classes")
    @classmethod
    def _classes_non_empty(cls, classes: list[str] | dict[str, str] | None):
        if classes is not None and len(classes) == 0:
            raise ValueError("classes is empty: omit it to use the values found in the data")
        if isinstance(classes, list) and len(set(classes)) != len(classes):
            raise ValueError("classes are not distinct")
        return classes

    def class_names(self, labels: Iterable[str]) -> dict[str, str]:
        """Label value -> prompt name of the classes scored, given the items' label values.

        Raises SpecError when an explicitly listed class has no item and ``min_class_count``
        is unset (most likely a typo; set min_class_count to drop absent classes instead).
        """
        counts = Counter(label for label in labels if label)
        if self.classes is None:
            names = {label: label for label in sorted(counts)}
        elif isinstance(self.classes, list):
            names = {label: label for label in self.classes}
        else:
            names = dict(self.classes)
        if self.min_class_count is not None:
            return {k: v for k, v in names.items() if counts[k] >= self.min_class_count}
        absent = [label for label in names if counts[label] == 0]
        if absent:
            hint = suggest(absent[0], sorted(counts))
            raise SpecError(
                f"task {self.name!r}: class {absent[0]!r} has no item with that {self.field}"
                f"{hint}; values present: {', '.join(sorted(counts)) or '(none)'}"
                " (set min_class_count to drop classes absent from the data)"
            )
        return names

    def prompts(self, display_name: str) -> list[str]:
        """The templates filled with one class's display name."""
        return [t.replace("{c}", display_name).replace("{}", display_name) for t in self.templates]


DEFAULT_KS = (1, 5, 10)


class _RetrievalTask(TaskDisplay):
    """Cutoffs: metrics are computed at each of ``ks`` and at ``k`` (which also cuts the IR
    scores and the ranked lists stored), so k must be at least max(ks). A cutoff above what
    a query can rank (the gallery; one less for image queries) is clipped to it at run time:
    names and maxima use the clipped value (P@40, 40 x queries) and the run records them."""

    name: Name
    queries: str  # JSONL file, relative to the YAML file that defines the task
    k: PositiveInt = 10  # depth of the ranked lists kept (precision@k, nDCG@k...)
    ks: Ks = Field(default_factory=lambda: list(DEFAULT_KS))  # recall@k
    # Fields the items must have for the task to apply (added to the query file's header).
    requires_field: FieldNames = Field(default_factory=list)

    @model_validator(mode="after")
    def _k_covers_ks(self) -> _RetrievalTask:
        # Only k items are ranked: a larger cutoff would count the unranked ranks as misses.
        if self.k < max(self.ks):
            default = (
                "" if "ks" in self.model_fields_set else f"; ks defaults to {list(DEFAULT_KS)}"
            )
            raise ValueError(
                f"k: {self.k} is less than the largest of ks ({max(self.ks)}{default}): only "
                f"the top {self.k} would be ranked and metrics at larger cutoffs would count the "
                f"other ranks as misses; set k to at least {max(self.ks)} or lower ks"
            )
        return self


class TextToImageTask(_RetrievalTask):
    """Rank the items' images for each text query; relevance from the query's predicate."""

    type: Literal["text_to_image"]
    needs_text: ClassVar[bool] = True


class ImageToImageTask(_RetrievalTask):
    """Rank the other items' images for each query image (the query image is excluded)."""

    type: Literal["image_to_image"]
    needs_text: ClassVar[bool] = False


RetrievalTask = TextToImageTask | ImageToImageTask


class ProbeSplits(StrictModel):
    """Names of the dataset splits a ``protocol: split`` probe reads (through the reader)."""

    train: str = "train"
    val: str = "val"
    test: str = "test"


class Holdout(StrictModel):
    """A seeded split of the scored items, stratified by the task's field (``holdout``):
    ``test_size`` of the items to test, then ``val_size`` of the rest to validation."""

    test_size: float = Field(0.3, gt=0, lt=1)
    val_size: float = Field(0.1, ge=0, lt=1)
    seed: int = 0


class _ProbeTask(TaskDisplay):
    needs_text: ClassVar[bool] = False  # image embeddings only
    name: Name
    field: str
    # Classes with fewer training items are dropped (their test items are not scored).
    min_class_count: PositiveInt | None = None
    splits: ProbeSplits = Field(default_factory=ProbeSplits)
    holdout: Holdout = Field(default_factory=Holdout)
    when_field_present: bool = False  # skip (with a reason) where no item has `field`


class KnnTask(_ProbeTask):
    """k-nearest-neighbour classification of ``field`` by cosine similarity."""

    type: Literal["knn"]
    # leave_one_out: every scored item, classified by the others; split: train items from
    # `splits.train`, tested on `splits.test`; holdout: a seeded split of the scored items.
    protocol: Literal["leave_one_out", "split", "holdout"] = "leave_one_out"
    k: PositiveInt = 10
    weighting: Literal["uniform", "distance", "similarity", "exponential"] = "uniform"
    temperature: float = Field(0.07, gt=0)  # of `exponential` weighting only


class LinearProbeTask(_ProbeTask):
    """Logistic regression on the training items' embeddings, C chosen on validation."""

    type: Literal["linear_probe"]
    protocol: Literal["split", "holdout"] = "split"
    c_grid: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0], min_length=1
    )
    max_iter: PositiveInt = 1000


class EmbeddingStatsTask(TaskDisplay):
    """Statistics of the scored items' image embeddings: nearest-neighbour label agreement
    per field, mean pairwise similarity (anisotropy) and effective rank."""

    type: Literal["embedding_stats"]
    needs_text: ClassVar[bool] = False
    name: Name
    fields: FieldNames = Field(default_factory=list)  # nearest-neighbour agreement of each


ProbeTask = KnnTask | LinearProbeTask
Task = Annotated[
    ZeroShotTask
    | TextToImageTask
    | ImageToImageTask
    | KnnTask
    | LinearProbeTask
    | EmbeddingStatsTask,
    Field(discriminator="type"),
]


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


# --- data location and reader --------------------------------------------------------------


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
