"""Event ids and headers of the messages the embedded engine sends (pure)."""

from __future__ import annotations

import json

from connectors.records import (
    EVENT_ID_HEADER,
    TRACE_ID_HEADER,
    EventIds,
    RawRecord,
    cdc_event_id,
    decode_header_value,
    is_snapshot,
    trace_id_for,
)


def change(
    op: str, *, lsn: int, snapshot: str = "false", table: str = "orders", row_id: int = 1
) -> RawRecord:
    value = {
        "before": None if op in ("c", "r") else {"id": row_id},
        "after": None if op == "d" else {"id": row_id},
        "source": {"schema": "public", "table": table, "lsn": lsn, "snapshot": snapshot, "ts_ms": 1700},
        "op": op,
    }
    return RawRecord(f"cdc.public.{table}", json.dumps({"id": row_id}), json.dumps(value))


def headers(message_headers: list[tuple[str, object]]) -> dict[str, str]:
    return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in message_headers}


def test_streamed_change_id_comes_from_connector_lsn_table_and_key() -> None:
    message = EventIds("c1").message(change("c", lsn=42))
    assert message.event_id == cdc_event_id("c1", "public", "orders", '{"id": 1}', lsn=42, snapshot=False)
    assert message.event_id.startswith("cdc:c1:42:public.orders:")
    assert headers(message.headers)[EVENT_ID_HEADER] == message.event_id
    assert headers(message.headers)[TRACE_ID_HEADER] == trace_id_for(message.event_id)
    assert message.source_ts_ms == 1700


def test_ids_are_stable_across_redelivery_and_restarts() -> None:
    first = EventIds("c1").messages([change("c", lsn=1), change("u", lsn=2), change("d", lsn=3)])
    again = EventIds("c1").messages([change("c", lsn=1), change("u", lsn=2), change("d", lsn=3)])
    assert [m.event_id for m in first] == [m.event_id for m in again]
    assert len({m.event_id for m in first}) == 3


def test_ids_differ_by_connector_table_key_and_position() -> None:
    ids = {
        EventIds("c1").message(change("c", lsn=1)).event_id,
        EventIds("c2").message(change("c", lsn=1)).event_id,
        EventIds("c1").message(change("c", lsn=1, table="other")).event_id,
        EventIds("c1").message(change("c", lsn=1, row_id=2)).event_id,
        EventIds("c1").message(change("c", lsn=2)).event_id,
    }
    assert len(ids) == 5


def test_snapshot_rows_ignore_the_shared_snapshot_lsn() -> None:
    a = EventIds("c1").message(change("r", lsn=100, snapshot="true"))
    b = EventIds("c1").message(change("r", lsn=200, snapshot="last"))
    assert (
        a.event_id
        == b.event_id
        == cdc_event_id("c1", "public", "orders", '{"id": 1}', lsn=None, snapshot=True)
    )
    assert ":snapshot:" in a.event_id
    assert [is_snapshot(f) for f in ("true", "first", "last", "incremental", "false", None, False)] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_tombstone_follows_its_delete() -> None:
    ids = EventIds("c1")
    delete = ids.message(change("d", lsn=7))
    tombstone = ids.message(RawRecord("cdc.public.orders", json.dumps({"id": 1}), None))
    assert tombstone.event_id == f"{delete.event_id}:tombstone"
    assert tombstone.value is None
    orphan = EventIds("c1").message(RawRecord("cdc.public.orders", json.dumps({"id": 1}), None))
    assert orphan.event_id.startswith("cdc:c1:tombstone:cdc.public.orders:")


def test_schema_wrapped_values_are_understood() -> None:
    plain = change("c", lsn=5)
    assert plain.value is not None
    wrapped = RawRecord(
        plain.destination, plain.key, json.dumps({"schema": {}, "payload": json.loads(plain.value)})
    )
    assert EventIds("c1").message(wrapped).event_id == EventIds("c1").message(plain).event_id


def test_outbox_event_id_is_the_outbox_row_id_and_trace_is_kept() -> None:
    record = RawRecord(
        "vigil.outbox.order",
        '"o-1"',
        '{"x":1}',
        (("id", '"3f1e-uuid"'), ("type", '"created"'), (TRACE_ID_HEADER, '"trace-1"')),
    )
    message = EventIds("ob", string_keys=True).message(record)
    assert message.event_id == "3f1e-uuid"
    got = headers(message.headers)
    assert got == {
        "id": "3f1e-uuid",
        "type": "created",
        EVENT_ID_HEADER: "3f1e-uuid",
        TRACE_ID_HEADER: "trace-1",
    }
    assert message.key == b"o-1"
    assert message.value == b'{"x":1}'


def test_null_headers_are_dropped_and_replaced() -> None:
    record = RawRecord("vigil.outbox.order", '"o-1"', "{}", (("id", '"u1"'), (TRACE_ID_HEADER, "null")))
    got = headers(EventIds("ob").message(record).headers)
    assert got[TRACE_ID_HEADER] == trace_id_for("u1")
    assert EventIds("ob").message(record).key == b'"o-1"'  # JSON keys stay JSON


def test_other_records_get_a_content_digest() -> None:
    heartbeat = RawRecord("__debezium-heartbeat.cdc", '{"serverName":"cdc"}', '{"ts_ms":1}')
    a = EventIds("c1").message(heartbeat).event_id
    assert a == EventIds("c1").message(heartbeat).event_id
    assert (
        a != EventIds("c1").message(RawRecord(heartbeat.destination, heartbeat.key, '{"ts_ms":2}')).event_id
    )


def test_header_values_are_decoded_like_simple_header_converter() -> None:
    assert decode_header_value('"abc"') == "abc"
    assert decode_header_value("null") is None
    assert decode_header_value(None) is None
    assert decode_header_value("12") == "12"
    assert decode_header_value("not json") == "not json"
