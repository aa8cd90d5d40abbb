"""What an ``evalsuite`` command hands back: its exit code and, with ``--json``, JSON.

Exit codes: 0 success, 1 a regression against the baseline, 2 a usage or input error. The
parser (:mod:`evalsuite.cli`) and the commands (:mod:`evalsuite.commands`) both use them.
"""

from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE = 0, 1, 2


def print_json(payload: object) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
