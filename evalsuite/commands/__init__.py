"""The ``evalsuite`` sub-commands, one module per job: :data:`COMMANDS` maps each sub-command
to the function that runs it, given the arguments :mod:`evalsuite.cli` parsed.

``score``: prepare and score; ``compare``: compare, baseline and the regression gate;
``results``: report, export, import and list; ``leaderboard``: serves the dashboards as a
process. torch and the other heavy libraries are imported inside the commands that need them,
so that ``evalsuite --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from evalsuite.commands import compare, leaderboard, results, score

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "prepare": score.cmd_prepare,
    "score": score.cmd_score,
    "compare": compare.cmd_compare,
    "baseline": compare.cmd_baseline,
    "report": results.cmd_report,
    "export": results.cmd_export,
    "import": results.cmd_import,
    "list": results.cmd_list,
    "leaderboard": leaderboard.cmd_leaderboard,
}
