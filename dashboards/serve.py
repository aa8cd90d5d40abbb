"""Serve the leaderboard: ``streamlit run dashboards/leaderboard.py -- --db PATH``.

``python -m dashboards.serve --db PATH`` calls :func:`main`; ``evalsuite leaderboard`` runs
that command (the core never imports the dashboards). ``--baseline NAME`` and ``--target
BENCHMARK/TASK/METRIC`` set the page's defaults (a URL's ``?baseline=...&target=...`` still wins).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

APP = Path(__file__).resolve().with_name("leaderboard.py")
DB_ENV = "EVALSUITE_DB"


def command(
    db_path: str | Path,
    port: int = 8501,
    headless: bool = True,
    options: Sequence[str] = (),
    baseline: str | None = None,
    target: str | None = None,
) -> list[str]:
    """The ``streamlit run`` command line serving the leaderboard on ``db_path``; ``options``
    are more streamlit flags (``--server.address 127.0.0.1``...); ``baseline`` and ``target``
    go to the app after ``--``, like the database."""
    app_args = [
        part
        for flag, value in (("--baseline", baseline), ("--target", target))
        if value
        for part in (flag, value)
    ]
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(int(port)),
        "--server.headless",
        "true" if headless else "false",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",  # no developer menu or "Deploy" button for stakeholders
        *options,
        "--",
        "--db",
        str(Path(db_path).expanduser().absolute()),
        *app_args,
    ]


def main(
    db_path: str | Path,
    port: int = 8501,
    headless: bool = True,
    baseline: str | None = None,
    target: str | None = None,
) -> int:
    """Run the leaderboard until interrupted; returns streamlit's exit status (0 on Ctrl-C).

    ``db_path`` is a DuckDB file or a folder of exported runs. A missing database is not an
    error: the page explains how to fill it. ``baseline`` (a model name) and ``target``
    (``BENCHMARK/TASK/METRIC``) are the page's defaults.
    """
    db = Path(db_path).expanduser().absolute()
    env = {**os.environ, DB_ENV: str(db)}
    print(f"Leaderboard on {db}: http://localhost:{port}  (Ctrl-C stops it)", flush=True)
    args = command(db, port, headless, baseline=baseline, target=target)
    process = subprocess.Popen(args, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", default="reports/results.duckdb",
        help="results database, or a folder of exported runs (read in place)",
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--no-headless", action="store_true", help="open a browser tab")
    parser.add_argument("--baseline", help="model the changes are judged against")
    parser.add_argument("--target", help="target metric as BENCHMARK/TASK/METRIC")
    args = parser.parse_args(argv)
    return main(
        args.db, port=args.port, headless=not args.no_headless, baseline=args.baseline,
        target=args.target,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(cli())
