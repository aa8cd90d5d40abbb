"""Command line: ``accelerate launch -m finetune --config CFG.yaml [--set key=value ...]``.

Also ``python -m finetune ...`` (one process), ``finetune wise ...`` (weight-space
ensembling, :mod:`finetune.wise`), ``finetune soup ...`` (model soups, :mod:`finetune.soup`)
and ``finetune sweep ...`` (a study of many fine-tunes, :mod:`finetune.sweep`). Hardware
(processes, GPUs, mixed precision defaults) comes from ``accelerate launch``; everything about
the run comes from the config.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from finetune import train_command


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
    return train_command.main(argv)


if __name__ == "__main__":
    sys.exit(main())
