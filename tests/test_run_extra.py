"""runs.extra through its typed record: what the runner stores reads back the same, and
extras of older or hand-built databases read with defaults."""

from __future__ import annotations

import json

from evalsuite.results import PrecomputedCoverage, RunExtra

STORED = {
    "split": None,
    "tasks": {"article_type": {"type": "zeroshot", "n_scored": 55}, "stats": {"type": "stats"}},
    "skipped_tasks": {"text_search": "not applicable: no text encoder"},
    "images_forwarded": 0,
    "distinct_images": 55,
    "image_roots": ["/data/images"],
    "precomputed": {
        "n_items_with_embedding": 55,
        "n_items_without_embedding": 5,
        "first_ids_without_embedding": ["1000", "1001"],
    },
    "probe_splits": {"train": 40, "val": 5, "test": 10},
    "probe_splits_not_embedded": {"train": 3, "val": 0, "test": 2},
    "cache_shards_skipped": 0,
}


def test_a_stored_extra_reads_back_to_the_same_json_text() -> None:
    extra = RunExtra.from_json(STORED)
    assert extra.precomputed == PrecomputedCoverage(55, 5, ["1000", "1001"])
    assert extra.task_types() == {"article_type": "zeroshot", "stats": "stats"}
    assert json.dumps(extra.to_json()) == json.dumps(STORED)  # same keys, same order


def test_a_model_run_writes_its_score_formula_and_no_precomputed_key() -> None:
    formula = {"kind": "softmax", "logit_scale": 100.0, "logit_bias": None}
    extra = RunExtra(split="test", distinct_images=3, score_formula=formula)
    assert list(extra.to_json()) == [
        "split", "tasks", "skipped_tasks", "images_forwarded", "distinct_images",
        "image_roots", "score_formula", "cache_shards_skipped",
    ]  # fmt: skip


def test_old_or_malformed_extras_read_with_defaults() -> None:
    for stored in (None, "not an object", {}, {"tasks": "bad", "skipped_tasks": None}):
        extra = RunExtra.from_json(stored)
        assert extra.tasks == {} and extra.skipped_tasks == {} and extra.precomputed is None
    old = RunExtra.from_json({"tasks": {"a": {"type": "zeroshot"}, "b": None}, "image_roots": "/x"})
    assert list(old.tasks) == ["a", "b"] and old.task_type("b") is None
    assert old.image_roots == ["/x"] and old.task_type("missing") is None
