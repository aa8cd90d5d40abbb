"""The leaderboard's reads: store reads cached a few seconds, the verdicts cached per change of
the database, and while a scorer holds the lock the last data read (or :class:`Busy`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import run_provenance
from evalsuite import store
from evalsuite.verdicts import ModelComparison, compare_many, load_units
from evalsuite.verdicts import rank_bands as compute_rank_bands

READ_TIMEOUT_S = 3.0  # per read; the store retries while a scorer holds the lock
CACHE_TTL_S = 5
RETRY_EVERY_S = 3
LAST_GOOD_MAX = 64  # reads kept per session to show while the database is locked


class Busy(Exception):
    """The database stayed locked by a writer and nothing was read before."""


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=512)
def _cached(function: str, db: str, args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> Any:
    return getattr(store, function)(db, *args, timeout_s=READ_TIMEOUT_S, **dict(kwargs))


def clear_cache() -> None:
    """Forget the cached store reads: the next read opens the database again."""
    _cached.clear()


def _last_good(key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``; while a scorer holds the lock, what it gave last time for ``key``."""
    last_good = st.session_state.setdefault("_last_good", {})
    try:
        value = compute()
    except store.StoreBusyError:
        st.session_state["_busy"] = True
        if key in last_good:
            return last_good[key]
        raise Busy from None
    last_good.pop(key, None)  # most recent last; the oldest goes when there are too many
    last_good[key] = value
    while len(last_good) > LAST_GOOD_MAX:
        del last_good[next(iter(last_good))]
    return value


def read(db: Path, function: str, *args: Any, **kwargs: Any) -> Any:
    """A store read of ``db`` (cached a few seconds); while a scorer writes, the last data
    read."""
    key = (function, str(db), args, tuple(sorted(kwargs.items())))
    return _last_good(key, lambda: _cached(*key))


@st.cache_data(show_spinner="Comparing every model with the baseline…", max_entries=32)
def _comparisons(
    db: str, stamp: tuple[int, ...], baseline: str, candidates: tuple[str, ...]
) -> dict[str, ModelComparison | str]:
    """Model name -> its :class:`ModelComparison` against ``baseline``, or why none."""
    metrics = store.latest_metrics(db, timeout_s=READ_TIMEOUT_S)
    return compare_many(db, metrics, baseline, candidates)


@st.cache_data(show_spinner="Ranking the models…", max_entries=32)
def _rank_bands(
    db: str, stamp: tuple[int, ...], target: tuple[str, str, str], baseline: str | None
) -> pd.DataFrame:
    metrics = store.latest_metrics(db, timeout_s=READ_TIMEOUT_S)
    runs = metrics.loc[(metrics["benchmark"] == target[0]) & (metrics["task"] == target[1]),
                       "run_id"]  # fmt: skip
    units = load_units(db, sorted(set(runs)))
    return compute_rank_bands(metrics, units, target, reference=baseline)


def comparisons(
    db: Path, baseline: str | None, candidates: list[str]
) -> dict[str, ModelComparison | str]:
    """Every candidate judged against the baseline, once per change of the database."""
    if baseline is None or not candidates:
        return {}
    key = ("_comparisons", str(db), baseline, tuple(candidates))
    return _last_good(key, lambda: _comparisons(str(db), run_provenance.db_stamp(db), *key[2:]))


def rank_bands(db: Path, target: tuple[str, str, str], baseline: str | None) -> pd.DataFrame:
    key = ("_rank_bands", str(db), tuple(target), baseline)
    return _last_good(
        key, lambda: _rank_bands(str(db), run_provenance.db_stamp(db), tuple(target), baseline)
    )


def show_busy_notice(slot: Any) -> None:
    """Tell the user and rerun by itself a few seconds later."""
    slot.info(
        "Results are being written by a scorer right now; showing the last data read "
        "and retrying every few seconds.",
        icon="⏳",
    )
    started = time.monotonic()

    @st.fragment(run_every=RETRY_EVERY_S)
    def retry() -> None:
        if time.monotonic() - started > RETRY_EVERY_S - 0.5:
            st.rerun()

    retry()
