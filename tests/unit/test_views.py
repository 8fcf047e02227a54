"""Event views built from message parts: no broker."""

from __future__ import annotations

import dataclasses
import json

import pytest

from schemas.codec import Codec
from schemas.errors import DecodeError, PoisonError
from schemas.examples import EXAMPLES
from streams.views import (
    ChangeEvent,
    MessageParts,
    RawEvent,
    RecordEvent,
    event_id_of,
    parts_of_record,
    view_of,
)


def parts(topic: str, value: bytes | None, key: bytes | None = None, **headers: bytes) -> MessageParts:
    return MessageParts(topic, 2, 41, key, value, {k.replace("_", "-"): v for k, v in headers.items()})


def test_event_id_comes_from_the_header_else_the_position() -> None:
    assert event_id_of(parts("x", b"1", vigil_event_id=b"abc")) == "abc"
    assert event_id_of(parts("x", b"1")) == "x/2/41"


def test_a_views_trace_id_is_its_header_else_the_event_id() -> None:
    traced = view_of(parts("x", b"1", vigil_event_id=b"abc", vigil_trace_id=b"t-1"))
    assert traced is not None and (traced.event_id, traced.trace_id) == ("abc", "t-1")
    untraced = view_of(parts("x", b"1", vigil_event_id=b"abc"))
    assert untraced is not None and (untraced.event_id, untraced.trace_id) == ("abc", "abc")
    by_position = view_of(parts("x", b"1"))
    assert by_position is not None and (by_position.event_id, by_position.trace_id) == ("x/2/41", "x/2/41")


def test_a_view_carries_the_messages_kafka_timestamp() -> None:
    stamped = dataclasses.replace(parts("x", b"1"), timestamp_ms=1_700_000_000_123)
    view = view_of(stamped)
    assert view is not None and view.timestamp_ms == 1_700_000_000_123
    change = json.dumps({"op": "c", "before": None, "after": {"id": 1}, "source": {}}).encode()
    view = view_of(dataclasses.replace(parts("cdc.public.orders", change), timestamp_ms=5))
    assert isinstance(view, ChangeEvent) and view.timestamp_ms == 5
    unstamped = view_of(parts("x", b"1"))
    assert unstamped is not None and unstamped.timestamp_ms is None


def test_debezium_change_event_with_and_without_the_schema_envelope() -> None:
    payload = {"op": "u", "before": {"id": 1, "s": "a"}, "after": {"id": 1, "s": "b"}, "source": {"lsn": 7}}
    for value in (payload, {"schema": {}, "payload": payload}):
        view = view_of(parts("cdc.public.orders", json.dumps(value).encode(), key=b'{"id": 1}'))
        assert isinstance(view, ChangeEvent)
        assert (view.op, view.before, view.after, view.key, view.source) == (
            "u",
            {"id": 1, "s": "a"},
            {"id": 1, "s": "b"},
            1,
            {"lsn": 7},
        )


def test_tombstone_has_no_view() -> None:
    assert view_of(parts("cdc.public.orders", None, key=b'{"id": 1}')) is None


@pytest.mark.parametrize("value", [b"not json", b'{"no": "op"}', b"\xff\xfe"])
def test_bad_change_events_are_poison(value: bytes) -> None:
    with pytest.raises(PoisonError):
        view_of(parts("cdc.public.orders", value))


def test_other_topics_give_raw_views_with_json_parsed_when_it_is_json() -> None:
    json_view = view_of(parts("orders", b'{"n": 1}', key=b"k"))
    bytes_view = view_of(parts("orders", b"\x01\x02"))
    assert isinstance(json_view, RawEvent) and json_view.value == {"n": 1} and json_view.key == b"k"
    assert isinstance(bytes_view, RawEvent) and bytes_view.value == b"\x01\x02"


def test_vigil_avro_records_give_record_views() -> None:
    codec = Codec()
    record = EXAMPLES["DriftEvent"]
    view = view_of(parts("drift.warning", codec.encode("DriftEvent", record)), codec)
    assert isinstance(view, RecordEvent)
    assert view.type == "DriftEvent"
    assert view.severity == record["severity"]
    assert view.record == codec.decode(codec.encode("DriftEvent", record)).record
    with pytest.raises(AttributeError):
        _ = view.no_such_field


def test_non_avro_bytes_on_a_vigil_topic_are_poison() -> None:
    with pytest.raises(DecodeError):
        view_of(parts("drift.events", b'{"json": "not avro"}'), Codec())


def test_change_events_without_the_header_get_their_id_from_the_source_position() -> None:
    source = {"name": "cdc", "schema": "public", "table": "orders", "lsn": 123456, "snapshot": "false"}
    value = json.dumps({"op": "c", "after": {"id": 1}, "source": source}).encode()
    first = view_of(MessageParts("cdc.public.orders", 0, 5, b'{"id":1}', value))
    redelivered = view_of(MessageParts("cdc.public.orders", 2, 900, b'{"id":1}', value))
    assert first is not None and redelivered is not None
    assert first.event_id == redelivered.event_id
    assert first.event_id.startswith("cdc:cdc:123456:public.orders:")
    snapshot = json.dumps({"op": "r", "after": {"id": 1}, "source": {**source, "snapshot": "true"}}).encode()
    row = view_of(MessageParts("cdc.public.orders", 0, 6, b'{"id":1}', snapshot))
    assert (
        row is not None
        and ":snapshot-" in row.event_id
        and row.event_id.endswith(first.event_id.rsplit(":", 1)[1])
    )


def _snapshot_row(after: dict[str, object]) -> str:
    source = {"name": "cdc", "schema": "public", "table": "orders", "lsn": 1, "snapshot": "true"}
    value = json.dumps({"op": "r", "after": after, "source": source}).encode()
    view = view_of(MessageParts("cdc.public.orders", 0, 1, b'{"id":1}', value))
    assert view is not None
    return view.event_id


def test_a_resnapshot_dedups_an_unchanged_row_but_not_a_changed_one() -> None:
    first = _snapshot_row({"id": 1, "status": "new", "amount": 3})
    assert _snapshot_row({"amount": 3, "status": "new", "id": 1}) == first  # same content, any key order
    assert _snapshot_row({"id": 1, "status": "paid", "amount": 3}) != first


def test_a_message_without_an_id_is_named_by_its_position_and_the_topics_id() -> None:
    parts = MessageParts("orders", 2, 41, None, b"{}")
    assert event_id_of(parts) == "orders/2/41"
    recreated = MessageParts("orders", 2, 41, None, b"{}", topic_id="AAAAAAAAAAAAAAAAAAAAAg")
    assert event_id_of(recreated) == "orders@AAAAAAAAAAAAAAAAAAAAAg/2/41" != event_id_of(parts)


def test_a_tick_reaches_only_the_agent_it_names() -> None:
    from streams.views import RecordEvent, addressed_elsewhere

    def tick(agent: str | None) -> RecordEvent:
        return RecordEvent(
            "e", "e", "vigil.ticks", 0, 0, {}, None, type="Tick", record={"agent": agent}, key=None
        )

    assert addressed_elsewhere(tick("other"), "me")
    assert not addressed_elsewhere(tick("me"), "me")
    assert not addressed_elsewhere(tick(None), "me")


class _Message:
    """What parts_of_record reads of a confluent-kafka Message."""

    def topic(self) -> str:
        return "orders"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41

    def key(self) -> bytes:
        return b"k"

    def value(self) -> str:
        return '{"n": 1}'  # a str is UTF-8 encoded

    def headers(self) -> list[tuple[str, bytes | None]]:
        return [("vigil-event-id", b"e-1"), ("empty", None)]

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_700_000_000_000


def test_views_and_parts_built_fast_equal_what_their_constructors_build() -> None:
    """``built`` skips the dataclasses' __init__: every field must still be set, to the same value."""
    codec = Codec()
    made = parts_of_record(_Message(), topic_id="ID")
    assert made == MessageParts(
        "orders", 2, 41, b"k", b'{"n": 1}', {"vigil-event-id": b"e-1", "empty": b""}, 1_700_000_000_000, "ID"
    )
    change = json.dumps({"op": "c", "before": None, "after": {"id": 1}, "source": {"lsn": 5}, "ts_ms": 3})
    views = [
        view_of(made),
        view_of(parts("cdc.public.orders", change.encode(), key=b'{"id": 1}')),
        view_of(parts("drift.warning", codec.encode("DriftEvent", EXAMPLES["DriftEvent"])), codec),
    ]
    for view in views:
        assert view is not None
        names = [f.name for f in dataclasses.fields(view)]
        assert sorted(vars(view)) == sorted(names)
        assert type(view)(**{name: getattr(view, name) for name in names}) == view
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.topic = "other"  # type: ignore[misc]
