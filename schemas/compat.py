"""Schema evolution rules: can a reader with the new schema read data written with an old one?

:func:`backward_incompatibilities` walks two schemas (plain JSON data) by the Avro resolution
rules and names every offending field: a field added without a default, a type changed to one the
old type does not promote to, an enum symbol or union branch dropped, a logical type changed.
:func:`roundtrip_problems` checks the same thing by example: records generated from the old schema,
written with it and read back with (writer=old, reader=new). :func:`history_problems` applies both
to every version kept in ``schemas/history/``. No I/O.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.utils import generate_many

from schemas.schemaset import SchemaSet, SchemaVersion, without_docs

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed"})
_SELF_DESCRIBED = PRIMITIVES | NAMED | {"array", "map"}
#: Writer type -> reader types it may be read as (Avro specification, "Schema Resolution").
PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader schema cannot read data of a writer schema; ``path`` names the field."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class _Names:
    """The named types (records, enums, fixed) one schema defines, by full name."""

    def __init__(self, schema: object) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema, None)

    def _collect(self, schema: object, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in NAMED:
                full = full_name(schema, namespace)
                self.types[full] = schema
                namespace = full.rpartition(".")[0] or None
                for f in schema.get("fields", []) if kind == "record" else []:
                    self._collect(f.get("type"), namespace)
            elif kind == "array":
                self._collect(schema.get("items"), namespace)
            elif kind == "map":
                self._collect(schema.get("values"), namespace)
            elif isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def resolve(self, schema: object, namespace: str | None) -> object:
        """Follow a reference by name, or a ``{"type": <schema>}`` wrapper, to the definition."""
        while True:
            if isinstance(schema, str):
                if schema in PRIMITIVES:
                    return schema
                full = schema if "." in schema or namespace is None else f"{namespace}.{schema}"
                return self.types.get(full, self.types.get(schema, schema))
            if isinstance(schema, dict):
                inner = schema.get("type")
                if isinstance(inner, dict | list) or (
                    isinstance(inner, str) and inner not in _SELF_DESCRIBED
                ):
                    schema = inner
                    continue
            return schema


def full_name(schema: Mapping[str, Any], namespace: str | None) -> str:
    name = str(schema.get("name"))
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def _kind(schema: object) -> str:
    """``int``, ``record``, ``union``, ... of a resolved schema."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        return str(schema.get("type"))
    return repr(schema)


def _logical(schema: object) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _describe(schema: object) -> str:
    kind = _kind(schema)
    if kind in NAMED and isinstance(schema, dict):
        return f"{kind} {schema.get('name')}"
    if kind == "array" and isinstance(schema, dict):
        return f"array<{_describe(schema.get('items'))}>"
    if kind == "map" and isinstance(schema, dict):
        return f"map<{_describe(schema.get('values'))}>"
    if kind == "union" and isinstance(schema, list):
        return "[" + ", ".join(_describe(b) for b in schema) + "]"
    logical = _logical(schema)
    return f"{kind} ({logical})" if logical else kind


def _short(name: object) -> str:
    return str(name).rsplit(".", 1)[-1]


class _Checker:
    def __init__(self, writer: object, reader: object) -> None:
        self.writer_names = _Names(writer)
        self.reader_names = _Names(reader)
        self.problems: list[Incompatibility] = []
        self._seen: set[tuple[str, str]] = set()

    def _w(self, schema: object, ns: str | None) -> object:
        return self.writer_names.resolve(schema, ns)

    def _r(self, schema: object, ns: str | None) -> object:
        return self.reader_names.resolve(schema, ns)

    def matches(self, writer: object, reader: object) -> bool:
        """Whether the two (resolved) schemas are of kinds the resolution rules pair up."""
        wk, rk = _kind(writer), _kind(reader)
        if wk in NAMED or rk in NAMED:
            if wk != rk or not isinstance(writer, dict) or not isinstance(reader, dict):
                return False
            aliases = {_short(a) for a in reader.get("aliases", [])}
            return _short(writer.get("name")) in {_short(reader.get("name")), *aliases}
        return wk == rk or rk in PROMOTIONS.get(wk, frozenset())

    def check(
        self,
        writer: object,
        reader: object,
        path: str,
        wns: str | None,
        rns: str | None,
        *,
        branch: bool = False,
    ) -> None:
        writer, reader = self._w(writer, wns), self._r(reader, rns)
        wk, rk = _kind(writer), _kind(reader)
        if wk == "union" and isinstance(writer, list):
            for member in writer:
                self.check(member, reader, path, wns, rns, branch=True)
            return
        if rk == "union" and isinstance(reader, list):
            branches = [self._r(b, rns) for b in reader]
            same = [b for b in branches if _kind(b) == wk and self.matches(writer, b)]
            promoted = [b for b in branches if self.matches(writer, b)]
            chosen = (same or promoted or [None])[0]
            if chosen is None:
                self.problems.append(
                    Incompatibility(
                        path, f"type {_describe(writer)} is not in the new union {_describe(reader)}"
                    )
                )
                return
            self.check(writer, chosen, path, wns, rns)
            return
        if not self.matches(writer, reader):
            self.problems.append(
                Incompatibility(
                    path,
                    f"old union branch {_describe(writer)} cannot be read as {_describe(reader)}"
                    if branch
                    else f"type changed from {_describe(writer)} to {_describe(reader)}",
                )
            )
            return
        if _logical(writer) != _logical(reader) and wk == rk:
            self.problems.append(
                Incompatibility(
                    path,
                    f"logical type changed from {_logical(writer) or 'none'} to {_logical(reader) or 'none'}",
                )
            )
        if wk == "record" and isinstance(writer, dict) and isinstance(reader, dict):
            self._check_record(writer, reader, path, wns, rns)
        elif wk == "enum" and isinstance(writer, dict) and isinstance(reader, dict):
            missing = [s for s in writer.get("symbols", []) if s not in reader.get("symbols", [])]
            if missing and "default" not in reader:
                self.problems.append(
                    Incompatibility(
                        path,
                        f"enum {reader.get('name')} lost symbol(s) {', '.join(missing)} and has no default",
                    )
                )
        elif wk == "fixed" and isinstance(writer, dict) and isinstance(reader, dict):
            if writer.get("size") != reader.get("size"):
                self.problems.append(
                    Incompatibility(
                        path, f"fixed size changed from {writer.get('size')} to {reader.get('size')}"
                    )
                )
        elif wk == "array" and isinstance(writer, dict) and isinstance(reader, dict):
            self.check(writer.get("items"), reader.get("items"), f"{path}[]", wns, rns)
        elif wk == "map" and isinstance(writer, dict) and isinstance(reader, dict):
            self.check(writer.get("values"), reader.get("values"), f"{path}{{}}", wns, rns)

    def _check_record(
        self, writer: dict[str, Any], reader: dict[str, Any], path: str, wns: str | None, rns: str | None
    ) -> None:
        wfull, rfull = full_name(writer, wns), full_name(reader, rns)
        key = (wfull, rfull)
        if key in self._seen:  # checked already (a recursive type, or a type used twice)
            return
        self._seen.add(key)
        wns, rns = wfull.rpartition(".")[0] or None, rfull.rpartition(".")[0] or None
        writer_fields = {f["name"]: f for f in writer.get("fields", [])}
        for rfield in reader.get("fields", []):
            name = rfield["name"]
            field_path = f"{path}.{name}"
            candidates = [name, *rfield.get("aliases", [])]
            wfield = next((writer_fields[c] for c in candidates if c in writer_fields), None)
            if wfield is None:
                if "default" not in rfield:
                    self.problems.append(
                        Incompatibility(
                            field_path,
                            "field added without a default: data written with the old schema has no value for it",
                        )
                    )
                continue
            self.check(wfield.get("type"), rfield.get("type"), field_path, wns, rns)


def backward_incompatibilities(writer: object, reader: object) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer`` (empty: it can). Schemas as JSON data."""
    checker = _Checker(writer, reader)
    root = _short(writer.get("name")) if isinstance(writer, dict) else "<root>"
    checker.check(writer, reader, root, None, None)
    return checker.problems


def roundtrip_problems(
    writer: SchemaVersion, reader: SchemaVersion, records: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Write each record with ``writer``, read it with (writer, reader); describe each failure."""
    problems = []
    for index, record in enumerate(records):
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, writer.parsed, record)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, writer.parsed, reader.parsed)
        except Exception as exc:  # any failure is the finding
            problems.append(f"sample {index}: {type(exc).__name__}: {exc}")
    return problems


def sample_records(version: SchemaVersion, count: int) -> list[dict[str, Any]]:
    """Random records valid for ``version`` (fastavro's generator)."""
    return [dict(r) for r in generate_many(version.parsed, count)]


def history_problems(schemas: SchemaSet, *, samples: int = 50) -> list[str]:
    """Everything wrong with the history: a current schema not frozen as its newest version, gaps in
    version numbers, and any kept version the current schema cannot read (field named)."""
    problems: list[str] = []
    for name, current in sorted(schemas.current.items()):
        versions = list(schemas.history.get(name, ()))
        if not versions:
            problems.append(f"{name}: no history; copy schemas/{name}.avsc to schemas/history/{name}/v1.avsc")
            continue
        numbers = [v.version for v in versions]
        if numbers != list(range(1, len(versions) + 1)):
            problems.append(f"{name}: history versions {numbers} are not v1..v{len(versions)}")
        newest = versions[-1]
        if without_docs(newest.raw) != without_docs(current.raw):
            problems.append(
                f"{name}: schemas/{name}.avsc differs from its newest kept version v{newest.version}; "
                f"if the change is intended, copy it to schemas/history/{name}/v{len(versions) + 1}.avsc"
            )
        for old in versions:
            for incompatibility in backward_incompatibilities(old.raw, current.raw):
                problems.append(f"{name}: cannot read v{old.version}: {incompatibility}")
            for problem in roundtrip_problems(old, current, sample_records(old, samples)):
                problems.append(
                    f"{name}: v{old.version} data does not resolve to the current schema: {problem}"
                )
    return problems
