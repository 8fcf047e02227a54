"""Avro readers generated from a writer schema at start: the codec's hot decode path.

fastavro's C reader walks the parsed schema for every record and dispatches on type names: about
6.6 µs for a ``DriftEvent``, where ``json.loads`` of the same dict takes about 4.2 µs. A reader
generated for one schema is straight-line Python instead (single-byte varints through lookup
tables, strings by slicing, a run of doubles by one ``struct.unpack_from``, each record built as
one dict display) and reads a ``DriftEvent`` in about 4.6 µs (``python -m bench codec`` measures
the whole ``Codec.decode``).

A generated reader returns what ``fastavro.schemaless_reader(fo, writer_schema)`` returns (no
reader schema: schema resolution stays with fastavro), ``timestamp-micros`` read as in
:mod:`schemas.timestamps`. It rejects, with :class:`InvalidAvro`, some bytes fastavro lets through
although the specification calls them invalid: negative enum indexes, booleans other than 0 and 1,
varints longer than ten bytes or above 64 bits.

:func:`compile_reader` returns ``None`` for what it does not generate (logical types other than
``timestamp-micros``, recursive records, arrays of items that take no bytes): the caller then reads
with fastavro.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from typing import Any

from fastavro.const import AVRO_TYPES

from schemas.timestamps import FAST_TIMESTAMP_MICROS, read_timestamp_micros

Reader = Callable[[bytes, int], dict[str, Any]]
"""``reader(data, start)``: the record whose encoding is ``data[start:]``, to the last byte."""

_TIMESTAMP_MICROS = frozenset({"timestamp-micros", FAST_TIMESTAMP_MICROS})
_FIXED_WIDTH = {"double": "d", "float": "f"}
_MAX_VARINT_BYTES = 10
_EXACT_FLOAT_RANGE = 2**52  # as in schemas.timestamps: the float path is exact below it


class InvalidAvro(ValueError):
    """Bytes that are not an Avro encoding of the reader's schema."""


class TrailingBytes(InvalidAvro):
    """The record ended before the data did."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} trailing bytes after the record")
        self.count = count


class _Unsupported(Exception):
    pass


# Indexed by the first byte of a varint: the value when that byte is the whole varint, else None.
_ZIGZAG: tuple[int | None, ...] = tuple((b >> 1) ^ -(b & 1) if b < 0x80 else None for b in range(256))
# The same for a length (string, bytes), which is never negative: -1 sends to the slow path.
_LENGTH: tuple[int, ...] = tuple(b >> 1 if b < 0x80 and not b & 1 else -1 for b in range(256))
_BOOLEAN: tuple[bool | None, ...] = (False, True) + (None,) * 254


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The zigzag-decoded varint at ``pos`` (any length up to ten bytes) and the position after it."""
    byte = buf[pos]
    value = byte & 0x7F
    shift = 7
    pos += 1
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
    if shift > 7 * _MAX_VARINT_BYTES or value >> 64:
        raise _bad_varint(value, shift)
    return (value >> 1) ^ -(value & 1), pos


def _bad_varint(value: int, shift: int) -> InvalidAvro:
    if shift > 7 * _MAX_VARINT_BYTES:
        return InvalidAvro(f"varint longer than {_MAX_VARINT_BYTES} bytes")
    return InvalidAvro("varint above 64 bits")


def _length(buf: bytes, pos: int) -> tuple[int, int]:
    length, pos = _varint(buf, pos)
    if length < 0:
        raise InvalidAvro(f"negative length {length}")
    return length, pos


def _enum(buf: bytes, pos: int, symbols: tuple[str, ...]) -> tuple[str, int]:
    index, pos = _varint(buf, pos)
    if not 0 <= index < len(symbols):
        raise InvalidAvro(f"enum index {index} out of range (0..{len(symbols) - 1})")
    return symbols[index], pos


def _bad_boolean(byte: int) -> InvalidAvro:
    return InvalidAvro(f"boolean byte {byte:#04x}, expected 0x00 or 0x01")


def _bad_union(index: int, branches: int) -> InvalidAvro:
    return InvalidAvro(f"union index {index} out of range (0..{branches - 1})")


def _too_many(count: int) -> InvalidAvro:
    return InvalidAvro(f"block of {count} items is longer than the data left")


def _end(buf: bytes, pos: int) -> InvalidAvro:
    if pos > len(buf):
        return InvalidAvro("the data ends inside the record")
    return TrailingBytes(len(buf) - pos)


class _Generator:
    """Writes the source of one reader function; constants it needs go in ``namespace``."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.named = dict(named)
        self.namespace: dict[str, Any] = {
            "_ZIGZAG": _ZIGZAG,
            "_LENGTH": _LENGTH,
            "_BOOLEAN": _BOOLEAN,
            "_varint": _varint,
            "_length": _length,
            "_enum": _enum,
            "_bad_varint": _bad_varint,
            "_bad_boolean": _bad_boolean,
            "_bad_union": _bad_union,
            "_too_many": _too_many,
            "_end": _end,
            "_InvalidAvro": InvalidAvro,
            "_StructError": struct.error,
            "_ts_exact": read_timestamp_micros,
            "_fromtimestamp": dt.datetime.fromtimestamp,
            "_UTC": dt.UTC,
        }
        self.building: list[str] = []  # records being generated, to refuse recursion
        self._counter = 0

    def var(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def const(self, value: object, prefix: str) -> str:
        name = self.var(f"_{prefix}")
        self.namespace[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in AVRO_TYPES:
            if schema not in self.named:
                raise _Unsupported(f"unknown named type {schema!r}")
            return self.named[schema]
        if isinstance(schema, dict) and isinstance(schema.get("name"), str):
            self.named.setdefault(schema["name"], schema)
        return schema

    # -- one value into ``target`` -----------------------------------------------------------

    def value(self, schema: Any, target: str, indent: int) -> None:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            self.union(schema, target, indent)
            return
        if isinstance(schema, str):
            self.primitive(schema, target, indent)
            return
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            if kind != "long" or logical not in _TIMESTAMP_MICROS:
                raise _Unsupported(f"logical type {logical!r} on {kind!r}")
            self.timestamp_micros(target, indent)
        elif kind == "record":
            self.record(schema, target, indent)
        elif kind == "enum":
            self.enum(schema, target, indent)
        elif kind == "array":
            self.array(schema, target, indent)
        elif kind == "map":
            self.map(schema, target, indent)
        elif kind == "fixed":
            size = int(schema["size"])
            self.emit(indent, f"{target} = buf[pos:pos + {size}]")
            self.emit(indent, f"pos += {size}")
        elif isinstance(kind, str) and kind in AVRO_TYPES:
            self.value(kind, target, indent)
        else:
            raise _Unsupported(f"type {kind!r}")

    def primitive(self, kind: str, target: str, indent: int) -> None:
        if kind == "null":
            self.emit(indent, f"{target} = None")
        elif kind in ("int", "long"):
            self.varint(target, indent)
        elif kind in ("string", "bytes"):
            end = self.var("end")
            self.emit(indent, f"{end} = _LENGTH[buf[pos]]")
            self.emit(indent, f"if {end} < 0:")
            self.emit(indent + 1, f"{end}, pos = _length(buf, pos)")
            self.emit(indent, "else:")
            self.emit(indent + 1, "pos += 1")
            self.emit(indent, f"{end} += pos")
            decode = ".decode()" if kind == "string" else ""
            self.emit(indent, f"{target} = buf[pos:{end}]{decode}")
            self.emit(indent, f"pos = {end}")
        elif kind == "boolean":
            self.emit(indent, f"{target} = _BOOLEAN[buf[pos]]")
            self.emit(indent, f"if {target} is None:")
            self.emit(indent + 1, "raise _bad_boolean(buf[pos])")
            self.emit(indent, "pos += 1")
        elif kind in _FIXED_WIDTH:
            self.fixed_width([kind], [target], indent)
        else:
            raise _Unsupported(f"type {kind!r}")

    def varint(self, target: str, indent: int) -> None:
        self.emit(indent, f"{target} = _ZIGZAG[buf[pos]]")
        self.emit(indent, f"if {target} is None:")
        self.emit(indent + 1, f"{target}, pos = _varint(buf, pos)")
        self.emit(indent, "else:")
        self.emit(indent + 1, "pos += 1")

    def fixed_width(self, kinds: list[str], targets: list[str], indent: int) -> None:
        layout = struct.Struct("<" + "".join(_FIXED_WIDTH[k] for k in kinds))
        unpack = self.const(layout.unpack_from, "unpack")
        self.emit(indent, f"{', '.join(targets)}, = {unpack}(buf, pos)")
        self.emit(indent, f"pos += {layout.size}")

    def fixed_width_kind(self, schema: Any) -> str | None:
        """``double`` or ``float`` when ``schema`` is one of them, plain, else None."""
        schema = self.resolve(schema)
        if isinstance(schema, dict) and "logicalType" not in schema:
            schema = schema["type"]
        return schema if isinstance(schema, str) and schema in _FIXED_WIDTH else None

    def timestamp_micros(self, target: str, indent: int) -> None:
        micros, byte, shift = self.var("micros"), self.var("byte"), self.var("shift")
        # Timestamps of this century take eight bytes: the varint loop inlined, without a call.
        self.emit(indent, f"{byte} = buf[pos]")
        self.emit(indent, "pos += 1")
        self.emit(indent, f"{micros} = {byte} & 0x7F")
        self.emit(indent, f"{shift} = 7")
        self.emit(indent, f"while {byte} & 0x80:")
        self.emit(indent + 1, f"{byte} = buf[pos]")
        self.emit(indent + 1, "pos += 1")
        self.emit(indent + 1, f"{micros} |= ({byte} & 0x7F) << {shift}")
        self.emit(indent + 1, f"{shift} += 7")
        self.emit(indent, f"if {shift} > {7 * _MAX_VARINT_BYTES} or {micros} >> 64:")
        self.emit(indent + 1, f"raise _bad_varint({micros}, {shift})")
        self.emit(indent, f"{micros} = ({micros} >> 1) ^ -({micros} & 1)")
        # The float path of schemas.timestamps.read_timestamp_micros, inlined.
        self.emit(indent, f"if -{_EXACT_FLOAT_RANGE} < {micros} < {_EXACT_FLOAT_RANGE}:")
        self.emit(indent + 1, f"{target} = _fromtimestamp({micros} / 1e6, _UTC)")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{target} = _ts_exact({micros})")

    def record(self, schema: dict[str, Any], target: str, indent: int) -> None:
        name = schema.get("name", "?")
        if name in self.building:
            raise _Unsupported(f"recursive record {name!r}")
        self.building.append(name)
        items: list[str] = []
        run_kinds: list[str] = []
        run_targets: list[str] = []
        for field in schema["fields"]:
            local = self.var("f")
            items.append(f"{field['name']!r}: {local}")
            width = self.fixed_width_kind(field["type"])
            if width is not None:
                # Consecutive floats and doubles are read by one struct.unpack_from.
                run_kinds.append(width)
                run_targets.append(local)
                continue
            if run_kinds:
                self.fixed_width(run_kinds, run_targets, indent)
                run_kinds, run_targets = [], []
            self.value(field["type"], local, indent)
        if run_kinds:
            self.fixed_width(run_kinds, run_targets, indent)
        self.emit(indent, f"{target} = {{{', '.join(items)}}}")
        self.building.pop()

    def enum(self, schema: dict[str, Any], target: str, indent: int) -> None:
        symbols = tuple(schema["symbols"])
        by_byte = tuple(
            symbols[b >> 1] if b < 0x80 and not b & 1 and b >> 1 < len(symbols) else None for b in range(256)
        )
        table = self.const(by_byte, "symbol")
        self.emit(indent, f"{target} = {table}[buf[pos]]")
        self.emit(indent, f"if {target} is None:")
        self.emit(indent + 1, f"{target}, pos = _enum(buf, pos, {self.const(symbols, 'symbols')})")
        self.emit(indent, "else:")
        self.emit(indent + 1, "pos += 1")

    def union(self, branches: list[Any], target: str, indent: int) -> None:
        index = self.var("branch")
        self.varint(index, indent)
        for i, branch in enumerate(branches):
            self.emit(indent, f"{'if' if i == 0 else 'elif'} {index} == {i}:")
            self.value(branch, target, indent + 1)
        self.emit(indent, "else:")
        self.emit(indent + 1, f"raise _bad_union({index}, {len(branches)})")

    def blocks(self, indent: int, items_min_size: int) -> tuple[str, int]:
        """Open the block loop of an array or map; returns the count variable and the body's indent."""
        if items_min_size < 1:
            # A huge count of items that take no bytes could not be refused by its length.
            raise _Unsupported("array of items that take no bytes")
        count = self.var("count")
        self.emit(indent, "while True:")
        self.varint(count, indent + 1)
        self.emit(indent + 1, f"if not {count}:")
        self.emit(indent + 2, "break")
        self.emit(indent + 1, f"if {count} < 0:  # a negative count is followed by the block's size")
        self.emit(indent + 2, f"{count} = -{count}")
        self.emit(indent + 2, "_, pos = _varint(buf, pos)")
        self.emit(indent + 1, f"if {count} > len(buf) - pos:")
        self.emit(indent + 2, f"raise _too_many({count})")
        self.emit(indent + 1, f"for _ in range({count}):")
        return count, indent + 2

    def array(self, schema: dict[str, Any], target: str, indent: int) -> None:
        item = self.var("item")
        self.emit(indent, f"{target} = []")
        _, body = self.blocks(indent, self.min_size(schema["items"]))
        self.value(schema["items"], item, body)
        self.emit(body, f"{target}.append({item})")

    def map(self, schema: dict[str, Any], target: str, indent: int) -> None:
        key, item = self.var("key"), self.var("item")
        self.emit(indent, f"{target} = {{}}")
        _, body = self.blocks(indent, 1)
        self.primitive("string", key, body)
        self.value(schema["values"], item, body)
        self.emit(body, f"{target}[{key}] = {item}")

    def min_size(self, schema: Any) -> int:
        """The fewest bytes a value of ``schema`` takes (records: the sum of their fields)."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return 1
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind == "null":
            return 0
        if kind in _FIXED_WIDTH:
            return struct.calcsize(_FIXED_WIDTH[kind])
        if kind == "fixed":
            return int(schema["size"])
        if kind == "record":
            if schema.get("name") in self.building:
                return 0  # recursion: refused when generated
            return sum(self.min_size(field["type"]) for field in schema["fields"])
        if isinstance(schema, dict) and kind in AVRO_TYPES and kind not in ("enum", "array", "map"):
            return self.min_size(kind)
        return 1

    # -- the function ------------------------------------------------------------------------

    def function(self, schema: dict[str, Any]) -> str:
        self.emit(0, "def read(buf, pos):")
        self.emit(1, "try:")
        self.record(schema, "record", 2)
        self.emit(1, "except (IndexError, _StructError):")
        self.emit(2, 'raise _InvalidAvro("the data ends inside the record") from None')
        self.emit(1, "if pos != len(buf):")
        self.emit(2, "raise _end(buf, pos)")
        self.emit(1, "return record")
        return "\n".join(self.lines) + "\n"


def reader_source(schema: Any) -> str | None:
    """The generated source of :func:`compile_reader`'s reader, or None when it has none."""
    generated = _generate(schema)
    return None if generated is None else generated[0]


def compile_reader(schema: Any) -> Reader | None:
    """A reader for records written with ``schema`` (fastavro's parsed form), or None (use fastavro)."""
    try:
        generated = _generate(schema)
        if generated is None:
            return None
        source, namespace = generated
        code = compile(source, f"<avro reader for {schema.get('name', '?')}>", "exec")
    except (SyntaxError, RecursionError, MemoryError):  # too deeply nested for Python: fastavro reads it
        return None
    # The source holds no text of the schema but its field names, as repr() literals.
    exec(code, namespace)
    reader: Reader = namespace["read"]
    return reader


def _generate(schema: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    generator = _Generator(schema.get("__named_schemas", {}))
    try:
        source = generator.function(schema)
    except _Unsupported:
        return None
    return source, generator.namespace
