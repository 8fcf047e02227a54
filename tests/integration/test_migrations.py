"""``vigil worker`` and ``vigil relay`` upgrade their database as they start: one that is at the head
already is recognised by one query, without importing Alembic; any other is migrated by Alembic."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from ops import migrations
from streams.settings import sqlalchemy_url
from tests.integration.workers import scalar

pytestmark = pytest.mark.integration

#: Upgrades the database named on its command line; prints the revision and whether Alembic was imported.
UPGRADE = (
    "import sys; from ops import migrations; print(migrations.upgrade(sys.argv[1]), 'alembic' in sys.modules)"
)


def _upgrade_in_a_process(url: str) -> tuple[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", UPGRADE, url], capture_output=True, text=True, timeout=120, check=True
    )
    revision, imported = done.stdout.split()
    return revision, imported == "True"


def _recorded(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        return migrations.recorded_revision(engine)
    finally:
        engine.dispose()


def test_a_database_at_the_head_is_upgraded_without_alembic(fresh_database: str) -> None:
    assert _upgrade_in_a_process(fresh_database) == (migrations.HEAD, False)


def test_an_empty_database_and_one_a_revision_behind_are_migrated_by_alembic(fresh_database: str) -> None:
    # One revision behind: 0006 undone (its table vigil.alerts goes with it).
    engine = create_engine(sqlalchemy_url(fresh_database), poolclass=NullPool)
    try:
        command.downgrade(migrations.alembic_config(engine), "0005")
    finally:
        engine.dispose()
    assert _recorded(fresh_database) == "0005"
    assert scalar(fresh_database, "SELECT count(*) FROM pg_tables WHERE tablename = 'alerts'") == 0
    assert _upgrade_in_a_process(fresh_database) == (migrations.HEAD, True)
    assert scalar(fresh_database, "SELECT count(*) FROM pg_tables WHERE tablename = 'alerts'") == 1

    # Nothing at all: no schema, no version table.
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("DROP SCHEMA vigil CASCADE")
    assert _recorded(fresh_database) is None
    assert _upgrade_in_a_process(fresh_database) == (migrations.HEAD, True)
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.outbox") == 0
