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
    "agents/retry.py",
    "agents/backoff.py",
    "agents/outbox_mapping.py",
    "agents/prune_policy.py",
    "agents/sinks/decisions.py",
    "agents/sinks/requests.py",
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


@pytest.mark.parametrize("relpath", PURE_MODULES)
def test_pure_modules_import_no_io_client(relpath: str) -> None:
    assert not (_imports(ROOT / relpath) & IO_CLIENTS), relpath
