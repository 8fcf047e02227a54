"""What the worker's polling threads share: a lazily (re)opened Postgres connection, and a loop that
runs rounds until stopped, backing off after a failed round.

The scheduler and the watch runner are such threads: each round is a short transaction; a round
that fails (the database or the broker away) closes what it holds and is tried again later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from agents.backoff import backoff_delay

log = logging.getLogger(__name__)


class LazyConnection:
    """A psycopg connection opened on first use and again after it was closed or lost."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def get(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, row_factory=dict_row, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run_rounds(
    name: str,
    one_round: Callable[[], object],
    stop: threading.Event,
    *,
    pause_s: float,
    close: Callable[[], None],
) -> None:
    """Call ``one_round`` until ``stop`` is set, ``pause_s`` apart (0: the round waits itself); after a
    failure ``close`` what the round holds and wait with backoff. ``close`` again at the end."""
    failures = 0
    while not stop.is_set():
        try:
            one_round()
            failures = 0
            wait = pause_s
        except Exception as exc:  # the database or broker is away: try again, with backoff
            failures += 1
            wait = backoff_delay(failures, base=0.5, max_delay=10.0)
            log.warning("%s: round failed (%s); retrying in %.1fs", name, exc, wait)
            close()
        if wait:
            stop.wait(wait)
    close()
