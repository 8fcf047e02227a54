"""The dashboard's reads of the broker: a topic's latest messages (or one key's), decoded, and the dead
letters on ``vigil.dlq`` with what a re-drive needs. Reading only, through :func:`ops.tail.tail` (an
assigned consumer under a throwaway group that never commits).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from rich.console import Console

from ops.tail import TailedMessage, tail
from streams import headers as names
from streams.catalog import DLQ
from streams.settings import Settings

#: A page waits this long without a message before it counts a topic as read (the CLI waits 1 s).
IDLE_SECONDS = 0.3
#: The most messages one page shows.
MAX_SHOWN = 200

_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)


def latest(settings: Settings, topic: str, *, key: str | None = None, limit: int = 20) -> list[TailedMessage]:
    """The newest ``limit`` messages of ``topic`` (with ``key``, the newest with that key), newest first."""
    limit = max(1, min(limit, MAX_SHOWN))
    found: list[TailedMessage] = []
    tail(
        settings,
        Console(file=io.StringIO()),
        topic,
        follow=False,
        key=key,
        limit=limit,
        as_json=False,
        idle_seconds=IDLE_SECONDS,
        on_message=found.append,
    )
    found.sort(key=lambda m: (m.timestamp or _EPOCH, m.partition, m.offset), reverse=True)
    return found[:limit]


@dataclass(frozen=True)
class DeadLetter:
    """One message on ``vigil.dlq``: where it is, who gave up on it, where it came from, and why."""

    partition: int
    offset: int
    timestamp: dt.datetime | None
    agent: str | None
    source: str
    error: str


def letter_summary(message: TailedMessage) -> DeadLetter:
    headers = {name: value for name, value in message.headers}

    def header(name: str) -> str | None:
        value = headers.get(name)
        return None if value is None else str(value)

    source = "/".join(
        header(n) or "?" for n in (names.SOURCE_TOPIC, names.SOURCE_PARTITION, names.SOURCE_OFFSET)
    )
    return DeadLetter(
        partition=message.partition,
        offset=message.offset,
        timestamp=message.timestamp,
        agent=header(names.AGENT),
        source=source,
        error=" ".join(filter(None, (header(names.ERROR_TYPE), header(names.ERROR)))),
    )


def dead_letters(settings: Settings, limit: int = 50) -> list[DeadLetter]:
    """The newest ``limit`` dead letters, newest first."""
    return [letter_summary(m) for m in latest(settings, DLQ, limit=limit)]
