"""Session fixtures: the real stack (embedded Postgres, Kafka and Connect, or the one named by VIGIL_*).

With ``VIGIL_DATABASE_URL`` and ``VIGIL_KAFKA_BOOTSTRAP`` set, tests run against that stack and
start nothing. Otherwise the embedded services are started once per session from the same code
``vigil services up`` uses, in a throwaway ``VIGIL_HOME``, and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from ops import migrations
from ops.services import stack as stack_mod
from streams.catalog import CATALOG, TopicSpec
from streams.settings import Settings, load_settings
from streams.topics import ensure_topics


def _throwaway_home(prefix: str) -> Path:
    # Not under pytest's tmp_path: that is mode 0700 and the postgres user must traverse it.
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Settings pointing at a running, migrated stack with the catalog's topics."""
    base = load_settings()
    home: Path | None = None
    if base.uses_embedded_postgres or base.uses_embedded_broker or base.uses_embedded_connect:
        home = _throwaway_home("vigil-test-")
        base = base.model_copy(update={"home": home})
    resolved = stack_mod.up(base, connect=True)
    migrations.upgrade(resolved.require_database_url())
    ensure_topics(resolved, CATALOG)
    try:
        yield resolved
    finally:
        if home is not None and not os.environ.get("VIGIL_KEEP_TEST_STACK"):
            stack_mod.down(base)
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, for topics, groups, schemas and databases."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def make_topic(stack: Settings, unique: str) -> Callable[..., str]:
    """Create a topic unique to this test: ``make_topic("orders", partitions=3)``."""

    def create(name: str = "topic", partitions: int = 1, configs: dict[str, str] | None = None) -> str:
        full = f"{unique}.{name}"
        ensure_topics(stack, [TopicSpec(full, "test topic", partitions, configs or {})])
        return full

    return create


@pytest.fixture
def make_database(stack: Settings, unique: str) -> Iterator[Callable[[str], str]]:
    """Make new, migrated databases for this test (``make_database("b")``); dropped afterwards."""
    url = stack.require_database_url()
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    made: list[str] = []

    def create(suffix: str = "") -> str:
        name = f"{unique}{suffix}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        db_url = url.rsplit("/", 1)[0] + f"/{name}"
        migrations.upgrade(db_url)
        return db_url

    try:
        yield create
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_database(make_database: Callable[[str], str]) -> str:
    """URL of a new, migrated database unique to this test; dropped afterwards."""
    return make_database("")


@pytest.fixture
def throwaway_home() -> Iterator[Path]:
    """A VIGIL_HOME of this test's own, for tests that start and kill services."""
    home = _throwaway_home("vigil-own-")
    try:
        yield home
    finally:
        stack_mod.down(load_settings(home=home, embedded_schema_registry=True))
        shutil.rmtree(home, ignore_errors=True)


#: Files in tests/integration that take half a minute or more: seconds of test time in a suite run
#: on our machine (two cores, 2026-12-01). ``ops/run-tests.sh`` hands files to its processes in
#: collection order (``--no-loadscope-reorder``), and :func:`pytest_collection_modifyitems` puts
#: these first, the longest first, so that the short files fill in around them. xdist's own order
#: (the files with the most tests first) left the 5-minute kill -9 file, two tests, to run last.
LONG_FILES = {
    "test_agents_exactly_once.py": 430,
    "test_agents_sigkill.py": 280,
    "test_cdc_connect.py": 185,
    "test_schedules.py": 170,
    "test_services.py": 105,
    "test_up.py": 100,
    "test_agents_isolation.py": 85,
    "test_kafka_broker.py": 75,
    "test_drift_sources.py": 70,
    "test_demo.py": 70,
    "test_agents_consumers.py": 60,
    "test_sinks.py": 50,
    "test_agents_broker_restart.py": 45,
    "test_registry.py": 45,
    "test_relay_process.py": 45,
    "test_watch_absence.py": 45,
    "test_watch_status.py": 30,
    "test_heartbeat_remove.py": 30,
}


def _expected_seconds(item: pytest.Item) -> int:
    return LONG_FILES.get(item.path.name, 0) if item.path.parent.name == "integration" else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long files first (a stable sort: each file's tests stay together and in order)."""
    items.sort(key=lambda item: -_expected_seconds(item))
