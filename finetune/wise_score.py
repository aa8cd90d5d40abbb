"""``finetune wise --score BENCHMARKS``: score every WiSE-FT checkpoint just written.

Each checkpoint is scored in this process by :func:`evalsuite.runner.score_model`, as
``evalsuite score CKPT --benchmarks BENCHMARKS`` would, under its own name
``<fine-tune>-wise-<alpha>`` (its training.json ``run_name``). Its ``"wise"`` record goes into
the database with it, which is what joins the points into one curve on the leaderboard
(``dashboards.views.wise_curves``) and in the report (``evalsuite.report.wise_lines``).
The benchmarks, their data and the database are checked before any model loads.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from evalsuite.cli import _key_value, non_negative_int, positive_int
from evalsuite.errors import EvalSuiteError
from evalsuite.preflight import DEFAULT_DB  # evalsuite score's default database


def add_score_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scoring every checkpoint written (evalsuite score)")
    group.add_argument(
        "--score",
        metavar="BENCHMARKS",
        help="comma-separated benchmarks to score each alpha on, e.g. footwear,fmnist",
    )
    group.add_argument("--db", type=Path, help=f"results database (default {DEFAULT_DB})")
    group.add_argument("--data-root", type=Path, help="folder holding the benchmarks' data")
    group.add_argument(
        "--data",
        type=_key_value,
        action="append",
        default=[],
        metavar="BENCHMARK=PATH",
        help="data folder of one benchmark (repeatable)",
    )
    group.add_argument("--batch-size", type=positive_int, default=64)
    group.add_argument("--workers", type=non_negative_int, help="image decoding processes")
    group.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples")


def benchmark_names(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(b.strip() for b in (args.score or "").split(",") if b.strip())


def check_score_options(args: argparse.Namespace) -> None:
    """Scoring flags without ``--score`` are a mistake; with it, the benchmarks, their data
    and the database must be usable: checked before minutes of loading and writing."""
    if not args.score:
        given = [flag for flag, value in (("--db", args.db), ("--data-root", args.data_root),
                                          ("--data", args.data)) if value]  # fmt: skip
        if given:
            raise EvalSuiteError(f"{', '.join(given)} only go with --score BENCHMARKS")
        return
    if not benchmark_names(args):
        raise EvalSuiteError(f"--score {args.score!r}: name at least one benchmark")
    from evalsuite.preflight import check_benchmark_data
    from evalsuite.store import check_writable

    check_benchmark_data(
        argparse.Namespace(benchmarks=args.score, data_root=args.data_root, data=args.data)
    )
    check_writable(args.db or DEFAULT_DB)


def score_checkpoints(paths: Sequence[Path], args: argparse.Namespace) -> None:
    """Score each checkpoint on ``--score``'s benchmarks into the database."""
    from evalsuite.runner import ScoreOptions, score_model

    db = args.db or DEFAULT_DB
    opts = ScoreOptions(
        benchmarks=benchmark_names(args),
        db_path=db,
        data_root=args.data_root,
        data_overrides=dict(args.data),
        batch_size=args.batch_size,
        num_workers=args.workers,
        n_bootstrap=args.bootstrap,
    )
    for path in paths:
        runs = score_model(str(path), opts)
        scored = ", ".join(run.benchmark for run in runs) or "nothing"
        name = runs[0].model.name if runs else path.name
        print(f"scored {name} on {scored} into {db}")
