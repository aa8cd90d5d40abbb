"""Command line: ``accelerate launch -m finetune --config CFG.yaml [--set key=value ...]``.

Also ``python -m finetune ...`` (one process), ``finetune wise ...`` (weight-space
ensembling, :mod:`finetune.wise`), ``finetune soup ...`` (model soups, :mod:`finetune.soup`)
and ``finetune sweep ...`` (a study of many fine-tunes, :mod:`finetune.sweep`). Hardware
(processes, GPUs, mixed precision defaults) comes from ``accelerate launch``; everything about
the run comes from the config.
"""

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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "wise":
        from finetune.wise import main as wise_main

        return wise_main(argv[1:])
    if argv and argv[0] == "soup":
        from finetune.soup import main as soup_main

        return soup_main(argv[1:])
    if argv and argv[0] == "sweep":
        from finetune.sweep import main as sweep_main

        return sweep_main(argv[1:])
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


if __name__ == "__main__":
    sys.exit(main())
