"""The pure parts of ``vigil inspect tail``: decoding for display, start offsets, caught-up. No I/O."""

from __future__ import annotations

import json

from confluent_kafka import Message

from ops.tail import caught_up, decode_value, human_line, jsonable, start_offsets, tailed
from schemas.codec import Codec
from schemas.examples import EXAMPLES
from schemas.framing import frame_confluent

CODEC = Codec()


def test_avro_single_object_is_decoded_to_json_types() -> None:
    shown = decode_value(CODEC.encode("DriftEvent", EXAMPLES["DriftEvent"]), CODEC)
    assert shown.format == "avro:vigil.DriftEvent"
    assert isinstance(shown.value, dict)
    assert shown.value["observed_at"] == "2024-05-17T09:30:15.123456+00:00"
    json.dumps(shown.value)


def test_debezium_json_envelope_is_unwrapped() -> None:
    envelope = {"schema": {"type": "struct"}, "payload": {"op": "c", "after": {"id": 1}}}
    shown = decode_value(json.dumps(envelope).encode(), CODEC)
    assert shown.format == "debezium-json"
    assert shown.value == {"op": "c", "after": {"id": 1}}


def test_plain_json() -> None:
    shown = decode_value(b'{"op": "u", "before": null}', CODEC)
    assert (shown.format, shown.value) == ("json", {"op": "u", "before": None})


def test_text_bytes_and_null() -> None:
    assert decode_value(b"hello", CODEC).format == "text"
    shown = decode_value(b"\xff\xfe", CODEC)
    assert (shown.format, shown.value) == ("bytes", {"base64": "//4="})
    assert decode_value(None, CODEC).format == "null"


def test_undecodable_avro_says_why() -> None:
    shown = decode_value(b"\xc3\x01" + bytes(8) + b"x", CODEC)
    assert shown.format.startswith("undecodable (unknown schema fingerprint")


def test_confluent_without_registry_names_the_setting() -> None:
    shown = decode_value(frame_confluent(7, b"\x02"), CODEC)
    assert "schema id 7" in shown.format
    assert "VIGIL_SCHEMA_REGISTRY_URL" in shown.format


def test_jsonable() -> None:
    assert jsonable({"b": b"\x00ok", "l": (1, 2)}) == {"b": "\x00ok", "l": [1, 2]}
    assert jsonable(b"\xff") == {"base64": "/w=="}


def test_start_offsets_from_beginning_or_last_n() -> None:
    marks = {0: (0, 100), 1: (50, 52), 2: (0, 0)}
    assert start_offsets(marks, None, filtering=False) == {0: 0, 1: 50, 2: 0}
    assert start_offsets(marks, 5, filtering=False) == {0: 95, 1: 50, 2: 0}
    # The last N matching a key may be anywhere: read everything.
    assert start_offsets(marks, 5, filtering=True) == {0: 0, 1: 50, 2: 0}


def test_caught_up_needs_every_partition_at_its_watermark() -> None:
    marks = {0: (0, 10), 1: (0, 0)}
    assert not caught_up({0: 9}, marks)
    assert caught_up({0: 10}, marks)
    # A position past the watermark (it moved since it was read) is caught up too.
    assert caught_up({0: 15}, marks)


def test_tailed_message_as_json_and_human() -> None:
    msg = Message(
        topic="drift.events",
        partition=1,
        offset=9,
        key=b"k",
        value=CODEC.encode("Tick", EXAMPLES["Tick"]),
        headers=[("vigil-event-id", b"e1"), ("bin", b"\xff")],
        timestamp=(1, 1715938215123),
    )
    line = tailed(msg, CODEC).as_json()
    assert line["topic"] == "drift.events"
    assert (line["partition"], line["offset"], line["key"]) == (1, 9, "k")
    assert line["timestamp"] == "2024-05-17T09:30:15.123000+00:00"
    assert line["headers"] == {"vigil-event-id": "e1", "bin": {"base64": "/w=="}}
    assert line["format"] == "avro:vigil.Tick"
    assert isinstance(line["value"], dict) and line["value"]["schedule_id"] == "nightly-report"
    json.dumps(line)
    text = human_line(tailed(msg, CODEC)).plain
    assert text.startswith('drift.events[1]@9 2024-05-17T09:30:15.123+00:00 key="k"')
    assert "nightly-report" in text


def test_registry_outage_shows_the_bytes_instead_of_failing() -> None:
    class DownRegistry:
        def register_schema(self, subject_name: str, schema: object) -> int:
            raise ConnectionError("down")

        def get_schema(self, schema_id: int) -> object:
            raise ConnectionError("down")

    shown = decode_value(frame_confluent(3, b"\x02"), Codec(registry=DownRegistry()))
    assert shown.format.startswith("not decoded (cannot reach the schema registry")
    assert shown.value == {"base64": "AAAAAAMC"}
