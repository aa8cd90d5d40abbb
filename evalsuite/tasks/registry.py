"""The task runner of each ``type`` a benchmark YAML may give (a static table: the task
modules do not know of it, so nothing here is filled in as a side effect of an import)."""

from __future__ import annotations

from evalsuite.registry import Registry
from evalsuite.tasks import probes, retrieval, stats, zeroshot
from evalsuite.tasks.base import TaskRunner

TASK_RUNNERS: Registry[TaskRunner] = Registry("task type")
TASK_RUNNERS.register("zeroshot", zeroshot.run_zeroshot)
TASK_RUNNERS.register("text_to_image", retrieval.run_text_to_image)
TASK_RUNNERS.register("image_to_image", retrieval.run_image_to_image)
TASK_RUNNERS.register("knn", probes.run_knn)
TASK_RUNNERS.register("linear_probe", probes.run_linear_probe)
TASK_RUNNERS.register("embedding_stats", stats.run_embedding_stats)


def get_task_runner(task_type: str) -> TaskRunner:
    return TASK_RUNNERS.get(task_type)
