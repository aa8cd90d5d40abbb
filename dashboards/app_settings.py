"""The leaderboard's settings from outside the page: the database path (``--db`` after ``--``
on the streamlit command line, else ``$EVALSUITE_DB``, else the default), and the baseline and
target asked for in the URL or on the command line; a choice made on the page goes back into
the URL, so that a shared link shows what its sender saw."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from evalsuite import store

DB_ENV = "EVALSUITE_DB"


def script_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``--db``, ``--baseline`` and ``--target`` after ``--`` on the streamlit command line."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--db", "--baseline", "--target"):
        parser.add_argument(flag)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args


def db_path(argv: list[str] | None = None) -> Path:
    """``--db`` after ``--`` on the streamlit command line, else $EVALSUITE_DB, else default."""
    db = script_args(argv).db
    return Path(db or os.environ.get(DB_ENV) or store.DEFAULT_DB).expanduser()


def requested(name: str) -> str | None:
    """A page setting asked for in the URL (``?baseline=...``), else on the command line: a
    shared link shows what its sender saw."""
    return st.query_params.get(name) or getattr(script_args(), name, None) or None


def share(name: str, value: str) -> None:
    """Put a choice in the URL, so that a copied link shows the same comparison."""
    if st.query_params.get(name) != value:
        st.query_params[name] = value
