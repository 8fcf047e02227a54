"""Versioned migrations (Alembic) of Vigil's Postgres schema ``vigil``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from streams.settings import sqlalchemy_url

SCHEMA = "vigil"
VERSION_TABLE = "alembic_version"
#: Advisory lock key held while migrating (an arbitrary constant: "vigil" in ASCII).
MIGRATION_LOCK = 0x766967696C
HERE = Path(__file__).parent


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(HERE))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table_schema": SCHEMA, "version_table": VERSION_TABLE}
        )
        return context.get_current_revision()


def upgrade(database_url: str, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; return the revision the database is at."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        # Several workers starting at once would run the same migration twice: take turns.
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                with engine.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
                command.upgrade(alembic_config(engine), revision)
                return current_revision(engine)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                lock.commit()
    finally:
        engine.dispose()
