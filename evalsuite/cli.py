"""``evalsuite``: a thin command-line front over prepare, score, compare, report, list.

Exit codes: 0 success, 1 a regression against the baseline, 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from evalsuite.command_output import EXIT_USAGE
from evalsuite.errors import EvalSuiteError
from evalsuite.preflight import check_args
from evalsuite.progress import quiet_library_bars

log = logging.getLogger("evalsuite")


def _key_value(text: str) -> tuple[str, Path]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected BENCHMARK=PATH, got {text!r}")
    return key, Path(value)


# Numeric flags are checked by argparse (`type=`): a bad value is a usage error naming the
# flag, exit 2, before anything is loaded (0 resamples was a traceback in the bootstrap).


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text!r}")
        return value

    return parse


positive_int = _int_at_least(1, "positive")
non_negative_int = _int_at_least(0, "non-negative")


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in 1..65535, got {text!r}")
    return int(text)


def _fraction(low_open: bool) -> Callable[[str], float]:
    """A float in (0, 1) or [0, 1) (NaN fails both comparisons, so it is refused too)."""
    interval = "(0, 1)" if low_open else "[0, 1)"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        above_low = value > 0 if low_open else value >= 0
        if not (above_low and value < 1):
            raise argparse.ArgumentTypeError(f"must be a number in {interval}, got {text!r}")
        return value

    return parse


def _margin(text: str) -> str:
    """METRIC=VALUE with VALUE finite and >= 0: a NaN margin never let the gate fail and a
    negative one was silently made positive. Kept as text for verdicts.parse_margins."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(
            f"expected METRIC=VALUE, e.g. acc@1=0.01 or footwear/article_type/acc@1=0.02; "
            f"got {text!r}"
        )
    try:
        margin = float(value)
    except ValueError:
        margin = float("nan")
    if not (math.isfinite(margin) and margin >= 0):
        raise argparse.ArgumentTypeError(f"margin must be a number >= 0, got {text!r}")
    return text


def _add_prepare_common(parser: argparse.ArgumentParser) -> None:
    """Options both `prepare` kinds share: annotations, captions and the split."""
    parser.add_argument("--annotations", type=Path, help="CSV id,lace_colour (hand-checked)")
    parser.add_argument("--captions", type=Path, help='JSONL {"id", "caption"} (generated)')
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--test-size", type=_fraction(low_open=True), default=0.2)
    parser.add_argument(
        "--val-size", type=_fraction(low_open=False), default=0.1, help="fraction of train"
    )
    parser.add_argument("--on-missing-image", choices=("fail", "skip"), default="fail")


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    prepare = sub.add_parser("prepare", help="prepare a dataset into reproducible splits")
    kinds = prepare.add_subparsers(dest="kind", required=True)
    foot = kinds.add_parser("footwear", help="Kaggle Fashion Product Images -> footwear splits")
    foot.add_argument("--images-dir", type=Path, required=True, help="folder of <id>.jpg")
    foot.add_argument("--styles", type=Path, required=True, help="styles.csv of the catalogue")
    foot.add_argument("--out", type=Path, default=Path("data/footwear"))
    _add_prepare_common(foot)
    cat = kinds.add_parser(
        "catalogue", help="Kaggle Fashion Product Images -> splits of any filtered subset"
    )
    cat.add_argument("--images-dir", type=Path, required=True, help="folder of <id>.jpg")
    cat.add_argument(
        "--styles",
        type=Path,
        help="styles.csv, or a folder of per-item <id>.json (default: styles.csv beside the "
        "images folder, else styles/ there)",
    )
    cat.add_argument("--out", type=Path, required=True)
    # several values of one filter are OR-ed, different filters AND-ed; none keeps every item
    for flag, field in (
        ("--master-category", "masterCategory"),
        ("--sub-category", "subCategory"),
        ("--article-type", "articleType"),
    ):
        cat.add_argument(
            flag, action="append", default=[], metavar="VALUE", help=f"keep this {field} (repeat)"
        )
    cat.add_argument("--stratify", default="articleType", help="field the split is stratified by")
    _add_prepare_common(cat)


def _add_score(sub: argparse._SubParsersAction) -> None:
    score = sub.add_parser("score", help="score a model on benchmarks into the database")
    score.add_argument(
        "model",
        help="checkpoint folder, HF hub id, hf-hub:..., openclip:ARCH/TAG, or precomputed "
        "image embeddings: a folder (embeddings.npy + ids.txt, .parquet, .safetensors) or "
        "embeddings:PATH",
    )
    score.add_argument("--pretrained", help="open_clip pretrained tag or weights file")
    score.add_argument("--benchmarks", help="comma-separated names (default: all with data)")
    score.add_argument("--name", help="display name of the model in results")
    score.add_argument("--data-root", type=Path, help="folder holding the benchmarks' data")
    score.add_argument(
        "--data",
        type=_key_value,
        action="append",
        default=[],
        metavar="BENCHMARK=PATH",
        help="data folder of one benchmark",
    )
    score.add_argument("--batch-size", type=positive_int, default=64)
    score.add_argument("--workers", type=non_negative_int, help="image decoding processes")
    score.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    score.add_argument(
        "--device",
        help="cpu, cuda, cuda:N or mps (default: this process's GPU under accelerate, else the "
        "GPU if there is one, else the CPU)",
    )
    score.add_argument("--cache-dir", type=Path, help="embedding cache (default ~/.cache)")
    score.add_argument("--no-cache", action="store_true", help="neither read nor write cache")
    score.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip benchmarks already scored for this model and data",
    )
    score.add_argument("--no-store", action="store_true", help="do not write the database")
    score.add_argument(
        "--export", type=Path, metavar="DIR", help="also write each run as a portable run folder"
    )
    score.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples")
    score.add_argument("--seed", type=non_negative_int, default=0)
    score.add_argument("--json", action="store_true", help="print results as JSON")
    score.add_argument("--trust-remote-code", action="store_true")
    score.add_argument(
        "--mark-baseline",
        action="store_true",
        help="mark this model as the baseline comparisons and the leaderboard default to",
    )
    score.add_argument("--baseline", help="model name to compare against after scoring")
    score.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a gated metric is significantly worse than the baseline's "
        "(needs --baseline)",
    )
    _add_gate_options(score)


def _add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tolerance",
        type=_margin,
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="practical margin: fail only when significantly worse AND the drop is larger, "
        "e.g. acc@1=0.01 or footwear/article_type/pretest=20",
    )
    parser.add_argument("--metric", action="append", help="metrics to gate (default: headline)")
    parser.add_argument(
        "--resamples", type=positive_int, default=10_000, help="paired bootstrap resamples"
    )
    parser.add_argument(
        "--compare-seed", type=non_negative_int, default=0, help="seed of the resamples"
    )


def _add_compare(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser("compare", help="gate a candidate against a baseline")
    compare.add_argument("--baseline", help="default: the model marked as the baseline")
    compare.add_argument("--candidate", required=True)
    _add_gate_options(compare)
    compare.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalsuite", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    _add_db(parser, None)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare(sub)
    _add_score(sub)
    _add_compare(sub)
    report = sub.add_parser(
        "report", help="Markdown report with PNG charts; prints the seed's results table"
    )
    report.add_argument(
        "--out",
        type=Path,
        help="the report's folder (default reports/); with --format, the file the table is "
        "written to (default: standard output)",
    )
    report.add_argument("--baseline")
    report.add_argument(
        "--format",
        choices=("markdown", "csv", "json"),
        help="write only the seed's results table (and training costs), e.g. for a pull "
        "request comment, instead of report.md",
    )
    listing = sub.add_parser("list", help="models, runs and benchmarks")
    listing.add_argument(
        "what", nargs="?", choices=("models", "runs", "benchmarks"), default="runs"
    )
    export = sub.add_parser("export", help="write a model's runs as portable Parquet folders")
    export.add_argument("model", help="model name (or a fingerprint of its weights)")
    export.add_argument("out", type=Path, help="folder to write <run_id>/ folders into")
    export.add_argument(
        "--all-runs", action="store_true", help="every run, not only the latest per benchmark"
    )
    merge = sub.add_parser("import", help="merge exported runs into the database")
    merge.add_argument("paths", nargs="+", help="run folders, folders of them, or globs")
    mark = sub.add_parser("baseline", help="mark the model comparisons default to")
    mark.add_argument(
        "model", help="name of a scored model (or a prefix of its weights' fingerprint)"
    )
    board = sub.add_parser("leaderboard", help="serve the Streamlit leaderboard")
    board.add_argument("--port", type=_port, default=8501)
    board.add_argument("--baseline", help="model the differences are against")
    board.add_argument("--target", help="target metric as BENCHMARK/TASK/METRIC")
    for name, command in sub.choices.items():
        if name != "prepare":  # the only command without a results database
            _add_db(command, argparse.SUPPRESS)
    return parser


def _add_db(parser: argparse.ArgumentParser, default: object) -> None:
    """``--db`` / ``--results``, before or after the sub-command: after it, the default
    SUPPRESS leaves the value given before it (argparse copies a sub-command's defaults
    over the main parser's values)."""
    parser.add_argument(
        "--db",
        "--results",
        dest="db",
        type=Path,
        default=default,
        help="results database (reports/results.duckdb); for reading, also a folder of "
        "exported runs (read in place); before or after the sub-command",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        check_args(args)  # paths and flags, before torch, transformers and pandas load
        quiet_library_bars()  # in a log, a line per benchmark instead of bars
        from evalsuite.commands import COMMANDS

        return COMMANDS[args.command](args)
    except EvalSuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
