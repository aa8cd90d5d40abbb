"""``evalsuite prepare`` and ``evalsuite score``: make a dataset's splits, score a model and
print (or export) its runs; ``score --baseline`` gates the new runs like ``compare``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from rich.table import Table

from evalsuite.command_output import EXIT_OK, print_json
from evalsuite.commands.compare import check_baseline, compare_in_db, print_and_gate
from evalsuite.commands.console import console
from evalsuite.formatting import format_interval, format_value
from evalsuite.labels import SUMMARY_METRICS, metric_label
from evalsuite.preflight import results_db
from evalsuite.results import RunExtra, RunResult


def cmd_prepare(args: argparse.Namespace) -> int:
    from evalsuite.data.prepare import prepare_catalogue, prepare_footwear

    common = {
        "annotations": args.annotations,
        "captions": args.captions,
        "seed": args.seed,
        "test_size": args.test_size,
        "val_size": args.val_size,
        "on_missing_image": args.on_missing_image,
    }
    if args.kind == "catalogue":
        manifest = prepare_catalogue(
            args.images_dir, args.out, args.styles, master_category=args.master_category,
            sub_category=args.sub_category, article_type=args.article_type,
            stratify=args.stratify, **common,
        )  # fmt: skip
    else:
        manifest = prepare_footwear(args.images_dir, args.styles, args.out, **common)
    sizes = ", ".join(f"{k} {v}" for k, v in manifest.get("sizes", {}).items())
    console.print(f"prepared {args.out}: {sizes}; manifest hash {manifest['manifest_hash'][:12]}")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    """Score (paths and flags were checked by evalsuite.preflight before torch loaded)."""
    db_path = None if args.no_store else results_db(args)
    if args.baseline and db_path is not None:
        check_baseline(db_path, args.baseline)  # before scoring, which can take hours
    from evalsuite.models import load_model
    from evalsuite.runner import ScoreOptions, score_model

    opts = ScoreOptions(
        benchmarks=tuple(b.strip() for b in args.benchmarks.split(","))
        if args.benchmarks
        else None,
        db_path=db_path,
        name=args.name,
        data_root=args.data_root,
        data_overrides=dict(args.data),
        batch_size=args.batch_size,
        num_workers=args.workers,
        precision=args.precision,
        device=args.device,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        skip_existing=args.skip_existing,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        progress=not args.json,
        trust_remote_code=args.trust_remote_code,
    )
    model = (
        load_model(args.model, pretrained=args.pretrained, trust_remote_code=args.trust_remote_code)
        if args.pretrained
        else args.model
    )
    runs = score_model(model, opts)
    from evalsuite.distributed import process_rank_and_count

    if process_rank_and_count()[0] != 0:
        return EXIT_OK  # under accelerate launch only the main process reports
    if not runs:  # on stderr: with --json, stdout must stay one JSON document
        print("nothing scored (no benchmark data found, or all already scored)", file=sys.stderr)
    if args.json:
        print_json([_run_json(run) for run in runs])
    else:
        for run in runs:
            print_run(run)
    if args.export and runs and opts.db_path:
        from evalsuite.run_files import export_runs

        folders = export_runs(opts.db_path, [run.run_id for run in runs], args.export)
        print(f"exported {len(folders)} run(s) to {args.export}", file=sys.stderr)
    if args.mark_baseline and runs and opts.db_path:
        from evalsuite.store import mark_baseline

        mark_baseline(opts.db_path, runs[0].model.name)
        console.print(
            f"{runs[0].model.name} is now the baseline of comparisons in {results_db(args)}"
        )
    if args.baseline and runs:
        comparison = compare_in_db(args, args.baseline, runs[0].model.name)
        return print_and_gate(comparison, args.fail_on_regression, as_json=False)
    return EXIT_OK


def _run_json(run: RunResult) -> dict:
    extra = RunExtra.from_json(run.extra)
    return {
        "model": run.model.name,
        "fingerprint": run.model.fingerprint,
        "benchmark": run.benchmark,
        "benchmark_hash": run.benchmark_hash,
        "data_manifest_hash": run.data_manifest_hash,
        "n_items": run.n_items,
        "n_skipped_images": run.n_skipped_images,
        "seconds": round(run.seconds, 3),
        "skipped_tasks": extra.skipped_tasks,
        "precomputed": asdict(extra.precomputed) if extra.precomputed else None,
        "metrics": [asdict(m) for m in run.metrics],
    }


def print_run(run: RunResult) -> None:
    table = Table(
        title=f"{run.model.name} on {run.benchmark} ({run.n_items} items, {run.seconds:.1f} s)"
    )
    for column in ("task", "metric", "value", "95% interval"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    extra = RunExtra.from_json(run.extra)
    types = extra.task_types()
    for m in run.metrics:
        if m.name in SUMMARY_METRICS or m.name.startswith("nn_agreement:"):
            table.add_row(
                m.task,
                metric_label(m.name, types.get(m.task)),
                format_value(m.name, m.value, m.maximum),
                format_interval(m.name, m.ci_low, m.ci_high, m.maximum),
            )
    console.print(table)
    for task, reason in extra.skipped_tasks.items():
        console.print(f"  skipped {task}: {reason}")
    if run.n_skipped_images:
        console.print(f"  {run.n_skipped_images} unreadable images skipped (listed in the db)")
    precomputed = extra.precomputed
    if precomputed:
        missing = precomputed.n_items_without_embedding
        first = ", ".join(precomputed.first_ids_without_embedding[:5])
        console.print(
            f"  {precomputed.n_items_with_embedding} of {run.n_items} items have an "
            f"embedding and were scored; {missing} have none"
            + (f" (e.g. ids {first}; counted in the run's extra)" if missing else "")
        )
