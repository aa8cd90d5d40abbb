"""``evalsuite leaderboard``: serve the dashboards' leaderboard as a separate process."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

from evalsuite.command_output import EXIT_OK, EXIT_USAGE
from evalsuite.commands.console import console
from evalsuite.preflight import results_db

# The leaderboard is the dashboards package's; the core only starts it, as a process, so that
# evalsuite never imports the user interface (``python -m dashboards.serve`` runs streamlit).
LEADERBOARD_MODULE = "dashboards.serve"
SERVER_STOP_SECONDS = 15  # dashboards.serve gives streamlit 10 s to stop on Ctrl-C


def leaderboard_command(args: argparse.Namespace) -> list[str]:
    """The ``python -m dashboards.serve`` command line serving ``args``' database."""
    command = [sys.executable, "-m", LEADERBOARD_MODULE, "--db", str(results_db(args))]
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
