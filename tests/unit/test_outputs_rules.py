"""What output can be written: topic names, payload encoding, outbox topics, delivery errors. No I/O."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from confluent_kafka import KafkaError

from agents.context import Context
from agents.outbox_mapping import check_aggregatetype, dumps_payload
from schemas.errors import OutputError
from streams.naming import topic_name_problem
from streams.produce import is_permanent


@pytest.mark.parametrize("name", ["orders", "cdc.public.orders", "a_b-c.9", "x" * 249])
def test_legal_topic_names(name: str) -> None:
    assert topic_name_problem(name) is None


@pytest.mark.parametrize("name", ["", ".", "..", "has space", "ünïcode", "a/b", "x" * 250])
def test_illegal_topic_names_say_why(name: str) -> None:
    assert topic_name_problem(name)


class Colour(enum.Enum):
    RED = "red"


def test_payloads_encode_the_common_non_json_types_as_the_ecosystem_does() -> None:
    payload = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "day": date(2026, 1, 2),
        "amount": Decimal("10.10"),
        "id": uuid.UUID(int=1),
        "colour": Colour.RED,
    }
    assert dumps_payload(payload) == (
        '{"at":"2026-01-02T03:04:05+00:00","day":"2026-01-02","amount":"10.10",'
        '"id":"00000000-0000-0000-0000-000000000001","colour":"red"}'
    )


@pytest.mark.parametrize("payload", [{"x": object()}, {"x": float("nan")}, {"x": b"bytes"}])
def test_a_payload_json_cannot_hold_is_an_output_error(payload: object) -> None:
    with pytest.raises(OutputError, match="not JSON-serializable"):
        dumps_payload(payload)


def test_an_aggregatetype_must_make_a_legal_topic() -> None:
    check_aggregatetype("notifications")
    with pytest.raises(OutputError, match="valid outbox topic"):
        check_aggregatetype("no spaces")


def test_context_refuses_bad_output_when_asked_for_it() -> None:
    ctx = Context(agent="a", event_id="e", trace_id="t", trigger="topic", attempt=1)
    with pytest.raises(OutputError):
        ctx.emit("bad type", key="k", payload={})
    with pytest.raises(OutputError):
        ctx.emit("ok", key="k", payload={"x": object()})
    with pytest.raises(OutputError):
        ctx.send("bad topic!", b"v")
    assert ctx.output.outbox == [] and ctx.output.sends == []
    ctx.send("out", b"v")
    assert ctx.output.sends[0].trace_id == "t" and ctx.output.sends[0].source_event_id == "e"


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, True),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, True),
        (KafkaError.UNKNOWN_TOPIC_OR_PART, True),
        (KafkaError._MSG_TIMED_OUT, False),
        (KafkaError._TRANSPORT, False),
        (KafkaError.NOT_LEADER_FOR_PARTITION, False),
    ],
)
def test_permanent_delivery_errors_are_told_from_transient_ones(code: int, permanent: bool) -> None:
    assert is_permanent(KafkaError(code)) is permanent
