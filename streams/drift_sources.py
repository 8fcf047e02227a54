"""Where ``vigil drift detect`` reads its samples: the pure part of each source.

A sample is ``(value, at)``: a float and its time in epoch seconds. Every source turns its input into
samples and the one detect loop (``ops/drift_cli.py``) scores them, so the three sources share the
detector, the policy and the publishing. Nothing here touches Kafka or Postgres:

- ``--stdin``: :func:`stdin_sample` parses one JSON line;
- ``--topic cdc.<schema>.<table> --field COLUMN``: :func:`change_sample` reads the column of a
  Debezium change event's after-image;
- ``--query "SELECT observed_at, value FROM …"``: :func:`watermark_query` wraps the query so each
  poll returns only rows newer than the last one seen, and :func:`query_sample` converts a row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from schemas.errors import ConfigurationError
from streams.views import ChangeEvent

Sample = tuple[float, float]


def stdin_sample(line: str, number: int, now: float) -> Sample:
    """A JSON number, or ``{"value": v, "at": epoch}``; ``at`` defaults to ``now``."""
    try:
        document = json.loads(line)
        if isinstance(document, dict):
            return float(document["value"]), float(document.get("at", now))
        return float(document), now
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f'stdin line {number}: {exc}; write one JSON number or {{"value": v, "at": epoch}} a line'
        ) from exc


def change_sample(event: ChangeEvent, field: str, message_time_ms: int | None) -> Sample | None:
    """The sample in a change event: ``after[field]`` at the source's commit time.

    ``None`` for a delete (no after-image) or a null value. Raises :class:`ConfigurationError` when
    the column is not in the after-image (naming the columns there are) or is not a number.
    """
    if event.after is None:
        return None
    if field not in event.after:
        columns = ", ".join(sorted(event.after)) or "none"
        raise ConfigurationError(
            f"--field {field!r}: the change events of {event.topic} have no column {field!r}; "
            f"their columns are: {columns}"
        )
    raw = event.after[field]
    if raw is None:
        return None
    value = _number(raw)
    if value is None:
        raise ConfigurationError(
            f"--field {field!r} of {event.topic} is not a number ({raw!r}): pick a numeric column; "
            "for numeric/decimal columns set decimal.handling.mode=double (or string) on the connector"
        )
    at_ms = event.source.get("ts_ms") or event.ts_ms or message_time_ms
    return value, (float(at_ms) / 1000.0 if at_ms else 0.0)


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float | Decimal):
        return float(raw)
    if isinstance(raw, str):
        try:
            parsed = float(raw)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def watermark_query(query: str, *, first: bool) -> str:
    """``query`` wrapped to return its rows oldest first: every row on the ``first`` poll, then only
    those whose time is after ``%(watermark)s`` (the newest time seen so far).

    The query's two columns are renamed ``at, value`` by position.
    """
    body = query.strip().rstrip(";").strip()
    if not body:
        raise ConfigurationError('--query is empty: give "SELECT observed_at, value FROM …"')
    if "%" in body:
        body = body.replace("%", "%%")  # the user's literal percent signs are not placeholders
    where = "" if first else "WHERE q.at > %(watermark)s "
    return f"SELECT q.at, q.value FROM ({body}) AS q(at, value) {where}ORDER BY q.at"


def check_query_columns(names: Sequence[str]) -> None:
    """A query must select exactly two columns: the time, then the value."""
    if len(names) != 2:
        listed = ", ".join(names) or "none"
        raise ConfigurationError(
            f"--query must select two columns, the time then the value "
            f'("SELECT observed_at, value FROM …"); it selects {len(names)}: {listed}'
        )


def query_sample(at: Any, value: Any) -> Sample:
    """One row of a ``--query``: ``(time, value)`` with the time a timestamp or epoch seconds."""
    number = _number(value)
    if number is None:
        raise ConfigurationError(
            f"--query: the second column must be a number (the value), got {value!r}; cast it "
            "(value::double precision)"
        )
    return number, epoch_of(at)


def epoch_of(at: Any) -> float:
    if isinstance(at, datetime):
        return at.timestamp()  # a naive timestamp is read as local time, as Postgres's own clients do
    if isinstance(at, date) and not isinstance(at, datetime):
        return datetime.combine(at, time()).timestamp()
    number = _number(at)
    if number is None:
        raise ConfigurationError(
            f"--query: the first column must be the time (timestamp, timestamptz, date or epoch "
            f"seconds), got {at!r}; the watermark is taken on it"
        )
    return number
