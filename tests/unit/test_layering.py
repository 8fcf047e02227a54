"""Imports point down the floors, and pure modules import no Kafka, Faust or database client.

schemas (1) <- streams (2) <- agents, connectors (3) <- ops (4). Nothing imports ops; agents and
connectors do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = {"schemas": 1, "streams": 2, "agents": 3, "connectors": 3, "ops": 4}
IO_CLIENTS = {
    "confluent_kafka",
    "faust",
    "aiokafka",
    "psycopg",
    "sqlalchemy",
    "httpx",
    "mode",
}

# Modules that hold pure decisions: they must stay free of I/O clients.
PURE_MODULES = [
    "schemas/errors.py",
    "schemas/framing.py",
    "schemas/compat.py",
    "streams/catalog.py",
    "streams/views.py",
    "streams/eventids.py",
    "streams/naming.py",
    "streams/headers.py",
    "streams/outgoing.py",
    "streams/logs.py",
    "streams/redact.py",
    "streams/drift_stats.py",
    "streams/drift_policy.py",
    "streams/drift_detect.py",
    "streams/drift_sources.py",
    "streams/drift_events.py",
    "streams/drift_router.py",
    "streams/drift_ingest.py",
    "streams/schedule_maths.py",
    "streams/predicates.py",
    "streams/watch.py",
    "streams/doctor_checks.py",
    "streams/replay_plan.py",
    "streams/demo_script.py",
    "streams/processed_table.py",
    "agents/retry.py",
    "agents/backoff.py",
    "agents/outbox_mapping.py",
    "agents/copy_text.py",
    "agents/prune_policy.py",
    "agents/relay_health.py",
    "agents/sinks/decisions.py",
    "agents/sinks/requests.py",
    "agents/sinks/url_source.py",
    "connectors/config.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _package_files() -> list[tuple[str, Path]]:
    return [(pkg, path) for pkg in FLOOR for path in sorted((ROOT / pkg).rglob("*.py"))]


@pytest.mark.parametrize(("package", "path"), _package_files(), ids=lambda v: str(v))
def test_imports_point_down(package: str, path: Path) -> None:
    for name in _imports(path) & FLOOR.keys():
        if name == package:
            continue
        assert FLOOR[name] < FLOOR[package], (
            f"{path.relative_to(ROOT)} (floor {FLOOR[package]}) imports {name} (floor {FLOOR[name]})"
        )


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported (its top-level statements: not lazy imports inside
    functions, not ``TYPE_CHECKING`` blocks)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _loaded_with(relpath: str) -> set[str]:
    """Every module that importing ``relpath`` loads, following Vigil's own modules."""
    seen: set[str] = set()
    todo = [relpath]
    loaded: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in _top_level_imports(ROOT / current):
            loaded.add(name.split(".")[0])
            if name.split(".")[0] in FLOOR:
                candidate = name.replace(".", "/") + ".py"
                if (ROOT / candidate).exists():
                    todo.append(candidate)
    return loaded


@pytest.mark.parametrize("relpath", PURE_MODULES)
def test_pure_modules_import_no_io_client(relpath: str) -> None:
    assert not (_imports(ROOT / relpath) & IO_CLIENTS), relpath
    # nor does anything of Vigil's they import, at import time
    assert not (_loaded_with(relpath) & IO_CLIENTS), relpath
