"""Vigil's Avro schemas, parsed once: the current version of each record and its history.

``schemas/<Name>.avsc`` is the current version; ``schemas/history/<Name>/v<N>.avsc`` keeps every
released version, the newest equal to the current one (docs aside). The codec writes with the
current version and reads any version whose fingerprint it knows, resolving it to the current one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from schemas.errors import ConfigurationError
from schemas.framing import schema_fingerprint

SCHEMA_DIR = Path(__file__).parent
HISTORY_DIRNAME = "history"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


@dataclass(frozen=True, eq=False)
class SchemaVersion:
    """One version of one record schema, parsed."""

    name: str
    full_name: str
    version: int | None  # None: the current version in schemas/<Name>.avsc
    raw: Mapping[str, Any] = field(repr=False)
    parsed: Any = field(repr=False)
    canonical: str = field(repr=False)
    fingerprint: int

    @property
    def label(self) -> str:
        return f"{self.name} (current)" if self.version is None else f"{self.name} v{self.version}"


def parse_version(raw: object, *, version: int | None = None, origin: str = "<schema>") -> SchemaVersion:
    """Parse one record schema given as JSON data; :class:`ConfigurationError` names ``origin`` when invalid."""
    if not isinstance(raw, dict) or raw.get("type") != "record" or not isinstance(raw.get("name"), str):
        raise ConfigurationError(f"{origin}: a Vigil schema must be a named Avro record")
    try:
        parsed = fastavro.parse_schema(raw, named_schemas={})
        canonical = to_parsing_canonical_form(raw)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise ConfigurationError(f"{origin}: invalid Avro schema: {exc}") from exc
    name = raw["name"]
    namespace = raw.get("namespace")
    full_name = name if "." in name or not namespace else f"{namespace}.{name}"
    return SchemaVersion(
        name=full_name.rsplit(".", 1)[-1],
        full_name=full_name,
        version=version,
        raw=raw,
        parsed=parsed,
        canonical=canonical,
        fingerprint=schema_fingerprint(canonical),
    )


def without_docs(schema: object) -> object:
    """``schema`` with every ``doc`` attribute removed, to compare versions regardless of wording."""
    if isinstance(schema, dict):
        return {k: without_docs(v) for k, v in schema.items() if k != "doc"}
    if isinstance(schema, list):
        return [without_docs(v) for v in schema]
    return schema


@dataclass(frozen=True)
class SchemaSet:
    """Every schema Vigil knows: current versions by name, history, and writers by fingerprint."""

    current: Mapping[str, SchemaVersion]
    history: Mapping[str, Sequence[SchemaVersion]]
    by_fingerprint: Mapping[int, SchemaVersion]

    def get(self, name: str) -> SchemaVersion:
        """The current version of ``name`` (short ``DriftEvent`` or full ``vigil.DriftEvent``); KeyError if unknown."""
        short = name.rsplit(".", 1)[-1]
        version = self.current.get(short)
        if version is None or (name != short and version.full_name != name):
            raise KeyError(name)
        return version

    def current_for_full_name(self, full_name: str) -> SchemaVersion | None:
        version = self.current.get(full_name.rsplit(".", 1)[-1])
        return version if version is not None and version.full_name == full_name else None


def build_schema_set(
    current: Mapping[str, SchemaVersion], history: Mapping[str, Sequence[SchemaVersion]]
) -> SchemaSet:
    """Index parsed versions by fingerprint; the current version wins a fingerprint it shares."""
    by_fingerprint: dict[int, SchemaVersion] = {}
    for versions in history.values():
        for version in versions:
            by_fingerprint[version.fingerprint] = version
    for version in current.values():
        by_fingerprint[version.fingerprint] = version
    return SchemaSet(
        current=dict(current),
        history={k: tuple(v) for k, v in history.items()},
        by_fingerprint=by_fingerprint,
    )


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: cannot read schema: {exc}") from exc


def load_history(history_dir: Path) -> dict[str, list[SchemaVersion]]:
    """``history/<Name>/v<N>.avsc`` files, parsed and ordered by version."""
    history: dict[str, list[SchemaVersion]] = {}
    if not history_dir.is_dir():
        return history
    for name_dir in sorted(p for p in history_dir.iterdir() if p.is_dir()):
        versions = []
        for path in name_dir.glob("*.avsc"):
            match = _VERSION_FILE.match(path.name)
            if match is None:
                raise ConfigurationError(f"{path}: history files are named v<N>.avsc")
            version = parse_version(_read_json(path), version=int(match.group(1)), origin=str(path))
            if version.name != name_dir.name:
                raise ConfigurationError(
                    f"{path}: record {version.name!r} in the history of {name_dir.name!r}"
                )
            versions.append(version)
        history[name_dir.name] = sorted(versions, key=lambda v: v.version or 0)
    return history


def load_schema_set(directory: Path = SCHEMA_DIR) -> SchemaSet:
    """Parse ``directory/*.avsc`` and ``directory/history/*/*.avsc`` once."""
    current: dict[str, SchemaVersion] = {}
    for path in sorted(directory.glob("*.avsc")):
        version = parse_version(_read_json(path), origin=str(path))
        if version.name != path.stem:
            raise ConfigurationError(
                f"{path}: file holds record {version.name!r}; name it {version.name}.avsc"
            )
        current[version.name] = version
    return build_schema_set(current, load_history(directory / HISTORY_DIRNAME))


_default: SchemaSet | None = None


def default_schema_set() -> SchemaSet:
    """The packaged schemas, parsed on first use and shared."""
    global _default
    if _default is None:
        _default = load_schema_set()
    return _default
