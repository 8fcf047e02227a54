"""Versioned migrations (Alembic) of Vigil's Postgres schema ``vigil``.

Alembic is imported only when a database is not at :data:`HEAD` already: every ``vigil worker``
and ``vigil relay`` upgrades its database as it starts, and importing Alembic and reading its
scripts took about a quarter of a second of each start, for a database that is almost always up
to date.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from streams.settings import sqlalchemy_url

if TYPE_CHECKING:
    from alembic.config import Config

SCHEMA = "vigil"
VERSION_TABLE = "alembic_version"
#: The newest revision in ``versions/`` (a unit test holds it to Alembic's own head).
HEAD = "0006"
#: Advisory lock key held while migrating (an arbitrary constant: "vigil" in ASCII).
MIGRATION_LOCK = 0x766967696C
HERE = Path(__file__).parent


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The head revision as Alembic reads it from the scripts."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(HERE))
    head = script.get_current_head()
    assert head is not None
    return head


def recorded_revision(engine: Engine) -> str | None:
    """The revision in the database's version table (no Alembic); None without one. The history is
    one line of revisions, so the table holds one row."""
    with engine.connect() as conn:
        table = f"{SCHEMA}.{VERSION_TABLE}"
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {table}")).scalars().all()
        return rows[0] if len(rows) == 1 else None


def upgrade(database_url: str, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; return the revision the database is at."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        if revision in ("head", HEAD) and recorded_revision(engine) == HEAD:
            return HEAD
        from alembic import command

        # Several workers starting at once would run the same migration twice: take turns.
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                with engine.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
                command.upgrade(alembic_config(engine), revision)
                return recorded_revision(engine)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                lock.commit()
    finally:
        engine.dispose()
