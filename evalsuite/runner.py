"""Score one model on benchmarks: load data, embed every image once, run each task, store.

No argparse here (the CLI is a thin front); ``score_model`` is what the CLI, the demo and
the tests call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalsuite.data.items import Item
from evalsuite.distributed import main_process_value, process_rank_and_count
from evalsuite.embedding_lookup import build_engine
from evalsuite.engine import Engine, ImageEmbeddings
from evalsuite.errors import DataError, ImageError
from evalsuite.models import ClipModel, PrecomputedEmbeddings, load_scorable
from evalsuite.results import ModelInfo, RunExtra, RunResult
from evalsuite.spec import BenchmarkSpec, list_benchmarks, load_benchmark, spec_hash
from evalsuite.spec_data import ResolvedDataset, resolve_dataset, task_skip_reason
from evalsuite.store import DEFAULT_DB, Written, check_writable, run_exists, write_run
from evalsuite.tasks.base import SplitData, TaskContext
from evalsuite.tasks.registry import get_task_runner
from evalsuite.version import code_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreOptions:
    """Everything a scoring run can be told; frozen once the CLI has parsed it."""

    benchmarks: tuple[str, ...] | None = None  # None: every benchmark whose data is found
    db_path: Path | None = DEFAULT_DB  # None: do not store
    name: str | None = None  # display name of the model (default: from the spec)
    data_root: Path | None = None
    data_overrides: dict[str, Path] = field(default_factory=dict)  # benchmark -> data path
    batch_size: int = 64
    num_workers: int | None = None
    precision: str = "fp32"
    device: str | None = None  # None: accelerate's choice (this process's GPU, else the CPU)
    cache_dir: Path | None = None
    use_cache: bool = True
    skip_existing: bool = False
    n_bootstrap: int = 1000
    seed: int = 0
    progress: bool = True
    trust_remote_code: bool = False


Scorable = ClipModel | PrecomputedEmbeddings


def score_model(
    model: str | Path | Scorable, options: ScoreOptions | None = None, **overrides: Any
) -> list[RunResult]:
    """Score ``model`` (a spec, a loaded model or precomputed embeddings) on the chosen
    benchmarks; one RunResult per benchmark scored, each written to the database in its own
    transaction."""
    opts = options or ScoreOptions()
    if overrides:
        opts = ScoreOptions(**{**opts.__dict__, **overrides})
    if opts.db_path is not None:  # an unusable --db fails now, not after the scoring
        check_writable(opts.db_path)
    model = load_scorable(model, trust_remote_code=opts.trust_remote_code)
    engine = build_engine(
        model,
        device=opts.device,
        batch_size=opts.batch_size,
        num_workers=opts.num_workers,
        precision=opts.precision,
        cache_dir=opts.cache_dir,
        use_cache=opts.use_cache,
        progress=opts.progress,
    )
    info = model_info(model, opts.name)
    results = []
    for spec in _chosen_benchmarks(opts):
        run = score_benchmark(info, engine, spec, opts)
        if run is None:
            continue
        if opts.db_path is not None and process_rank_and_count()[0] == 0:
            written = write_run(opts.db_path, run)  # one writer: the main process
            tell_written(run, written)
        results.append(run)
    return results


def tell_written(run: RunResult, written: Written) -> None:
    """Say what storing ``run`` replaced or superseded: never silently."""
    name = run.model.name
    if written.replaced:
        log.warning(
            "%s on %s: replaced the earlier run %s (same model, weights, benchmark and data)",
            name, run.benchmark, ", ".join(written.replaced),
        )  # fmt: skip
    if written.superseded:
        log.warning(
            "%s was scored before with other weights (%s); their runs are kept as history and "
            "these weights (%s) are now its current ones. To compare both, score them under "
            "two --name values.",
            name, written.superseded[:12], run.model.fingerprint[:12],
        )  # fmt: skip
    if written.history:
        log.warning(
            "%s on %s: stored as history, not shown: %s stands for other weights, those of a run "
            "that started later than this one (%s)",
            name, run.benchmark, name, run.model.fingerprint[:12],
        )  # fmt: skip


def _chosen_benchmarks(opts: ScoreOptions) -> list[BenchmarkSpec]:
    if opts.benchmarks:
        return [load_benchmark(name) for name in opts.benchmarks]
    chosen = []
    for name in list_benchmarks():
        spec = load_benchmark(name)
        try:
            resolve_dataset(spec, opts.data_root, opts.data_overrides.get(name))
        except Exception as exc:
            log.warning("benchmark %s skipped: %s", name, exc)
            continue
        chosen.append(spec)
    return chosen


def model_info(model: Scorable, name: str | None = None) -> ModelInfo:
    training = model.source.training
    base = (training or {}).get("base_model") or {}
    if isinstance(base, str):
        base = {"spec": base}
    return ModelInfo(
        fingerprint=model.fingerprint,
        name=name or model.name,
        spec=model.spec,
        backend=model.backend,
        base_model=base.get("spec"),
        base_fingerprint=base.get("fingerprint") or (training or {}).get("base_fingerprint"),
        parameter_count=model.parameter_count,
        training=training,
        history=list((training or {}).get("history", [])),
    )


def image_roots(items: Sequence[Item]) -> list[str]:
    """The folder holding every image file of ``items`` (prepared catalogues point outside
    their own folder, at the images); the leaderboard serves thumbnails only from there."""
    paths = [str(Path(item.path).resolve()) for item in items if item.path is not None]
    return [os.path.commonpath([os.path.dirname(p) for p in paths])] if paths else []


def data_hash(items: Sequence[Item], content_hashes: Sequence[object]) -> str:
    """Names exactly the data scored: ids, label fields and image bytes of every item."""
    digest = hashlib.sha256()
    for item, content in sorted(zip(items, content_hashes, strict=True), key=lambda p: p[0].id):
        digest.update(
            json.dumps(
                [item.id, dict(item.fields), str(content)], sort_keys=True, default=str
            ).encode()
        )
    return digest.hexdigest()


def _split_items(
    spec: BenchmarkSpec, dataset: ResolvedDataset, items: Sequence[Item]
) -> tuple[dict[str, Sequence[Item]], list[Item]]:
    """Items of each split the probes read, and those of them not among ``items`` (to be
    embedded too: every task's embeddings come from one engine call)."""
    known = {item.id for item in items}
    splits, extra = {}, []
    for name in spec.split_names():
        if name == dataset.split:
            splits[name] = items
            continue
        splits[name] = dataset.load(name)
        for item in splits[name]:
            if item.id not in known:
                known.add(item.id)
                extra.append(item)
    return splits, extra


def _split_data(
    splits: dict[str, Sequence[Item]], everything: list[Item], embeddings: ImageEmbeddings
) -> dict[str, SplitData]:
    """Each split's embedded items and their vectors, looked up in the one embedding call."""
    row_of = {everything[p].id: row for row, p in enumerate(embeddings.positions)}
    out = {}
    for name, split_items in splits.items():
        rows = [row_of.get(item.id, -1) for item in split_items]
        kept = [item for item, row in zip(split_items, rows, strict=True) if row >= 0]
        vectors = embeddings.vectors[[r for r in rows if r >= 0]]
        out[name] = SplitData(kept, vectors.reshape(len(kept), embeddings.vectors.shape[1]))
    return out


def score_benchmark(
    info: ModelInfo, engine: Engine, spec: BenchmarkSpec, opts: ScoreOptions
) -> RunResult | None:
    """One benchmark: its data, its embeddings (once), every task; None when skipped."""
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    dataset = resolve_dataset(spec, opts.data_root, opts.data_overrides.get(spec.name))
    items = dataset.load()
    if not items:
        raise DataError(
            f"benchmark {spec.name}: no items in {dataset.path} (split {dataset.split!r})"
        )
    splits, extra_items = _split_items(spec, dataset, items)
    everything = [*items, *extra_items]  # a list, whatever sequence the reader gave
    hashes = engine.content_hashes(everything)
    data_id, bench_id = data_hash(everything, hashes), spec_hash(spec)
    if _already_scored(info, spec.name, opts, bench_id, data_id):
        log.info("%s on %s: already scored, skipped", info.name, spec.name)
        return None
    engine.on_error = spec.image_policy
    forwarded_before = engine.images_forwarded
    shards_skipped_before = engine.cache_shards_skipped
    embedded = engine.embed_items(everything, desc=spec.name, content_hashes=hashes)
    embeddings = _scored_split(embedded, items)
    scored = [items[i] for i in embeddings.positions]
    if not scored:
        _none_scored(info, spec, dataset, len(items), embeddings)
        return None
    ctx = TaskContext(
        spec=spec,
        items=scored,
        embeddings=embeddings,
        engine=engine,
        n_bootstrap=opts.n_bootstrap,
        seed=opts.seed,
        splits=_split_data(splits, everything, embedded),
    )
    extra = _run_extra(engine, ctx, dataset.split, items, splits, hashes)
    extra.images_forwarded = engine.images_forwarded - forwarded_before
    run = RunResult(
        model=info,
        benchmark=spec.name,
        benchmark_version=str(spec.version),
        benchmark_hash=bench_id,
        data_manifest_hash=data_id,
        data_root=str(Path(dataset.path).resolve()),
        code_version=code_version(),
        device=str(engine.device),
        precision=engine.precision,
        seconds=0.0,
        n_items=len(items),
        started_at=started,
        skipped=[(s.item_id, s.path, s.reason) for s in embeddings.skipped],
        n_skipped_images=len(embeddings.skipped),
    )
    _run_tasks(spec, ctx, run, extra)
    # after the tasks: their texts go through the cache too
    extra.cache_shards_skipped = engine.cache_shards_skipped - shards_skipped_before
    run.extra = extra.to_json()
    run.seconds = time.perf_counter() - clock
    return run


def _already_scored(
    info: ModelInfo, benchmark: str, opts: ScoreOptions, bench_id: str, data_id: str
) -> bool:
    """--skip-existing and this model, benchmark and data are in the database already."""
    exists = (
        opts.skip_existing
        and opts.db_path is not None
        and run_exists(opts.db_path, info.name, info.fingerprint, benchmark, bench_id, data_id)
    )
    return bool(opts.skip_existing and main_process_value(exists))  # all processes alike


def _scored_split(embedded: ImageEmbeddings, items: Sequence[Item]) -> ImageEmbeddings:
    """The embeddings of the scored split's ``items``, out of those of every split embedded
    (``items`` come first in the engine call)."""
    main = embedded.positions < len(items)  # rows of the scored split, in input order
    main_ids = {item.id for item in items}
    return ImageEmbeddings(
        ids=[i for i, ok in zip(embedded.ids, main, strict=True) if ok],
        vectors=embedded.vectors[main],
        positions=embedded.positions[main],
        skipped=[s for s in embedded.skipped if s.item_id in main_ids],
        missing=[i for i in embedded.missing if i in main_ids],
    )


def _none_scored(
    info: ModelInfo,
    spec: BenchmarkSpec,
    dataset: ResolvedDataset,
    n_items: int,
    embeddings: ImageEmbeddings,
) -> None:
    """No item of the scored split has a vector: a benchmark the precomputed embeddings do
    not cover is skipped with a warning; images none of which could be read are an error."""
    if embeddings.missing:
        log.warning(
            "%s on %s: none of its %d items has a precomputed embedding; benchmark skipped",
            info.name, spec.name, n_items,
        )  # fmt: skip
        return
    # raised here, else the tasks would report missing fields, hiding the real cause
    reason = embeddings.skipped[0].reason if embeddings.skipped else "no image was encoded"
    raise DataError(
        f"benchmark {spec.name}: none of the {n_items} images in {dataset.path} could be "
        f"read, e.g. {reason}"
    )


def _run_extra(
    engine: Engine,
    ctx: TaskContext,
    split: str | None,
    items: Sequence[Item],
    splits: dict[str, Sequence[Item]],
    content_hashes: Sequence[str | ImageError],
) -> RunExtra:
    """The run's extra record before its tasks run: the engine's own record, image roots and,
    when probes read other splits, how many of their items were embedded."""
    record = engine.record(ctx.embeddings, content_hashes)
    extra = RunExtra(
        split=split,
        distinct_images=record.distinct_images,
        image_roots=image_roots(items),
        score_formula=record.score_formula,
        precomputed=record.precomputed,
    )
    if splits:
        extra.probe_splits = {name: len(data.items) for name, data in ctx.splits.items()}
        # items of a split the probes read without a vector (unreadable, or no precomputed
        # embedding): counted here, since only the scored split's ones are in `skipped`
        extra.probe_splits_not_embedded = {
            name: len(splits[name]) - len(data.items) for name, data in ctx.splits.items()
        }
    return extra


def _run_tasks(spec: BenchmarkSpec, ctx: TaskContext, run: RunResult, extra: RunExtra) -> None:
    for task in spec.tasks:
        # A task the embeddings cannot serve is recorded as not applicable, never as zeros.
        reason = (ctx.engine.text_unavailable if task.needs_text else None) or task_skip_reason(
            spec, task, ctx.items
        )
        if reason:
            extra.skipped_tasks[task.name] = reason
            continue
        out = get_task_runner(task.type)(task, ctx)
        run.metrics += out.metrics
        run.class_metrics += out.class_metrics
        run.confusion += out.confusion
        run.predictions += out.predictions
        run.retrieved += out.retrieved
        run.query_values += out.query_values
        extra.tasks[task.name] = {"type": task.type, **out.extra}
