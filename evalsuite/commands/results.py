"""The commands that read the results database: ``report``, ``export``, ``import`` and
``list`` (benchmarks, models or runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from evalsuite.command_output import EXIT_OK
from evalsuite.commands.console import console
from evalsuite.errors import EvalSuiteError
from evalsuite.formatting import is_missing
from evalsuite.preflight import results_db

_SUFFIXES = {"markdown": "md", "csv": "csv", "json": "json"}


def cmd_report(args: argparse.Namespace) -> int:
    """report.md and its charts, with the seed's table and the training costs printed; with
    ``--format``, only that table, to ``--out FILE`` or standard output."""
    from evalsuite import report, seed_formats
    from evalsuite.report import sweep as report_sweep

    data = report.load_report_data(results_db(args), args.baseline)
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

    db = results_db(args)
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

    db = results_db(args)
    merged = import_runs(db, args.paths)
    console.print(
        f"imported {len(merged.added)} run(s) into {db}; {len(merged.present)} already there"
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

    db = results_db(args)
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
