"""Encode and decode Vigil's Avro records in either framing.

Without a schema registry the codec writes Avro single-object encoding (``C3 01`` + CRC-64-AVRO
fingerprint + body) and reads it against the packaged schemas, every version in
``schemas/history/`` included. With a registry it writes the Confluent wire format (``0`` + schema
id + body), registering each record's current schema once under the subject of its full name
(``vigil.DriftEvent``: the record-name strategy, so one record type may travel on any topic).
Either way it reads both framings, resolving an older writer schema to the current reader schema.
A record that needs no resolution (written with the current schema, or of a type Vigil no longer
has) is read by a reader generated for its schema (:mod:`schemas.fastread`), about 1.4 times as
fast as fastavro's; resolution stays with fastavro.

Bad bytes raise :class:`DecodeError` (poison: dead-letter it) with the reason; a registry that cannot
be reached raises :class:`RetryableError`; a record that does not fit its schema raises
:class:`EncodeError`.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import fastavro
from fastavro.validation import ValidationError, validate

from schemas.errors import ConfigurationError, DecodeError, EncodeError, RetryableError
from schemas.fastread import Reader, TrailingBytes, compile_reader
from schemas.framing import (
    CONFLUENT_HEADER_SIZE,
    SINGLE_OBJECT_HEADER_SIZE,
    SINGLE_OBJECT_MARKER,
    ConfluentFrame,
    frame_confluent,
    parse_frame,
)
from schemas.schemaset import SchemaSet, SchemaVersion, default_schema_set, without_docs
from schemas.timestamps import parse_for_reading

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema

Framing = Literal["single-object", "confluent"]
_new_tuple = tuple.__new__


class SchemaRegistry(Protocol):
    """The part of ``confluent_kafka.schema_registry.SchemaRegistryClient`` the codec uses."""

    def register_schema(self, subject_name: str, schema: Schema) -> int: ...

    def get_schema(self, schema_id: int) -> Schema: ...


class Decoded(NamedTuple):
    """A decoded record: its schema's full name, the value (read with the current schema when
    Vigil knows the record, else with the writer's), the framing and which writer schema it had."""

    name: str
    record: dict[str, Any]
    framing: Framing
    writer: str

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class _Reader:
    """How to read one writer schema: a generated reader, else fastavro's arguments; and what to report."""

    full_name: str
    writer: Any
    reader: Any  # None when the writer is the current version
    label: str
    # Generated for a writer read as written (no resolution), when schemas.fastread supports it.
    fast: Reader | None = None

    @classmethod
    def as_written(cls, full_name: str, writer: Any, label: str) -> _Reader:
        return cls(full_name, writer, None, label, compile_reader(writer))


def subject_for(version: SchemaVersion) -> str:
    """Registry subject of a Vigil record (record-name strategy)."""
    return version.full_name


class Codec:
    """Encodes and decodes Vigil's records; builds every reader once, at construction."""

    def __init__(self, schemas: SchemaSet | None = None, registry: SchemaRegistry | None = None) -> None:
        self.schemas = schemas if schemas is not None else default_schema_set()
        self.registry = registry
        # Parsed for reading (see schemas.timestamps), once per version.
        self._reading = {
            version: parse_for_reading(version.raw)
            for version in [*self.schemas.current.values(), *self.schemas.by_fingerprint.values()]
        }
        # Keyed by the whole single-object header: marker and fingerprint.
        self._by_header: dict[bytes, _Reader] = {}
        self._as_written: dict[SchemaVersion, _Reader] = {}
        for fingerprint, version in self.schemas.by_fingerprint.items():
            # A kept version of a record that no longer exists is read as written.
            current = self.schemas.current.get(version.name)
            if current is None or current is version:
                reader = self._as_written[version] = _Reader.as_written(
                    version.full_name, self._reading[version], version.label
                )
            else:
                reader = _Reader(
                    version.full_name, self._reading[version], self._reading[current], version.label
                )
            self._by_header[SINGLE_OBJECT_MARKER + fingerprint.to_bytes(8, "little")] = reader
        self._prefix = {
            name: SINGLE_OBJECT_MARKER + version.fingerprint.to_bytes(8, "little")
            for name, version in self.schemas.current.items()
        }
        self._registered: dict[str, bytes] = {}
        self._by_schema_id: dict[int, _Reader] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_registry_url(cls, url: str | None, schemas: SchemaSet | None = None) -> Codec:
        """A codec for ``VIGIL_SCHEMA_REGISTRY_URL``: single-object encoding when ``url`` is None."""
        if url is None:
            return cls(schemas)
        from confluent_kafka.schema_registry import SchemaRegistryClient

        # new_client: a ``mock://`` URL gives the library's in-memory registry (local experiments).
        return cls(schemas, SchemaRegistryClient.new_client({"url": url}))

    @property
    def framing(self) -> Framing:
        return "single-object" if self.registry is None else "confluent"

    # -- encoding ------------------------------------------------------------------------

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """``record`` as the current version of schema ``name`` (``DriftEvent`` or ``vigil.DriftEvent``)."""
        try:
            version = self.schemas.get(name)
        except KeyError:
            raise EncodeError(
                f"no schema named {name!r}; known: {', '.join(sorted(self.schemas.current))}"
            ) from None
        body = io.BytesIO()
        try:
            fastavro.schemaless_writer(body, version.parsed, record, strict_allow_default=True)
        except Exception as exc:  # fastavro raises TypeError, ValueError, KeyError, ... for a bad record
            raise EncodeError(
                f"{version.name} record does not match its schema: {_explain(version, record, exc)}"
            ) from exc
        if self.registry is None:
            return self._prefix[version.name] + body.getvalue()
        return self._confluent_header(version) + body.getvalue()

    def _confluent_header(self, version: SchemaVersion) -> bytes:
        header = self._registered.get(version.name)
        if header is None:
            schema_id = self._register(version)
            header = frame_confluent(schema_id, b"")
            with self._lock:
                self._registered[version.name] = header
                self._by_schema_id[schema_id] = self._current_reader(version, f"id {schema_id}")
        return header

    def _register(self, version: SchemaVersion) -> int:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        assert self.registry is not None
        subject = subject_for(version)
        try:
            return self.registry.register_schema(subject, Schema(json.dumps(version.raw), "AVRO"))
        except SchemaRegistryError as exc:
            if exc.http_status_code in (409, 422):
                raise ConfigurationError(
                    f"the schema registry refuses {version.full_name} under subject {subject!r}: "
                    f"{exc.error_message}; check the subject's compatibility setting",
                    code=str(exc.error_code),
                ) from exc
            raise RetryableError(
                f"cannot register {version.full_name} with the schema registry: {exc.error_message}",
                code=str(exc.error_code),
            ) from exc
        except Exception as exc:  # httpx and socket errors: the registry is unreachable
            raise RetryableError(
                f"cannot reach the schema registry to register {version.full_name}: {exc}"
            ) from exc

    # -- decoding ------------------------------------------------------------------------

    def decode(self, data: bytes, *, expect: str | None = None) -> Decoded:
        """Decode either framing; ``expect`` (short or full name) rejects any other record type."""
        # The hot path: one dict lookup on the marker and fingerprint of a single-object frame.
        reader = self._by_header.get(data[:SINGLE_OBJECT_HEADER_SIZE])
        framing: Framing
        if reader is not None:
            framing, start = "single-object", SINGLE_OBJECT_HEADER_SIZE
        else:
            reader, framing, start = self._other_frame(data)
        if (
            expect is not None
            and reader.full_name != expect
            and reader.full_name.rsplit(".", 1)[-1] != expect
        ):
            raise DecodeError(f"expected a {expect} record, got {reader.full_name}")
        fast = reader.fast
        if fast is None:
            record = _read_body(data[start:], reader)
        else:
            try:
                record = fast(data, start)
            except Exception as exc:  # InvalidAvro, UnicodeDecodeError, OverflowError: bad bytes
                raise _invalid_body(reader, exc) from exc
        # What Decoded(...) does, without the Python-level __new__ of a NamedTuple (~0.15 µs a record).
        return _new_tuple(Decoded, (reader.full_name, record, framing, reader.label))

    def _other_frame(self, data: bytes) -> tuple[_Reader, Framing, int]:
        """Reader, framing and body offset of anything but a single-object frame of a known schema."""
        if data[:2] == SINGLE_OBJECT_MARKER and len(data) >= SINGLE_OBJECT_HEADER_SIZE:
            raise DecodeError(
                f"unknown schema fingerprint {data[2:SINGLE_OBJECT_HEADER_SIZE].hex()} "
                "(not a Vigil schema, nor any version kept in schemas/history)"
            )
        frame = parse_frame(data)
        assert isinstance(frame, ConfluentFrame)  # a complete single-object frame took the path above
        return self._reader_for_id(frame.schema_id), "confluent", CONFLUENT_HEADER_SIZE

    def _reader_for_id(self, schema_id: int) -> _Reader:
        reader = self._by_schema_id.get(schema_id)
        if reader is not None:
            return reader
        if self.registry is None:
            raise DecodeError(
                f"Confluent wire format (schema id {schema_id}) but no schema registry is configured "
                "(VIGIL_SCHEMA_REGISTRY_URL)"
            )
        schema = self._fetch(schema_id)
        if (schema.schema_type or "AVRO") != "AVRO":
            raise DecodeError(f"schema id {schema_id} is {schema.schema_type}, not Avro")
        if schema.references:
            raise DecodeError(f"schema id {schema_id} uses schema references, which Vigil does not resolve")
        try:
            raw = json.loads(schema.schema_str or "")
            writer = parse_for_reading(raw)
        except Exception as exc:  # a registry schema fastavro cannot parse: nothing can read these bytes
            raise DecodeError(f"schema id {schema_id} from the registry is not valid Avro: {exc}") from exc
        name = writer.get("name", "?") if isinstance(writer, dict) else str(writer)
        current = self.schemas.current_for_full_name(name)
        if current is None:
            reader = _Reader.as_written(name, writer, f"id {schema_id}")
        elif without_docs(raw) == without_docs(current.raw):  # the current version: no resolution
            reader = self._current_reader(current, f"id {schema_id}")
        else:
            reader = _Reader(name, writer, self._reading[current], f"id {schema_id}")
        with self._lock:
            self._by_schema_id[schema_id] = reader
        return reader

    def _current_reader(self, version: SchemaVersion, label: str) -> _Reader:
        """The reader of a current version (compiled once, at construction) under another label."""
        return replace(self._as_written[version], label=label)

    def _fetch(self, schema_id: int) -> Schema:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        assert self.registry is not None
        try:
            return self.registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(
                    f"schema id {schema_id} is not in the schema registry", code=str(exc.error_code)
                ) from exc
            raise RetryableError(
                f"cannot fetch schema id {schema_id} from the registry: {exc.error_message}",
                code=str(exc.error_code),
            ) from exc
        except (
            Exception
        ) as exc:  # httpx and socket errors: the registry is unreachable, the bytes may be fine
            raise RetryableError(
                f"cannot reach the schema registry for schema id {schema_id}: {exc}"
            ) from exc


def _read_body(body: bytes, reader: _Reader) -> dict[str, Any]:
    buffer = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buffer, reader.writer, reader.reader)
    except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ... on bad bytes
        raise _invalid_body(reader, exc) from exc
    if buffer.tell() != len(body):
        raise _invalid_body(reader, TrailingBytes(len(body) - buffer.tell()))
    if not isinstance(record, dict):
        raise DecodeError(f"{reader.full_name} body is not a record")
    return record


def _invalid_body(reader: _Reader, exc: Exception) -> DecodeError:
    if isinstance(exc, TrailingBytes):
        return DecodeError(f"{exc.count} trailing bytes after the {reader.full_name} record")
    return DecodeError(f"invalid {reader.full_name} body ({reader.label}): {type(exc).__name__}: {exc}")


def _explain(version: SchemaVersion, record: Mapping[str, Any], exc: Exception) -> str:
    """fastavro's validator names the offending field; its writer's own error often does not."""
    try:
        validate(record, version.parsed, raise_errors=True, strict=True)
    except ValidationError as invalid:
        return "; ".join(str(e) for e in invalid.errors) or str(invalid)
    except Exception:  # the validator itself choked: fall back to the writer's error
        pass
    return f"{type(exc).__name__}: {exc}"
