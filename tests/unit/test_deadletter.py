"""Dead letters: the headers (pure) and decode-or-dead-letter with an in-memory producer. No I/O."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Message

from schemas.codec import Codec
from schemas.errors import DecodeError, RetryableError
from schemas.examples import EXAMPLES
from streams.catalog import DLQ
from streams.deadletter import dead_letter, dead_letter_of, decode_or_dead_letter


class RecordingProducer:
    """What decode_or_dead_letter asks of a producer, recorded."""

    def __init__(self) -> None:
        self.produced: list[dict[str, Any]] = []
        self.polls = 0

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.produced.append({"topic": topic, **kwargs})

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def test_dead_letter_keeps_the_original_and_names_the_error() -> None:
    letter = dead_letter(
        topic="drift.events",
        partition=2,
        offset=41,
        key=b"k1",
        value=b"\xff\xfe garbage",
        headers=[("vigil-event-id", b"evt-1"), ("traceparent", "00-abc-01"), ("empty", None)],
        error=DecodeError("not Avro: starts with 'fffe'"),
    )
    assert letter.key == b"k1"
    assert letter.value == b"\xff\xfe garbage"
    assert letter.headers == [
        ("vigil-event-id", b"evt-1"),
        ("traceparent", b"00-abc-01"),
        ("empty", b""),
        ("vigil-error", b"not Avro: starts with 'fffe'"),
        ("vigil-error-type", b"DecodeError"),
        ("vigil-source-topic", b"drift.events"),
        ("vigil-source-partition", b"2"),
        ("vigil-source-offset", b"41"),
        ("vigil-trace-id", b"evt-1"),
    ]


def test_dead_letter_without_event_id_gets_the_position_id() -> None:
    letter = dead_letter(
        topic="t", partition=0, offset=7, key=None, value=None, headers=None, error=ValueError("boom")
    )
    headers = dict(letter.headers)
    assert headers["vigil-event-id"] == b"t/0/7"
    assert headers["vigil-trace-id"] == b"t/0/7"
    assert headers["vigil-error"] == b"boom"
    assert headers["vigil-error-type"] == b"ValueError"


def test_re_dead_lettering_replaces_the_old_error_headers() -> None:
    first = dead_letter(
        topic="a", partition=0, offset=1, key=None, value=b"x", headers=None, error=DecodeError("first")
    )
    second = dead_letter(
        topic=DLQ,
        partition=0,
        offset=9,
        key=None,
        value=b"x",
        headers=first.headers,
        error=DecodeError("second"),
    )
    names = [name for name, _ in second.headers]
    assert names.count("vigil-error") == 1
    assert dict(second.headers)["vigil-error"] == b"second"
    assert dict(second.headers)["vigil-event-id"] == b"a/0/1"  # the original id travels on


def test_dict_headers_are_accepted() -> None:
    letter = dead_letter(
        topic="t", partition=0, offset=0, key=None, value=b"", headers={"h": "v"}, error=DecodeError("r")
    )
    assert ("h", b"v") in letter.headers


def test_dead_letter_of_a_consumed_message() -> None:
    msg = Message(topic="t", partition=1, offset=5, key=b"k", value=b"v", headers=[("a", b"b")])
    letter = dead_letter_of(msg, DecodeError("why"))
    assert (letter.key, letter.value) == (b"k", b"v")
    assert dict(letter.headers)["vigil-source-offset"] == b"5"


def test_valid_message_is_decoded_and_nothing_is_produced() -> None:
    codec = Codec()
    producer = RecordingProducer()
    msg = Message(topic="t", partition=0, offset=3, value=codec.encode("Tick", EXAMPLES["Tick"]))
    decoded = decode_or_dead_letter(msg, codec, producer)
    assert decoded is not None
    assert decoded.record == EXAMPLES["Tick"]
    assert producer.produced == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"garbage", "not Avro"),
        (None, "no value (a tombstone)"),
        (b"\xc3\x01" + bytes(8), "unknown schema fingerprint"),
    ],
)
def test_poison_goes_to_the_dlq_with_the_reason(value: bytes | None, reason: str) -> None:
    producer = RecordingProducer()
    msg = Message(topic="drift.events", partition=1, offset=12, key=b"k", value=value, headers=[("x", b"y")])
    assert decode_or_dead_letter(msg, Codec(), producer) is None
    [sent] = producer.produced
    assert sent["topic"] == DLQ
    assert sent["value"] == value
    assert sent["key"] == b"k"
    headers = dict(sent["headers"])
    assert reason in headers["vigil-error"].decode()
    assert headers["vigil-error-type"] == b"DecodeError"
    assert (
        headers["vigil-source-topic"],
        headers["vigil-source-partition"],
        headers["vigil-source-offset"],
    ) == (
        b"drift.events",
        b"1",
        b"12",
    )
    assert headers["x"] == b"y"
    assert producer.polls == 1


def test_expected_type_mismatch_is_dead_lettered_to_the_given_topic() -> None:
    codec = Codec()
    producer = RecordingProducer()
    msg = Message(topic="t", partition=0, offset=0, value=codec.encode("Tick", EXAMPLES["Tick"]))
    assert decode_or_dead_letter(msg, codec, producer, "my.dlq", expect="DriftEvent") is None
    assert producer.produced[0]["topic"] == "my.dlq"
    assert b"expected a DriftEvent record" in dict(producer.produced[0]["headers"])["vigil-error"]


def test_retryable_errors_are_not_dead_lettered() -> None:
    class DownRegistry:
        def register_schema(self, subject_name: str, schema: Any) -> int:
            raise ConnectionError("down")

        def get_schema(self, schema_id: int) -> Any:
            raise ConnectionError("down")

    producer = RecordingProducer()
    msg = Message(topic="t", partition=0, offset=0, value=b"\x00\x00\x00\x00\x01\x02")
    with pytest.raises(RetryableError):
        decode_or_dead_letter(msg, Codec(registry=DownRegistry()), producer)
    assert producer.produced == []
