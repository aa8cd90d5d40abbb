"""The training command: ``finetune --config CFG.yaml [--set key=value ...]`` (the default
sub-command of :mod:`finetune.__main__`; a sweep's trial process runs it too)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from evalsuite.errors import EvalSuiteError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune",
        description="Fine-tune a CLIP on a prepared catalogue (see configs/README.md). "
        "`finetune wise ...` interpolates weights instead; `finetune soup ...` averages "
        "fine-tunes of one base; `finetune sweep ...` runs a study of many fine-tunes.",
    )
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/footwear.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optim.lr=1e-4 (repeatable; YAML values)",
    )
    parser.add_argument("--output-dir", help="override output.dir")
    # An output folder that holds another run is refused unless one of these says what to do.
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="STATE_DIR",
        help="continue from OUTPUT/state (or STATE_DIR); starts afresh if there is none yet",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="the output folder holds another run: delete its best/, last/, state/ and "
        "steps.jsonl, then train afresh",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    from evalsuite.progress import quiet_library_bars
    from finetune.config import check_model_spec, load_config
    from finetune.output import finished_line

    quiet_library_bars()  # in a log, a line per epoch instead of bars

    try:
        cfg = load_config(args.config, args.overrides, args.output_dir)
        check_model_spec(cfg)  # an unreachable Hub id fails before torch loads
        from finetune.loop import train

        progress = train(cfg, resume=args.resume, overwrite=args.overwrite)
    except EvalSuiteError as err:
        print(f"finetune: error: {err}", file=sys.stderr)
        return 2
    if rank == 0:
        log = logging.getLogger("finetune")
        if progress.stopped:
            log.info("stopped: %s", progress.stopped)
        log.info(finished_line(cfg.output.dir, progress.best_epoch))
    return 0
