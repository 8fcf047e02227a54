"""Outbox rows become messages in the Outbox Event Router's shape, and sinks read them back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from agents.outbox_mapping import (
    OutboxRow,
    decode_outbox_message,
    header,
    header_list,
    idempotency_key,
    to_message,
)
from schemas.errors import DecodeError, PoisonError

ROOT = Path(__file__).resolve().parents[2]
ROW_ID = uuid.UUID("0b6c3a8e-6d0f-4a7e-9a57-4c2f2f7c1d11")


def _row(**changes: object) -> OutboxRow:
    fields: dict[str, object] = {
        "id": ROW_ID,
        "aggregatetype": "order",
        "aggregateid": "örder-42",
        "type": "OrderFailed",
        "payload": {"order": 42, "note": "naïve"},
        "seq": 7,
        "trace_id": "trace-1",
    }
    fields.update(changes)
    return OutboxRow(**fields)  # type: ignore[arg-type]


def test_row_maps_to_router_shaped_message() -> None:
    message = to_message(_row())
    assert message.topic == "vigil.outbox.order"
    assert message.key == "örder-42".encode()
    assert json.loads(message.value or b"") == {"order": 42, "note": "naïve"}
    assert dict(message.headers) == {
        "id": str(ROW_ID).encode(),
        "vigil-event-id": str(ROW_ID).encode(),
        "vigil-trace-id": b"trace-1",
        "type": b"OrderFailed",
    }


def test_missing_trace_id_falls_back_to_the_outbox_id() -> None:
    assert dict(to_message(_row(trace_id=None)).headers)["vigil-trace-id"] == str(ROW_ID).encode()


def test_null_payload_is_a_null_value_and_scalars_stay_json() -> None:
    assert to_message(_row(payload=None)).value is None
    assert to_message(_row(payload="plain")).value == b'"plain"'
    assert to_message(_row(payload=[1, 2])).value == b"[1,2]"


def test_round_trip_through_the_sink_decoder() -> None:
    message = to_message(_row())
    event = decode_outbox_message(message.topic, message.key, message.value, list(message.headers))
    assert event.id == str(ROW_ID)
    assert (event.key, event.type, event.trace_id) == ("örder-42", "OrderFailed", "trace-1")
    assert event.payload == {"order": 42, "note": "naïve"}


def test_idempotency_key_prefers_id_then_vigil_event_id_and_normalises() -> None:
    other = uuid.uuid4()
    assert idempotency_key([("vigil-event-id", str(other).encode())]) == str(other)
    assert idempotency_key([("id", str(ROW_ID).encode()), ("vigil-event-id", str(other).encode())]) == str(
        ROW_ID
    )
    # Kafka Connect's JSON header converter quotes strings; upper case is the same UUID.
    assert idempotency_key([("id", f'"{str(ROW_ID).upper()}"'.encode())]) == str(ROW_ID)


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ([], b"{}"),
        ([("id", None)], b"{}"),
        ([("id", b"not-a-uuid")], b"{}"),
        ([("id", str(ROW_ID).encode())], b"{not json"),
        ([("id", str(ROW_ID).encode())], b"\xff\xfe"),
    ],
)
def test_messages_that_are_not_outbox_events_are_poison(
    headers: list[tuple[str, bytes | None]], value: bytes
) -> None:
    with pytest.raises(DecodeError) as info:
        decode_outbox_message("vigil.outbox.order", b"k", value, headers)
    assert isinstance(info.value, PoisonError)


def test_header_helpers_accept_both_client_shapes() -> None:
    assert header_list({"a": "x", "b": None}) == [("a", b"x"), ("b", None)]
    assert header_list([("a", b"x")]) == [("a", b"x")]
    assert header_list(None) == []
    assert header([("a", b"1"), ("a", b"2")], "a") == "2"
    assert header([("a", b"\xff")], "a") is None


def test_the_relay_publishes_postgres_text_of_the_payload_as_it_is() -> None:
    # what the relay reads back with payload::text: published without a decode and encode again
    text = '{"note": "naïve", "order": 42, "amount": 1.10}'
    message = to_message(_row(payload=None, payload_json=text))
    assert message.value == text.encode()
    assert json.loads(message.value or b"") == {"note": "naïve", "order": 42, "amount": 1.10}
    assert to_message(_row(payload=None, payload_json=None)).value is None  # SQL NULL


def test_an_emitted_row_is_the_row_the_constructor_makes() -> None:
    import dataclasses
    import uuid

    from agents.outbox_mapping import OutboxRow

    row_id = uuid.uuid4()
    made = OutboxRow(row_id, "orders", "k1", "created", {"a": 1}, trace_id="t1", payload_json='{"a":1}')
    emitted = OutboxRow.emitted(row_id, "orders", "k1", "created", {"a": 1}, "t1", '{"a":1}')
    assert emitted == made and repr(emitted) == repr(made)
    assert vars(emitted) == vars(made)
    assert list(vars(emitted)) == [f.name for f in dataclasses.fields(OutboxRow)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        emitted.seq = 3  # type: ignore[misc]
