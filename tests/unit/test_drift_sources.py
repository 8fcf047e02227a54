"""The pure part of `vigil drift detect`'s sources: stdin lines, CDC after-images, query rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ops.drift_cli import limited
from schemas.errors import ConfigurationError
from streams.drift_sources import (
    change_sample,
    check_query_columns,
    query_sample,
    stdin_sample,
    watermark_query,
)
from streams.views import ChangeEvent


def change(after: dict[str, Any] | None, *, source_ts: int | None = 1_700_000_000_500) -> ChangeEvent:
    return ChangeEvent(
        event_id="e",
        trace_id="e",
        topic="cdc.public.metrics",
        partition=0,
        offset=0,
        headers={},
        timestamp_ms=None,
        op="c" if after is not None else "d",
        before=None,
        after=after,
        key=1,
        source={"ts_ms": source_ts} if source_ts else {},
        ts_ms=1_700_000_009_000,
    )


def test_stdin_sample_reads_numbers_and_objects() -> None:
    assert stdin_sample("4.5", 1, now=10.0) == (4.5, 10.0)
    assert stdin_sample('{"value": 3, "at": 7}', 1, now=10.0) == (3.0, 7.0)
    with pytest.raises(ConfigurationError, match="stdin line 2"):
        stdin_sample('{"v": 3}', 2, now=10.0)


def test_change_sample_takes_the_after_image_field_at_the_commit_time() -> None:
    assert change_sample(change({"id": 1, "value": 12}), "value", None) == (12.0, 1_700_000_000.5)
    assert change_sample(change({"value": "7.25"}), "value", None) == (7.25, 1_700_000_000.5)
    assert change_sample(change({"value": Decimal("2")}, source_ts=None), "value", None) == (
        2.0,
        1_700_000_009.0,
    )


def test_change_sample_skips_deletes_and_nulls() -> None:
    assert change_sample(change(None), "value", None) is None
    assert change_sample(change({"value": None}), "value", None) is None


def test_unknown_column_names_the_columns_there_are() -> None:
    with pytest.raises(ConfigurationError, match=r"no column 'valu'.*id, value"):
        change_sample(change({"id": 1, "value": 2}), "valu", None)


def test_non_numeric_column_names_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"decimal\.handling\.mode"):
        change_sample(change({"value": "AQI="}), "value", None)
    with pytest.raises(ConfigurationError, match="not a number"):
        change_sample(change({"value": True}), "value", None)


def test_watermark_query_wraps_the_users_query() -> None:
    first = watermark_query("SELECT observed_at, value FROM metrics WHERE name LIKE 'cpu%';", first=True)
    assert first == (
        "SELECT q.at, q.value FROM (SELECT observed_at, value FROM metrics WHERE name LIKE 'cpu%%') "
        "AS q(at, value) ORDER BY q.at"
    )
    later = watermark_query("SELECT t, v FROM m", first=False)
    assert later.endswith("WHERE q.at > %(watermark)s ORDER BY q.at")
    with pytest.raises(ConfigurationError, match="empty"):
        watermark_query(" ; ", first=True)


def test_a_query_selects_two_columns() -> None:
    check_query_columns(["observed_at", "value"])
    with pytest.raises(ConfigurationError, match="selects 1: value"):
        check_query_columns(["value"])
    with pytest.raises(ConfigurationError, match="selects 3"):
        check_query_columns(["a", "b", "c"])


def test_query_sample_reads_timestamps_and_epochs() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert query_sample(at, Decimal("1.5")) == (1.5, at.timestamp())
    assert query_sample(1_700_000_000, 3) == (3.0, 1_700_000_000.0)
    with pytest.raises(ConfigurationError, match="second column must be a number"):
        query_sample(at, "high")
    with pytest.raises(ConfigurationError, match="first column must be the time"):
        query_sample("yesterday", 1)


def test_limited_stops_the_feed_and_lets_it_record_the_last_sample() -> None:
    stop = threading.Event()
    recorded: list[int] = []

    def feed() -> Iterator[tuple[float, float]]:
        n = 0
        while not stop.is_set():
            yield float(n), float(n)
            recorded.append(n)  # what a topic feed does once the sample was scored: store its offset
            n += 1

    assert list(limited(feed(), 3, stop)) == [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)]
    assert stop.is_set() and recorded == [0, 1, 2]
    assert len(list(limited(iter([(1.0, 1.0)] * 4), None, threading.Event()))) == 4
