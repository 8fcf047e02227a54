"""The schema files, their history and the evolution rules. No I/O beyond reading the packaged files."""

from __future__ import annotations

import ast
import copy
import datetime as dt
import io
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest

from schemas.codec import Codec
from schemas.compat import backward_incompatibilities, history_problems, roundtrip_problems, sample_records
from schemas.errors import ConfigurationError
from schemas.examples import EXAMPLES
from schemas.framing import frame_single_object
from schemas.schemaset import SCHEMA_DIR, load_schema_set, parse_version

EXPECTED = {"DriftEvent", "Tick", "ProcessedEvent", "RunRecord", "Heartbeat", "DeadLetter", "ReviewItem"}
SCHEMAS = load_schema_set()


def _fields(schema: object) -> list[tuple[str, dict[str, Any]]]:
    """Every (record name, field) pair in a schema, nested records included."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, list):
        for branch in schema:
            out += _fields(branch)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for f in schema["fields"]:
                out.append((schema["name"], f))
                out += _fields(f["type"])
        for key in ("items", "values"):
            if key in schema:
                out += _fields(schema[key])
        if isinstance(schema.get("type"), dict | list):
            out += _fields(schema["type"])
    return out


def test_every_record_of_the_issue_has_a_schema() -> None:
    assert set(SCHEMAS.current) == EXPECTED
    assert set(EXAMPLES) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_is_namespaced_and_documented(name: str) -> None:
    version = SCHEMAS.current[name]
    assert version.full_name == f"vigil.{name}"
    assert version.raw.get("doc"), f"{name} has no doc"
    undocumented = [f"{record}.{f['name']}" for record, f in _fields(version.raw) if not f.get("doc")]
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_timestamps_use_logical_types(name: str) -> None:
    for record, f in _fields(SCHEMAS.current[name].raw):
        if f["name"].endswith("_at") or f["name"] in {"slot_time"}:
            branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
            logical = [b.get("logicalType") for b in branches if isinstance(b, dict)]
            assert logical == ["timestamp-micros"], f"{record}.{f['name']}"


def test_history_is_complete_and_backward_compatible() -> None:
    assert history_problems(SCHEMAS) == []


def test_drift_event_v1_without_fingerprint_is_kept_and_read_with_the_default() -> None:
    v1 = SCHEMAS.history["DriftEvent"][0]
    assert v1.version == 1
    assert "fingerprint" not in {f["name"] for f in v1.raw["fields"]}
    old = {k: v for k, v in EXAMPLES["DriftEvent"].items() if k != "fingerprint"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, v1.parsed, old)
    decoded = Codec().decode(frame_single_object(v1.fingerprint, body.getvalue()))
    assert decoded.record == {**old, "fingerprint": ""}
    assert decoded.writer == "DriftEvent v1"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_kept_version_resolves_to_the_current_one_by_example(name: str) -> None:
    current = SCHEMAS.current[name]
    for old in SCHEMAS.history[name]:
        assert roundtrip_problems(old, current, sample_records(old, 30)) == []


# -- the checker names the field ---------------------------------------------------------

DRIFT = json.loads((SCHEMA_DIR / "DriftEvent.avsc").read_text())


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_field_added_without_default_is_named() -> None:
    new = copy.deepcopy(DRIFT)
    new["fields"].append({"name": "region", "type": "string", "doc": "x"})
    problems = backward_incompatibilities(DRIFT, new)
    assert [str(p) for p in problems] == [
        "DriftEvent.region: field added without a default: data written with the old schema has no value for it"
    ]


def test_field_added_with_default_is_compatible() -> None:
    new = copy.deepcopy(DRIFT)
    new["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    assert backward_incompatibilities(DRIFT, new) == []


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda s: _field(s, "value").update(type="string"), "DriftEvent.value", "double to string"),
        (lambda s: _field(s, "value").update(type="float"), "DriftEvent.value", "double to float"),
        (
            lambda s: _field(s, "baseline")["type"][1]["fields"][0].update(type="int"),
            "DriftEvent.baseline.count",
            "long to int",
        ),
        (
            lambda s: _field(s, "severity")["type"].update(symbols=["warning", "critical"]),
            "DriftEvent.severity",
            "lost symbol(s) resolved",
        ),
        (
            lambda s: _field(s, "observed_at")["type"].update(logicalType="timestamp-millis"),
            "DriftEvent.observed_at",
            "timestamp-micros to timestamp-millis",
        ),
        (
            lambda s: _field(s, "labels").update(type={"type": "map", "values": "long"}),
            "DriftEvent.labels{}",
            "string to long",
        ),
        (
            lambda s: _field(s, "baseline").update(type=_field(s, "baseline")["type"][1]),
            "DriftEvent.baseline",
            "old union branch null",
        ),
    ],
)
def test_incompatible_changes_are_named(mutate: Any, path: str, words: str) -> None:
    new = copy.deepcopy(DRIFT)
    mutate(new)
    problems = backward_incompatibilities(DRIFT, new)
    assert [p.path for p in problems] == [path]
    assert words in problems[0].problem


def test_promotions_and_removed_fields_are_compatible() -> None:
    old = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}],
    }
    new = {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["null", "long"]}]}
    assert backward_incompatibilities(old, new) == []


def test_renamed_field_with_alias_is_compatible() -> None:
    old = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    new = {"type": "record", "name": "R", "fields": [{"name": "b", "type": "int", "aliases": ["a"]}]}
    assert backward_incompatibilities(old, new) == []


def test_nested_array_record_field_is_named() -> None:
    run = json.loads((SCHEMA_DIR / "RunRecord.avsc").read_text())
    new = copy.deepcopy(run)
    _field(new, "trace")["type"]["items"]["fields"].append({"name": "cost", "type": "double"})
    assert [p.path for p in backward_incompatibilities(run, new)] == ["RunRecord.trace[].cost"]


def test_recursive_types_terminate() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"], "default": None}, {"name": "v", "type": "int"}],
    }
    assert backward_incompatibilities(node, copy.deepcopy(node)) == []


def test_a_breaking_new_version_fails_the_history_check_naming_the_field(tmp_path: Path) -> None:
    """What the suite does when someone adds a version that breaks backward compatibility."""
    shutil.copytree(
        SCHEMA_DIR / "history", tmp_path / "history", ignore=shutil.ignore_patterns("__pycache__")
    )
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    broken = copy.deepcopy(DRIFT)
    broken["fields"].append({"name": "region", "type": "string", "doc": "Where it happened."})
    (tmp_path / "DriftEvent.avsc").write_text(json.dumps(broken))
    (tmp_path / "history" / "DriftEvent" / "v3.avsc").write_text(json.dumps(broken))

    problems = history_problems(load_schema_set(tmp_path), samples=5)

    assert problems, "a breaking version must fail the suite"
    assert any("cannot read v1: DriftEvent.region: field added without a default" in p for p in problems)
    assert any("cannot read v2: DriftEvent.region" in p for p in problems)
    assert all("DriftEvent" in p for p in problems)


def test_changing_a_schema_without_keeping_a_version_fails(tmp_path: Path) -> None:
    shutil.copytree(
        SCHEMA_DIR / "history", tmp_path / "history", ignore=shutil.ignore_patterns("__pycache__")
    )
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    changed = copy.deepcopy(DRIFT)
    changed["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    (tmp_path / "DriftEvent.avsc").write_text(json.dumps(changed))
    problems = history_problems(load_schema_set(tmp_path), samples=5)
    assert len(problems) == 1
    assert "copy it to schemas/history/DriftEvent/v3.avsc" in problems[0]


def test_doc_only_change_needs_no_new_version(tmp_path: Path) -> None:
    shutil.copytree(
        SCHEMA_DIR / "history", tmp_path / "history", ignore=shutil.ignore_patterns("__pycache__")
    )
    for path in SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    reworded = copy.deepcopy(DRIFT)
    reworded["doc"] = "Reworded."
    (tmp_path / "DriftEvent.avsc").write_text(json.dumps(reworded))
    assert history_problems(load_schema_set(tmp_path), samples=5) == []


def test_invalid_schema_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "Bad.avsc").write_text(
        '{"type": "record", "name": "Bad", "fields": [{"name": "a", "type": "nope"}]}'
    )
    with pytest.raises(ConfigurationError, match=r"Bad\.avsc"):
        load_schema_set(tmp_path)


def test_file_name_must_match_record_name(tmp_path: Path) -> None:
    (tmp_path / "Other.avsc").write_text('{"type": "record", "name": "Bad", "fields": []}')
    with pytest.raises(ConfigurationError, match=r"name it Bad\.avsc"):
        load_schema_set(tmp_path)


def test_non_record_schema_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="named Avro record"):
        parse_version("string")


def test_timestamps_round_trip_as_aware_utc() -> None:
    codec = Codec()
    decoded = codec.decode(codec.encode("DriftEvent", EXAMPLES["DriftEvent"])).record
    assert decoded["observed_at"].tzinfo is not None
    assert decoded["observed_at"].utcoffset() == dt.timedelta(0)


# -- floor 1 stays floor 1 ---------------------------------------------------------------

UPPER_FLOORS = ("streams", "agents", "connectors", "ops")


@pytest.mark.parametrize("path", sorted((SCHEMA_DIR).glob("*.py")), ids=lambda p: p.name)
def test_schemas_package_imports_no_upper_floor(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & set(UPPER_FLOORS)
