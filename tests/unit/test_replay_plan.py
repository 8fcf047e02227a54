"""The pure replay planner: times, offsets, filters, sandbox headers, rerun ids, dead letters unpacked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.errors import ConfigurationError
from streams import headers as names
from streams.deadletter import dead_letter
from streams.replay_plan import (
    Filters,
    PartitionRange,
    letter_is_for,
    letter_of,
    only_partitions,
    parse_header_filters,
    parse_offsets,
    parse_time,
    plan_by_offsets,
    plan_by_time,
    rerun_event_id,
    sandbox_headers,
)
from streams.views import MessageParts, event_id_of

pytestmark = pytest.mark.timeout(10)
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_times_iso_and_relative() -> None:
    assert parse_time("-2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_time("-30m", now=NOW) == NOW - timedelta(minutes=30)
    assert parse_time("2026-05-01T10:00:00", now=NOW) == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_time("2026-05-01T10:00:00+02:00", now=NOW) == datetime(2026, 5, 1, 8, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="ISO 8601"):
        parse_time("yesterday", now=NOW)


def test_offsets_for_all_or_some_partitions() -> None:
    assert parse_offsets("5", [0, 1]) == {0: 5, 1: 5}
    assert parse_offsets("0:3,1:7", [0, 1]) == {0: 3, 1: 7}
    assert parse_offsets(None, [0]) == {}
    with pytest.raises(ConfigurationError, match="partition 4"):
        parse_offsets("4:1", [0, 1])


def test_plan_by_time_uses_the_end_where_no_message_is_that_late() -> None:
    plan = plan_by_time("t", {0: (0, 50), 1: (10, 20)}, {0: 15, 1: -1}, {0: 35, 1: -1})
    assert plan.ranges == (PartitionRange(0, 15, 35), PartitionRange(1, 20, 20))
    assert plan.total == 20 and [r.partition for r in plan.reading()] == [0]


def test_plan_by_offsets_is_inclusive_and_clipped() -> None:
    plan = plan_by_offsets("t", {0: (5, 50), 1: (0, 3)}, {0: 0, 1: 1}, {0: 9, 1: 99})
    assert plan.ranges == (PartitionRange(0, 5, 10), PartitionRange(1, 1, 3))
    assert only_partitions(plan, [1]).ranges == (PartitionRange(1, 1, 3),)
    with pytest.raises(ConfigurationError):
        only_partitions(plan, [7])


def test_filters_key_headers_and_time_window() -> None:
    f = Filters(key=b"k", headers=parse_header_filters(["tenant=a"]), from_ms=100, to_ms=200)
    assert f.matches(b"k", {"tenant": b"a"}, 100)
    assert not f.matches(b"k", {"tenant": b"a"}, 200)  # the end is exclusive
    assert not f.matches(b"x", {"tenant": b"a"}, 150)
    assert not f.matches(b"k", {"tenant": b"b"}, 150)
    with pytest.raises(ConfigurationError):
        parse_header_filters(["novalue"])


def test_sandbox_headers_keep_order_and_add_one_replay_id() -> None:
    out = sandbox_headers([("a", b"1"), (names.REPLAY_ID, b"old"), ("a", b"2")], "r1")
    assert out == [("a", b"1"), ("a", b"2"), (names.REPLAY_ID, b"r1")]
    assert rerun_event_id("e", "r1") != rerun_event_id("e", "r2")


def test_a_dead_letter_gives_back_the_original_with_its_event_id() -> None:
    original = MessageParts("orders", 2, 41, b"k", b"{}", {"x": b"1"}, topic_id="ID")
    letter = dead_letter(
        topic="orders", partition=2, offset=41, key=b"k", value=b"{}",
        headers=[("x", b"1"), (names.AGENT, b"a1"), (names.ATTEMPTS, b"3")], error=RuntimeError("boom"),
    )  # fmt: skip
    parts = MessageParts(names.__name__, 0, 7, letter.key, letter.value, dict(letter.headers))
    unpacked = letter_of(parts)
    assert unpacked is not None and unpacked.agent == "a1"
    assert unpacked.original.headers == {"x": b"1"}
    restored = MessageParts(**{**unpacked.original.__dict__, "topic_id": "ID"})
    assert event_id_of(restored) == event_id_of(original)
    assert letter_is_for(unpacked, "a1", []) and not letter_is_for(unpacked, "a2", ["orders"])
    assert letter_of(MessageParts("vigil.dlq", 0, 1, None, b"", {})) is None


def test_a_dead_letter_keeps_an_event_id_the_original_carried() -> None:
    letter = dead_letter(
        topic="drift.events", partition=0, offset=3, key=None, value=b"v",
        headers=[(names.EVENT_ID, b"evt-1")], error=RuntimeError("boom"),
    )  # fmt: skip
    unpacked = letter_of(MessageParts("vigil.dlq", 0, 9, None, b"v", dict(letter.headers)))
    assert unpacked is not None and unpacked.original.headers == {names.EVENT_ID: b"evt-1"}
    assert letter_is_for(unpacked, "any", ["drift.events"])
