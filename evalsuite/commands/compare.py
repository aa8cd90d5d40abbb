"""``evalsuite compare`` and ``evalsuite baseline``: judge a candidate against a baseline in
the results database, print the verdicts, and fail on a regression (the gate)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from evalsuite.command_output import EXIT_OK, EXIT_REGRESSION, print_json
from evalsuite.commands.console import console
from evalsuite.errors import EvalSuiteError
from evalsuite.formatting import format_delta
from evalsuite.labels import benchmark_label, metric_label, task_words
from evalsuite.preflight import results_db
from evalsuite.verdicts import NOT_COMPARABLE, WORSE, MetricVerdict, ModelComparison


def _scored_model(db: Path, name: str) -> tuple[str, str]:
    """(name, weights fingerprint) of the one scored model ``name`` names, by compare's rule
    (a name, else a fingerprint prefix of one model's weights)."""
    from evalsuite.store import latest_metrics
    from evalsuite.verdicts.compare import model_rows

    row = model_rows(latest_metrics(db), name).iloc[0]
    return str(row["model_name"]), str(row["fingerprint"])


def check_baseline(db: Path, baseline: str) -> None:
    """An unknown or ambiguous --baseline fails now rather than after scoring."""
    if not db.exists():
        raise EvalSuiteError(
            f"--baseline {baseline}: {db} does not exist yet: score the baseline first"
        )
    _scored_model(db, baseline)


def compare_in_db(
    args: argparse.Namespace, baseline: str | None, candidate: str
) -> ModelComparison:
    """The comparison of ``candidate`` with ``baseline`` (None: the one marked) in the results
    database of ``args``, gating ``--metric`` (else what each YAML gates)."""
    from evalsuite import store
    from evalsuite.verdicts import choose_baseline, compare_models, parse_margins

    db = results_db(args)
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
    if not args.metric:
        check_yaml_gates(comparison)
    return comparison


def check_yaml_gates(comparison: ModelComparison) -> None:
    """A misspelt name in a benchmark YAML's ``gated:`` must not gate nothing and pass."""
    from evalsuite import labels

    scored: dict[tuple[str, str], set[str]] = {}
    for v in comparison.verdicts:
        scored.setdefault((v.benchmark, v.task), set()).add(v.metric)
    for (benchmark, task), metrics in sorted(scored.items()):
        missing = sorted(set(labels.yaml_gated(benchmark, task) or ()) - metrics)
        if missing:
            raise EvalSuiteError(
                f"benchmark {benchmark}, task {task}: its YAML gates {', '.join(missing)}, "
                f"which the task does not score; it scores {', '.join(sorted(metrics))}"
            )


def print_and_gate(comparison: ModelComparison, fail: bool, as_json: bool) -> int:
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
    return print_and_gate(
        compare_in_db(args, args.baseline, args.candidate), fail=True, as_json=args.json
    )


def cmd_baseline(args: argparse.Namespace) -> int:
    from evalsuite.store import mark_baseline

    db = results_db(args)
    if not db.exists():
        raise EvalSuiteError(f"{db} does not exist; run `evalsuite score MODEL --db {db}`")
    # the name -> model rule of `compare` (name first, then a fingerprint prefix of one
    # model's weights), so its advice works here too
    name, fingerprint = _scored_model(db, args.model)
    mark_baseline(db, name)
    console.print(f"{name} ({fingerprint[:12]}) is now the baseline of comparisons in {db}")
    return EXIT_OK
