"""The task schema of a benchmark YAML: one pydantic class per task type, with its checks.

Each entry of a benchmark's ``tasks:`` list is one of these, chosen by its ``type``
(:data:`Task`); :mod:`evalsuite.spec` holds the file around them. All metrics of all tasks are
higher-is-better; zero-shot tasks report F1 with both ``macro`` and ``weighted`` averaging
(``f1_average``). ``TaskDisplay`` fields say how surfaces show a task and are not part of
``spec_hash``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from evalsuite.errors import SpecError
from evalsuite.registry import suggest
from evalsuite.schema import FieldNames, StrictModel

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
PositiveInt = Annotated[int, Field(ge=1)]


def _distinct_sorted(ks: list[int]) -> list[int]:
    if len(set(ks)) != len(ks):
        raise ValueError(f"values must be distinct, got {ks}")
    return sorted(ks)


Ks = Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(_distinct_sorted)]


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
