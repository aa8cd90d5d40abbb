"""What each ``evalsuite`` sub-command does, given its parsed arguments."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evalsuite.command_output import EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, print_json
from evalsuite.errors import EvalSuiteError
from evalsuite.formatting import format_delta, format_interval, format_value, is_missing
from evalsuite.labels import SUMMARY_METRICS, benchmark_label, metric_label, task_words
from evalsuite.preflight import results_db
from evalsuite.results import RunExtra, RunResult
from evalsuite.verdicts import NOT_COMPARABLE, WORSE, MetricVerdict, ModelComparison

# Logs and CI captures are not terminals: give tables room instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)


def _db(args: argparse.Namespace) -> Path:
    return results_db(args)


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
    db_path = None if args.no_store else _db(args)
    if args.baseline and db_path is not None:
        _check_baseline(db_path, args.baseline)  # before scoring, which can take hours
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
        console.print(f"{runs[0].model.name} is now the baseline of comparisons in {_db(args)}")
    if args.baseline and runs:
        comparison = _compare_db(args, args.baseline, runs[0].model.name)
        return _gate(comparison, args.fail_on_regression, as_json=False)
    return EXIT_OK


def _scored_model(db: Path, name: str) -> tuple[str, str]:
    """(name, weights fingerprint) of the one scored model ``name`` names, by compare's rule
    (a name, else a fingerprint prefix of one model's weights)."""
    from evalsuite.store import latest_metrics
    from evalsuite.verdicts.compare import model_rows

    row = model_rows(latest_metrics(db), name).iloc[0]
    return str(row["model_name"]), str(row["fingerprint"])


def _check_baseline(db: Path, baseline: str) -> None:
    """An unknown or ambiguous --baseline fails now rather than after scoring."""
    if not db.exists():
        raise EvalSuiteError(
            f"--baseline {baseline}: {db} does not exist yet: score the baseline first"
        )
    _scored_model(db, baseline)


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


def _compare_db(args: argparse.Namespace, baseline: str | None, candidate: str) -> ModelComparison:
    from evalsuite import store
    from evalsuite.verdicts import choose_baseline, compare_models, parse_margins

    db = _db(args)
    if baseline is None:
        baseline = choose_baseline(store.list_models(db))
        if baseline is None:
            raise EvalSuiteError(
                f"no baseline marked in {db}: pass --baseline NAME, or mark one with "
                "`evalsuite baseline NAME`"
            )
    comparison = compare_models(
        db, baseline, candidate, gated=args.metric or None,  # None: what each YAML gates
        margins=parse_margins(args.tolerance), n_resamples=args.resamples, seed=args.compare_seed,
    )  # fmt: skip
    known = {v.metric for v in comparison.verdicts}
    unknown = sorted(set(args.metric or ()) - known)
    if unknown:  # a misspelt --metric must not gate nothing and pass
        raise EvalSuiteError(
            f"no scored metric called {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return comparison


def _gate(comparison: ModelComparison, fail: bool, as_json: bool) -> int:
    """Print the comparison (a table, or JSON); exit 1 on a regression when ``fail``."""
    if as_json:
        print_json(comparison.as_dict())
    else:
        _print_comparison(comparison)
    return EXIT_REGRESSION if comparison.regressions and fail else EXIT_OK


def _verdict_cell(v: MetricVerdict) -> str:
    """The verdict as evalsuite.verdicts gave it, with its marker (never 'ok' for both a gain
    and no change), and why a worse metric did not fail the gate."""
    cell = f"[{v.colour}]{v.marker} {v.verdict}[/{v.colour}]"
    if v.regression:
        return cell + " [red]REGRESSION[/red]"
    if v.verdict == NOT_COMPARABLE:
        return cell + f" ({v.reason})"
    if v.verdict == WORSE and v.margin is not None:
        margin = format_delta(v.metric, v.margin, v.maximum).lstrip("+")
        return cell + f" (within margin {margin})"
    return cell


def _print_comparison(comparison: ModelComparison) -> None:
    table = Table(title=f"{comparison.candidate} against {comparison.baseline}")
    names = ("benchmark / task", "metric", "baseline", "candidate", "change",
             "95% CI of change", "p (adjusted)", "detectable", "verdict")  # fmt: skip
    for column in names:
        table.add_column(column, justify="left" if column in names[:2] else "right")
    for v in comparison.verdicts:
        if not v.gated:
            continue
        p_values = f"{v.p_text[2:].lstrip('= ')} ({v.p_adjusted_text})" if v.p_text else ""
        table.add_row(  # the names the summary and regression lines below use
            f"{benchmark_label(v.benchmark)}\n{task_words(v.task)}",
            metric_label(v.metric, v.task_type), v.value_text("baseline"),
            v.value_text("candidate"), v.delta_text, v.interval_text, p_values, v.mdd_text,
            _verdict_cell(v),
        )  # fmt: skip
    console.print(table)
    console.print(f"[dim]{comparison.method_note()}; detectable: the smallest change the "
                  "benchmark detects with 80% power[/dim]")  # fmt: skip
    console.print(f"{comparison.candidate}: {comparison.summary_line()}")
    for v in comparison.regressions:  # the key is what --metric and --tolerance take
        key = f"{v.benchmark}/{v.task}/{v.metric}"
        console.print(f"[red]regression:[/red] {v.sentence()} [dim](key {key})[/dim]")
    console.print(comparison.gate_line())


def cmd_compare(args: argparse.Namespace) -> int:
    return _gate(_compare_db(args, args.baseline, args.candidate), fail=True, as_json=args.json)


def cmd_baseline(args: argparse.Namespace) -> int:
    from evalsuite.store import mark_baseline

    db = _db(args)
    if not db.exists():
        raise EvalSuiteError(f"{db} does not exist; run `evalsuite score MODEL --db {db}`")
    # the name -> model rule of `compare` (name first, then a fingerprint prefix of one
    # model's weights), so its advice works here too
    name, fingerprint = _scored_model(db, args.model)
    mark_baseline(db, name)
    console.print(f"{name} ({fingerprint[:12]}) is now the baseline of comparisons in {db}")
    return EXIT_OK


_SUFFIXES = {"markdown": "md", "csv": "csv", "json": "json"}


def cmd_report(args: argparse.Namespace) -> int:
    """report.md and its charts, with the seed's table and the training costs printed; with
    ``--format``, only that table, to ``--out FILE`` or standard output."""
    from evalsuite import report, seed_formats
    from evalsuite.report import sweep as report_sweep

    data = report.load_report_data(_db(args), args.baseline)
    table, costs = report.seed_table_of(data), report.training_costs(data)
    if args.format:
        text = seed_formats.render(table, args.format, costs)
        if args.out is None:
            sys.stdout.write(text)
        elif args.out.is_dir():
            raise EvalSuiteError(
                f"--out {args.out} is a folder; with --format, --out names the file to write, "
                f"e.g. {args.out / ('seed-table.' + _SUFFIXES[args.format])}"
            )
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text, encoding="utf-8")
            console.print(f"{args.format} table written to {args.out}", highlight=False)
        return EXIT_OK
    path = report.write_report_files(data, args.out or Path("reports"))
    console.print(seed_formats.seed_rich(table))
    console.print(seed_formats.cost_rich(costs))
    sweeps = report_sweep.sweep_rich(data)
    if sweeps is not None:
        console.print(sweeps)
    console.print(f"report written to {path}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Write a model's runs (every run, or its latest per benchmark) as portable run folders."""
    from evalsuite import store
    from evalsuite.run_files import export_runs

    db = _db(args)
    runs = store.list_runs(db, args.model)
    if runs.empty:
        raise EvalSuiteError(f"{db}: no run of a model named {args.model!r} (see `evalsuite list`)")
    if not args.all_runs:  # the latest run of each benchmark, as the leaderboard shows
        current = runs[runs["current"]]
        if current.empty:
            raise EvalSuiteError(
                f"{db}: {args.model!r} names only runs of weights its model no longer stands "
                "for (scored again with other weights); pass --all-runs to export them"
            )
        runs = current.sort_values("started_at").groupby(["model_name", "benchmark"]).tail(1)
    folders = export_runs(db, list(runs["run_id"]), args.out)
    for folder in folders:
        console.print(f"exported {folder}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """Merge exported run folders into the database, in one transaction."""
    from evalsuite.run_files import import_runs

    merged = import_runs(_db(args), args.paths)
    console.print(
        f"imported {len(merged.added)} run(s) into {_db(args)}; {len(merged.present)} already there"
    )
    for name, (old, new) in sorted(merged.superseded.items()):
        print(
            f"warning: {name} now stands for other weights ({new[:12]}, of its latest imported "
            f"run) than before ({old[:12]}); the runs of the earlier weights are kept as history",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "benchmarks":
        from evalsuite.spec import list_benchmarks, load_benchmark

        for name in list_benchmarks():
            spec = load_benchmark(name)
            tasks = ", ".join(f"{t.name} ({t.type})" for t in spec.tasks)
            console.print(f"{name} v{spec.version}: {tasks}")
        return EXIT_OK
    from evalsuite import store

    db = _db(args)
    if not db.exists():
        raise EvalSuiteError(f"{db} does not exist; run `evalsuite score MODEL --db {db}`")
    frame = store.list_models(db) if args.what == "models" else store.list_runs(db)
    columns = (
        [
            "name",
            "fingerprint",
            "backend",
            "base_model",
            "parameter_count",
            "n_runs",
            "n_earlier_runs",
            "same_weights_as",
        ]
        if args.what == "models"
        else [
            "model_name",
            "current",
            "benchmark",
            "benchmark_version",
            "n_items",
            "seconds",
            "started_at",
            "code_version",
        ]
    )
    table = Table(title=f"{args.what} in {db}")
    for column in columns:
        table.add_column(column)
    for _, row in frame.iterrows():
        table.add_row(*(_list_cell(column, row.get(column)) for column in columns))
    console.print(table)
    return EXIT_OK


def _list_cell(column: str, value: object) -> str:
    """One cell of `evalsuite list`: a missing value blank, seconds rounded, fingerprints
    shortened."""
    if column == "same_weights_as":
        return ", ".join(value or [])  # type: ignore[arg-type]
    if is_missing(value):  # type: ignore[arg-type]
        return ""
    if column == "seconds":
        return f"{float(value):.1f}"  # type: ignore[arg-type]
    if column == "started_at":
        return str(value)[:19]
    return str(value)[:16] if column == "fingerprint" else str(value)


# The leaderboard is the dashboards package's; the core only starts it, as a process, so that
# evalsuite never imports the user interface (``python -m dashboards.serve`` runs streamlit).
LEADERBOARD_MODULE = "dashboards.serve"
SERVER_STOP_SECONDS = 15  # dashboards.serve gives streamlit 10 s to stop on Ctrl-C


def leaderboard_command(args: argparse.Namespace) -> list[str]:
    """The ``python -m dashboards.serve`` command line serving ``args``' database."""
    command = [sys.executable, "-m", LEADERBOARD_MODULE, "--db", str(_db(args))]
    command += ["--port", str(args.port)]
    for flag, value in (("--baseline", args.baseline), ("--target", args.target)):
        if value:
            command += [flag, value]
    return command


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Serve the leaderboard until it stops; streamlit's exit code, 0 after a Ctrl-C."""
    package = LEADERBOARD_MODULE.split(".")[0]
    if importlib.util.find_spec(package) is None:  # looks for it without importing it
        console.print(f"the leaderboard is not available: No module named {package!r}")
        return EXIT_USAGE
    server = subprocess.Popen(leaderboard_command(args))
    try:
        return server.wait()
    except KeyboardInterrupt:  # the server got the Ctrl-C too and stops streamlit itself
        try:
            server.wait(timeout=SERVER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        return EXIT_OK
