"""Property tests: random valid records round-trip; random bytes raise nothing but DecodeError."""

from __future__ import annotations

import datetime as dt
from typing import Any

from confluent_kafka.schema_registry import Schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.errors import DecodeError
from schemas.examples import EXAMPLES
from schemas.framing import frame_confluent, frame_single_object
from schemas.schemaset import default_schema_set

SCHEMAS = default_schema_set()
CODEC = Codec()
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TIMESTAMPS = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "string": st.text(max_size=40),
    "bytes": st.binary(max_size=40),
}


def records(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """A strategy of values valid for an Avro schema (JSON data, as in the .avsc files)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        return _PRIMITIVES[schema] if schema in _PRIMITIVES else records(named[schema], named)
    if isinstance(schema, list):
        return st.one_of([records(branch, named) for branch in schema])
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-micros":
        return _TIMESTAMPS
    if kind == "record":
        named[schema["name"]] = schema
        return st.fixed_dictionaries({f["name"]: records(f["type"], named) for f in schema["fields"]})
    if kind == "enum":
        named[schema["name"]] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(records(schema["items"], named), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=12), records(schema["values"], named), max_size=4)
    return records(kind, named)


ANY_RECORD = st.sampled_from(sorted(SCHEMAS.current)).flatmap(
    lambda name: st.tuples(st.just(name), records(SCHEMAS.current[name].raw))
)


@PROPERTY
@given(ANY_RECORD)
def test_random_valid_records_round_trip_single_object(named_record: tuple[str, dict[str, Any]]) -> None:
    name, record = named_record
    decoded = CODEC.decode(CODEC.encode(name, record))
    assert decoded.short_name == name
    assert decoded.record == record


class _Registry:
    def __init__(self) -> None:
        self.schemas: dict[int, Schema] = {}

    def register_schema(self, subject_name: str, schema: Schema) -> int:
        self.schemas[len(self.schemas) + 1] = schema
        return len(self.schemas)

    def get_schema(self, schema_id: int) -> Schema:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return self.schemas[schema_id]


REGISTRY = _Registry()
REGISTRY_CODEC = Codec(registry=REGISTRY)


@PROPERTY
@given(ANY_RECORD)
def test_random_valid_records_round_trip_confluent(named_record: tuple[str, dict[str, Any]]) -> None:
    name, record = named_record
    encoded = REGISTRY_CODEC.encode(name, record)
    decoded = Codec(registry=REGISTRY).decode(encoded)
    assert decoded.record == record


def _decode_or_typed_error(codec: Codec, data: bytes) -> None:
    try:
        codec.decode(data)
    except DecodeError as exc:
        assert exc.reason


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    _decode_or_typed_error(CODEC, data)
    _decode_or_typed_error(REGISTRY_CODEC, data)


# Random bodies behind valid headers reach fastavro, where the interesting failures are.
KNOWN_FINGERPRINTS = sorted(SCHEMAS.by_fingerprint)


@PROPERTY
@given(st.sampled_from(KNOWN_FINGERPRINTS), st.binary(max_size=300))
def test_random_body_behind_a_known_fingerprint_raises_only_decode_error(
    fingerprint: int, body: bytes
) -> None:
    _decode_or_typed_error(CODEC, frame_single_object(fingerprint, body))


@PROPERTY
@given(st.sampled_from(sorted(SCHEMAS.current)), st.binary(max_size=300))
def test_random_body_behind_a_registered_id_raises_only_decode_error(name: str, body: bytes) -> None:
    header = REGISTRY_CODEC.encode(name, _example(name))[:5]
    _decode_or_typed_error(REGISTRY_CODEC, header + body)
    _decode_or_typed_error(REGISTRY_CODEC, frame_confluent(10_000, body))


@PROPERTY
@given(ANY_RECORD, st.data())
def test_corrupted_valid_messages_raise_only_decode_error(
    named_record: tuple[str, Any], data: st.DataObject
) -> None:
    name, record = named_record
    encoded = bytearray(CODEC.encode(name, record))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    _decode_or_typed_error(CODEC, bytes(encoded[:cut]))


def _example(name: str) -> dict[str, Any]:
    return EXAMPLES[name]
