"""The generated Avro readers of schemas.fastread, checked against fastavro's reader. No I/O.

For every schema Vigil knows (current and history) and a schema using every supported type: valid
records read back as fastavro reads them; any bytes either read as fastavro reads them or raise
one of the reader's few errors; what the generator does not support is left to fastavro.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.errors import DecodeError
from schemas.examples import EXAMPLES
from schemas.fastread import InvalidAvro, Reader, TrailingBytes, compile_reader, reader_source
from schemas.framing import frame_single_object
from schemas.schemaset import SchemaVersion, build_schema_set, default_schema_set, parse_version
from schemas.timestamps import parse_for_reading
from tests.unit.test_codec_properties import _Registry, records

SCHEMAS = default_schema_set()
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# What a generated reader raises on bad bytes; the codec turns each into a DecodeError.
READER_ERRORS = (InvalidAvro, UnicodeDecodeError, OverflowError)

EVERYTHING = {
    "type": "record",
    "name": "Everything",
    "namespace": "test",
    "fields": [
        {"name": "n", "type": "null"},
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "single", "type": "float"},
        {"name": "pair", "type": {"type": "double"}},
        {"name": "raw", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "maybe_at", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {
            "name": "color",
            "type": {"type": "enum", "name": "Color", "symbols": [f"c{i}" for i in range(100)]},
        },
        {"name": "colors", "type": {"type": "array", "items": "Color"}},
        {"name": "choice", "type": ["string", "long", "null", "double", "boolean", "bytes"]},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x", "type": "double"},
                    {"name": "y", "type": "float"},
                    {"name": "z", "type": "double"},
                    {"name": "tags", "type": {"type": "map", "values": {"type": "array", "items": "int"}}},
                ],
            },
        },
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
        {"name": "by_name", "type": {"type": "map", "values": ["null", "Inner"]}},
        # Field names that are the generated reader's own local names.
        {"name": "buf", "type": "string"},
        {"name": "pos", "type": "long"},
        {"name": "record", "type": "double"},
    ],
}


def every_version() -> list[SchemaVersion]:
    return [*SCHEMAS.current.values(), *(v for versions in SCHEMAS.history.values() for v in versions)]


VERSIONS = {version.label: version for version in every_version()}
TESTED = {**{label: version.raw for label, version in VERSIONS.items()}, "Everything": EVERYTHING}
PARSED = {label: parse_for_reading(raw) for label, raw in TESTED.items()}
READERS: dict[str, Reader] = {}
for _label, _parsed in PARSED.items():
    _reader = compile_reader(_parsed)
    assert _reader is not None, _label
    READERS[_label] = _reader


def encode(label: str, record: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, PARSED[label], record)
    return body.getvalue()


def fastavro_read(label: str, body: bytes) -> tuple[Any, int]:
    buffer = io.BytesIO(body)
    return fastavro.schemaless_reader(buffer, PARSED[label], None), buffer.tell()


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types, and floats alike to the bit of their repr (NaN included)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def agrees_with_fastavro(label: str, body: bytes, start: int = 0) -> None:
    """The generated reader reads ``body`` as fastavro does, or refuses it with one of its errors."""
    try:
        fast = READERS[label](body, start)
    except READER_ERRORS:
        return
    expected, end = fastavro_read(label, body[start:])
    assert end == len(body) - start
    assert same(fast, expected), (fast, expected)


ANY_VALID = st.sampled_from(sorted(TESTED)).flatmap(
    lambda label: st.tuples(st.just(label), records(TESTED[label]))
)


# -- coverage ----------------------------------------------------------------------------------


def test_every_vigil_schema_version_has_a_generated_reader() -> None:
    codec = Codec()
    for reader in codec._by_header.values():
        assert (reader.fast is not None) == (reader.reader is None), reader.label


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_golden_examples_read_as_fastavro_reads_them(name: str) -> None:
    label = SCHEMAS.current[name].label
    body = encode(label, EXAMPLES[name])
    assert same(READERS[label](body, 0), fastavro_read(label, body)[0])
    assert READERS[label](body, 0) == EXAMPLES[name]


def test_reader_starts_at_the_given_offset() -> None:
    label = SCHEMAS.current["DriftEvent"].label
    data = b"header" + encode(label, EXAMPLES["DriftEvent"])
    assert READERS[label](data, len(b"header")) == EXAMPLES["DriftEvent"]


def test_runs_of_doubles_are_read_by_one_unpack() -> None:
    source = reader_source(PARSED["Everything"])
    assert source is not None
    assert "pos += 20" in source  # Inner.x, .y, .z: double, float, double


# -- properties --------------------------------------------------------------------------------


@PROPERTY
@given(ANY_VALID)
def test_random_valid_records_read_as_fastavro_reads_them(labelled: tuple[str, dict[str, Any]]) -> None:
    label, record = labelled
    body = encode(label, record)
    fast = READERS[label](body, 0)
    expected, _ = fastavro_read(label, body)
    assert same(fast, expected)
    assert fast == record


@PROPERTY
@given(st.sampled_from(sorted(TESTED)), st.binary(max_size=300))
def test_random_bytes_read_as_fastavro_or_raise_a_reader_error(label: str, body: bytes) -> None:
    agrees_with_fastavro(label, body)


@PROPERTY
@given(ANY_VALID, st.data())
def test_corrupted_records_read_as_fastavro_or_raise_a_reader_error(
    labelled: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    label, record = labelled
    body = bytearray(encode(label, record))
    if body:
        for _ in range(data.draw(st.integers(1, 3))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    extra = data.draw(st.binary(max_size=3))
    agrees_with_fastavro(label, bytes(body[:cut]) + extra)


# -- hand-made encodings -----------------------------------------------------------------------

SIMPLE = {
    "type": "record",
    "name": "Simple",
    "fields": [
        {"name": "count", "type": "long"},
        {"name": "flag", "type": "boolean"},
        {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["low", "high"]}},
        {"name": "labels", "type": {"type": "map", "values": "string"}},
        {"name": "items", "type": {"type": "array", "items": "long"}},
        {"name": "note", "type": ["null", "string"]},
        {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
    ],
}
SIMPLE_READER = compile_reader(fastavro.parse_schema(SIMPLE))


def simple(data: bytes) -> Any:
    assert SIMPLE_READER is not None
    return SIMPLE_READER(data, 0)


def fastavro_simple(data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(SIMPLE), None)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x02\x01\x02\x00\x00\x00ab", id="canonical"),
        pytest.param(b"\x80\x00\x01\x82\x00\x00\x00\x00ab", id="non-minimal varints"),
        pytest.param(b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00ab", id="max long"),
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00ab", id="min long"),
        # A negative block count is followed by the block's size in bytes.
        pytest.param(b"\x00\x00\x00\x01\x08\x02k\x02v\x00\x03\x04\x02\x04\x00\x00ab", id="sized blocks"),
        pytest.param(b"\x00\x00\x00\x02\x02k\x02v\x02\x02k\x02w\x00\x00\x00ab", id="two blocks"),
        pytest.param(b"\x00\x00\x00\x00\x04\x02\x04\x02\x06\x00\x02\x08h\xc3\xa9!ab", id="items and note"),
    ],
)
def test_valid_encodings_read_as_fastavro_reads_them(data: bytes) -> None:
    assert same(simple(data), fastavro_simple(data))


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"\x02\x01\x02\x00\x00\x00a", InvalidAvro, "ends inside the record"),
        (b"\x02\x01", InvalidAvro, "ends inside the record"),
        (b"", InvalidAvro, "ends inside the record"),
        (b"\x02\x01\x02\x00\x00\x00abc", TrailingBytes, "1 trailing bytes"),
        (b"\x02\x02\x02\x00\x00\x00ab", InvalidAvro, "boolean byte 0x02"),
        (b"\x02\x01\x01\x00\x00\x00ab", InvalidAvro, "enum index -1"),
        (b"\x02\x01\x04\x00\x00\x00ab", InvalidAvro, "enum index 2"),
        (b"\x02\x01\x02\x00\x00\x04ab", InvalidAvro, "union index 2"),
        (b"\x02\x01\x02\x02\x01k\x00\x00\x00ab", InvalidAvro, "negative length"),
        (b"\xff" * 10 + b"\x01", InvalidAvro, "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x7f", InvalidAvro, "above 64 bits"),
        (b"\x02\x01\x02\xfe\xff\xff\xff\x0f", InvalidAvro, "longer than the data left"),
        (b"\x02\x01\x02\x00\x00\x02\x04\xff\xfeab", UnicodeDecodeError, "utf-8"),
    ],
)
def test_invalid_encodings_raise_a_reader_error(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        simple(data)


def test_out_of_range_timestamp_is_an_overflow_error() -> None:
    reader = compile_reader(
        parse_for_reading(_record_of({"type": "long", "logicalType": "timestamp-micros"}))
    )
    assert reader is not None
    assert reader(b"\x00", 0) == {"f": dt.datetime(1970, 1, 1, tzinfo=dt.UTC)}
    with pytest.raises(OverflowError):
        reader(b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0)  # the largest long: year 294247


# -- left to fastavro --------------------------------------------------------------------------


def _record_of(field_type: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param(_record_of({"type": "string", "logicalType": "uuid"}), id="uuid"),
        pytest.param(_record_of({"type": "int", "logicalType": "date"}), id="date"),
        pytest.param(
            _record_of({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}), id="decimal"
        ),
        pytest.param(_record_of({"type": "long", "logicalType": "timestamp-millis"}), id="timestamp-millis"),
        pytest.param(_record_of({"type": "array", "items": "null"}), id="array of nulls"),
        pytest.param(
            {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "next", "type": ["null", "Node"]}],
            },
            id="recursive",
        ),
    ],
)
def test_unsupported_schemas_have_no_generated_reader(schema: dict[str, Any]) -> None:
    assert compile_reader(fastavro.parse_schema(schema)) is None


def test_schema_nested_deeper_than_python_blocks_has_no_generated_reader() -> None:
    items: Any = "long"
    for _ in range(12):  # each array level opens two blocks; Python allows twenty
        items = {"type": "array", "items": items}
    assert compile_reader(fastavro.parse_schema(_record_of(items))) is None


def test_not_a_record_has_no_generated_reader() -> None:
    assert compile_reader(fastavro.parse_schema("string")) is None


def test_codec_reads_unsupported_schemas_with_fastavro() -> None:
    raw = {
        "type": "record",
        "name": "Ident",
        "namespace": "test",
        "fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}],
    }
    version = parse_version(raw)
    codec = Codec(build_schema_set({"Ident": version}, {}))
    value = uuid.UUID("0b6f2a5e-7d4c-4e59-9a51-3f1c2d8e7b60")
    assert codec._by_header[frame_single_object(version.fingerprint, b"")].fast is None
    assert codec.decode(codec.encode("Ident", {"id": value})).record == {"id": value}
    with pytest.raises(DecodeError, match="2 trailing bytes"):
        codec.decode(codec.encode("Ident", {"id": value}) + b"xx")


def test_confluent_framing_uses_the_generated_reader() -> None:
    registry = _Registry()
    data = Codec(registry=registry).encode("DriftEvent", EXAMPLES["DriftEvent"])
    reader = Codec(registry=registry)  # a fresh codec: the schema comes from the registry
    assert reader.decode(data).record == EXAMPLES["DriftEvent"]
    assert reader._by_schema_id[1].fast is not None
    assert reader._by_schema_id[1].label == "id 1"


def test_codec_reports_generated_reader_errors_as_decode_errors() -> None:
    codec = Codec()
    data = codec.encode("DriftEvent", EXAMPLES["DriftEvent"])
    with pytest.raises(DecodeError, match=r"invalid vigil\.DriftEvent body \(DriftEvent \(current\)\)"):
        codec.decode(data[:-1])
    with pytest.raises(DecodeError, match=r"1 trailing bytes after the vigil\.DriftEvent record"):
        codec.decode(data + b"x")
