"""The codec and its framings: golden round trips in both framings, typed errors. No I/O.

There is no schema registry server here: the Confluent wire format is exercised against
confluent-kafka's own in-memory ``MockSchemaRegistryClient`` and a small fake that counts calls.
A real registry is only exercised in docker-compose.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas.codec import Codec
from schemas.errors import ConfigurationError, DecodeError, EncodeError, PoisonError, RetryableError
from schemas.examples import EXAMPLES
from schemas.framing import (
    ConfluentFrame,
    SingleObjectFrame,
    crc64_avro,
    frame_confluent,
    frame_single_object,
    parse_frame,
    schema_fingerprint,
)
from schemas.schemaset import default_schema_set

NAMES = sorted(EXAMPLES)

# The exact bytes of each example in single-object encoding: the wire format is a contract.
GOLDEN_SINGLE_OBJECT = {
    "DriftEvent": "c3019b9e9cbd99f38e406470726f6d6574686575732f6f72646572732e6c6174656e63795f7039392f323032342d30352d31375430393a33303a31355a1470726f6d657468657573246f72646572732e6c6174656e63795f7039390000000000c8794002c0160000000000486a4000000000009040400000000000005e40000000000060784080c60a0c7a73636f7265713d0ad7a370184002040e736572766963650c6f726465727306656e760870726f640080e8a6fcdfa88c062034633166306539613262376433633535",
    "Tick": "c301406ec6103561ecfc466e696768746c792d7265706f72742f323032342d30352d31375430393a33303a30305a001c6e696768746c792d7265706f72740080d8f0eddfa88c0680e8a6fcdfa88c0602287b227265706f7274223a20226f7264657273227d",
    "ProcessedEvent": "c301793aba67fb07c53116696e7665737469676174656470726f6d6574686575732f6f72646572732e6c6174656e63795f7039392f323032342d30352d31375430393a33303a31355a4830623666326135652d376434632d346535392d396135312d3366316332643865376236300080fa9afedfa88c061c64726966742e637269746963616c049ca0024835643063316630652d336235612d346637652d386135332d316337653662326439663430",
    "RunRecord": "c301bed4b59cfbdd369f4830623666326135652d376434632d346535392d396135312d3366316332643865376236301272656d6564696174656470726f6d6574686575732f6f72646572732e6c6174656e63795f7039392f323032342d30352d31375430393a33303a31355a1c64726966742e637269746963616c020280e8a6fcdfa88c0602e09986fedfa88c0600042871756572795f726563656e745f6465706c6f797390b6a7fcdfa88c060000000000c0444001021c7b226465706c6f7973223a20327d24656d69743a6e6f74696669636174696f6e7380c582fedfa88c06000000000000d03f010000",
    "Heartbeat": "c3016a5cbf1ed26d11514e6e696768746c792d65746c2f323032342d30352d31375430393a33303a31352e3132333435365a166e696768746c792d65746c0080e8a6fcdfa88c060280e8e1d9e3ad8c060208686f73740a65746c2d3100",
    "DeadLetter": "c301876bab59e4fc3ffab2016e6f74204176726f3a207374617274732077697468202766666666272c2065787065637465642063333031202873696e676c652d6f626a65637429206f722030302028436f6e666c75656e74207769726520666f726d617429164465636f64654572726f721864726966742e6576656e7473009a0100000080e8a6fcdfa88c06",
    "ReviewItem": "c301e8677943877433d51a7265766965772d3030303034321272656d6564696174656470726f6d6574686575732f6f72646572732e6c6174656e63795f7039392f323032342d30352d31375430393a33303a31355a4830623666326135652d376434632d346535392d396135312d336631633264386537623630627363616c652d646f776e206f6620612070726f64756374696f6e2073657276696365206e6565647320617070726f76616c86017b226f7574626f78223a205b7b2261676772656761746574797065223a2022616374696f6e73222c20227061796c6f6164223a207b227363616c65223a20307d7d5d7d0080e8a6fcdfa88c060000",
}


class CountingRegistry:
    """The two calls the codec makes, in memory, counted; ``fail`` makes them raise."""

    def __init__(self) -> None:
        self.schemas: dict[int, Schema] = {}
        self.ids: dict[tuple[str, str], int] = {}
        self.register_calls = 0
        self.get_calls = 0
        self.fail: Exception | None = None

    def register_schema(self, subject_name: str, schema: Schema) -> int:
        self.register_calls += 1
        if self.fail is not None:
            raise self.fail
        key = (subject_name, schema.schema_str or "")
        if key not in self.ids:
            self.ids[key] = len(self.schemas) + 100
            self.schemas[self.ids[key]] = schema
        return self.ids[key]

    def get_schema(self, schema_id: int) -> Schema:
        self.get_calls += 1
        if self.fail is not None:
            raise self.fail
        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return self.schemas[schema_id]


# -- framing -----------------------------------------------------------------------------


def test_crc64_avro_matches_fastavro_and_the_spec_vector() -> None:
    # fastavro's hex is the little-endian byte order of the single-object header.
    assert crc64_avro(b'"int"').to_bytes(8, "little").hex() == fastavro_fingerprint('"int"', "CRC-64-AVRO")
    assert crc64_avro(b"") == 0xC15D213AA4D7A795
    for version in default_schema_set().current.values():
        canonical = to_parsing_canonical_form(version.raw)
        assert schema_fingerprint(canonical).to_bytes(8, "little").hex() == fastavro_fingerprint(
            canonical, "CRC-64-AVRO"
        )


def test_single_object_frame_round_trips() -> None:
    data = frame_single_object(0x0102030405060708, b"body")
    assert data == b"\xc3\x01\x08\x07\x06\x05\x04\x03\x02\x01body"
    assert parse_frame(data) == SingleObjectFrame(0x0102030405060708, b"body")


def test_confluent_frame_round_trips() -> None:
    data = frame_confluent(258, b"body")
    assert data == b"\x00\x00\x00\x01\x02body"
    assert parse_frame(data) == ConfluentFrame(258, b"body")
    with pytest.raises(ValueError, match="4-byte"):
        frame_confluent(2**32, b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty message"),
        (b"\xc3\x01\x00", "truncated single-object header"),
        (b"\x00\x00\x01", "truncated Confluent wire header"),
        (b'{"json": true}', "not Avro: starts with '7b22'"),
    ],
)
def test_parse_frame_rejects_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_frame(data)
    assert reason in caught.value.reason
    assert isinstance(caught.value, PoisonError)


# -- golden round trips, both framings -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_golden_single_object(name: str) -> None:
    codec = Codec()
    encoded = codec.encode(name, EXAMPLES[name])
    assert encoded.hex() == GOLDEN_SINGLE_OBJECT[name]
    decoded = codec.decode(bytes.fromhex(GOLDEN_SINGLE_OBJECT[name]))
    assert decoded.record == EXAMPLES[name]
    assert decoded.name == f"vigil.{name}"
    assert decoded.short_name == name
    assert decoded.framing == "single-object"


@pytest.mark.parametrize("name", NAMES)
def test_golden_confluent_with_the_librarys_mock_registry(name: str) -> None:
    registry = SchemaRegistryClient.new_client({"url": f"mock://golden-{name}"})
    codec = Codec(registry=registry)
    encoded = codec.encode(name, EXAMPLES[name])
    single = bytes.fromhex(GOLDEN_SINGLE_OBJECT[name])
    # Same Avro body, different header.
    assert encoded[0] == 0
    assert encoded[5:] == single[10:]
    schema_id = int.from_bytes(encoded[1:5], "big")
    assert registry.get_schema(schema_id).schema_str is not None
    # A separate reader (another process) with only the registry in common decodes it.
    decoded = Codec(registry=registry).decode(encoded)
    assert decoded.record == EXAMPLES[name]
    assert decoded.framing == "confluent"
    assert decoded.writer == f"id {schema_id}"


def test_confluent_registers_under_the_record_name_once() -> None:
    registry = CountingRegistry()
    codec = Codec(registry=registry)
    for _ in range(5):
        codec.encode("DriftEvent", EXAMPLES["DriftEvent"])
    assert registry.register_calls == 1
    assert [subject for subject, _ in registry.ids] == ["vigil.DriftEvent"]
    reader = Codec(registry=registry)
    data = codec.encode("DriftEvent", EXAMPLES["DriftEvent"])
    for _ in range(5):
        reader.decode(data)
    assert registry.get_calls == 1


def test_a_registry_codec_still_reads_single_object_bytes() -> None:
    data = Codec().encode("Tick", EXAMPLES["Tick"])
    assert Codec(registry=CountingRegistry()).decode(data).record == EXAMPLES["Tick"]


def test_confluent_old_writer_resolves_to_the_current_schema() -> None:
    """A DriftEvent v1 registered by an older Vigil is read with the current schema."""
    registry = CountingRegistry()
    v1 = default_schema_set().history["DriftEvent"][0]
    schema_id = registry.register_schema("vigil.DriftEvent", Schema(json.dumps(v1.raw), "AVRO"))
    old = {k: v for k, v in EXAMPLES["DriftEvent"].items() if k != "fingerprint"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, v1.parsed, old)
    decoded = Codec(registry=registry).decode(frame_confluent(schema_id, body.getvalue()))
    assert decoded.record == {**old, "fingerprint": ""}


def test_confluent_foreign_record_is_read_with_the_writer_schema() -> None:
    registry = CountingRegistry()
    foreign = {
        "type": "record",
        "name": "Envelope",
        "namespace": "cdc.public.orders",
        "fields": [{"name": "op", "type": "string"}],
    }
    schema_id = registry.register_schema("cdc.public.orders-value", Schema(json.dumps(foreign), "AVRO"))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(foreign), {"op": "c"})
    decoded = Codec(registry=registry).decode(frame_confluent(schema_id, body.getvalue()))
    assert decoded.name == "cdc.public.orders.Envelope"
    assert decoded.record == {"op": "c"}


# -- typed errors ------------------------------------------------------------------------


def test_unknown_fingerprint_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown schema fingerprint 0000000000000000"):
        Codec().decode(frame_single_object(0, b"\x00"))


def test_confluent_without_registry_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="no schema registry is configured"):
        Codec().decode(frame_confluent(7, b"\x00"))


def test_unknown_schema_id_is_a_decode_error() -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://unknown-id"})
    with pytest.raises(DecodeError, match="schema id 999 is not in the schema registry"):
        Codec(registry=registry).decode(frame_confluent(999, b"\x00"))


def test_non_avro_registry_schema_is_a_decode_error() -> None:
    registry = CountingRegistry()
    schema_id = registry.register_schema("x", Schema('{"type": "object"}', "JSON"))
    with pytest.raises(DecodeError, match="is JSON, not Avro"):
        Codec(registry=registry).decode(frame_confluent(schema_id, b"{}"))


@pytest.mark.parametrize(
    "failure",
    [SchemaRegistryError(500, 50001, "backend down"), ConnectionError("connection refused")],
    ids=["http-500", "unreachable"],
)
def test_registry_outage_is_retryable_not_poison(failure: Exception) -> None:
    registry = CountingRegistry()
    registry.fail = failure
    with pytest.raises(RetryableError):
        Codec(registry=registry).decode(frame_confluent(1, b"\x00"))
    with pytest.raises(RetryableError):
        Codec(registry=registry).encode("Tick", EXAMPLES["Tick"])


def test_registry_refusing_a_schema_is_a_configuration_error() -> None:
    registry = CountingRegistry()
    registry.fail = SchemaRegistryError(409, 409, "Schema being registered is incompatible")
    with pytest.raises(ConfigurationError, match="compatibility"):
        Codec(registry=registry).encode("Tick", EXAMPLES["Tick"])


def test_truncated_body_is_a_decode_error_naming_the_record() -> None:
    data = Codec().encode("DriftEvent", EXAMPLES["DriftEvent"])
    with pytest.raises(DecodeError, match=r"invalid vigil\.DriftEvent body"):
        Codec().decode(data[:-5])


def test_trailing_bytes_are_a_decode_error() -> None:
    data = Codec().encode("Heartbeat", EXAMPLES["Heartbeat"])
    with pytest.raises(DecodeError, match="3 trailing bytes"):
        Codec().decode(data + b"abc")


def test_expect_rejects_another_record_type() -> None:
    codec = Codec()
    data = codec.encode("Tick", EXAMPLES["Tick"])
    assert codec.decode(data, expect="vigil.Tick").record == EXAMPLES["Tick"]
    assert codec.decode(data, expect="Tick").record == EXAMPLES["Tick"]
    with pytest.raises(DecodeError, match=r"expected a DriftEvent record, got vigil\.Tick"):
        codec.decode(data, expect="DriftEvent")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"value": "high"}, "value"),
        ({"severity": "panic"}, "severity"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_record_is_an_encode_error_naming_the_field(change: dict[str, Any], words: str) -> None:
    with pytest.raises(EncodeError, match=words):
        Codec().encode("DriftEvent", {**EXAMPLES["DriftEvent"], **change})


def test_missing_field_without_default_is_an_encode_error() -> None:
    record = {k: v for k, v in EXAMPLES["DriftEvent"].items() if k != "metric"}
    with pytest.raises(EncodeError, match="DriftEvent"):
        Codec().encode("DriftEvent", record)


def test_missing_field_with_default_takes_the_default() -> None:
    codec = Codec()
    record = {k: v for k, v in EXAMPLES["DriftEvent"].items() if k not in {"fingerprint", "labels"}}
    decoded = codec.decode(codec.encode("DriftEvent", record)).record
    assert decoded["fingerprint"] == ""
    assert decoded["labels"] == {}


def test_unknown_schema_name_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="no schema named 'Nope'"):
        Codec().encode("Nope", {})
    with pytest.raises(EncodeError):
        Codec().encode("other.DriftEvent", EXAMPLES["DriftEvent"])


def test_from_registry_url() -> None:
    assert Codec.from_registry_url(None).framing == "single-object"
    assert Codec.from_registry_url("mock://from-url").framing == "confluent"
