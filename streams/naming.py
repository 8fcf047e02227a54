"""Kafka topic-name rules, checked before anything is sent. Pure.

The broker's own rule (``org.apache.kafka.common.internals.Topic``): 1 to 249 characters of ASCII
letters, digits, ``.``, ``_`` and ``-``, and neither ``.`` nor ``..``. Checking it when an agent asks
for an output turns a bad name into that event's failure instead of an error at flush time.
"""

from __future__ import annotations

import re

MAX_TOPIC_LENGTH = 249
_LEGAL = re.compile(r"^[A-Za-z0-9._-]+$")


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` is not a legal Kafka topic name, or None when it is."""
    if not name:
        return "a topic name cannot be empty"
    if name in (".", ".."):
        return f"{name!r} is not a legal topic name"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"topic name {name[:40]!r}… is {len(name)} characters long (at most {MAX_TOPIC_LENGTH})"
    if not _LEGAL.match(name):
        return f"topic name {name!r} may hold only ASCII letters, digits, '.', '_' and '-'"
    return None
