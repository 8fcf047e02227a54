"""Database engines for the agents' floor: one place that turns a Postgres URL into an engine."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from schemas.errors import ConfigurationError
from streams.settings import sqlalchemy_url


def as_engine(engine_or_url: Engine | str) -> Engine:
    """A synchronous engine for a SQLAlchemy or libpq-style ``postgresql://`` URL (psycopg 3)."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url
    # A connect timeout: a database that does not answer is an error to retry, not a silent hang.
    return create_engine(
        sqlalchemy_url(engine_or_url), pool_pre_ping=True, connect_args={"connect_timeout": 10}
    )


def async_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """The asyncio engine the unit of work uses; a short connect timeout so outages are noticed fast.

    No ``pool_pre_ping``: it costs a round trip per batch (a ``SELECT 1`` before each transaction,
    ≈ 2% of a batch's CPU), and the unit of work already retries a batch whose connection failed.
    A pooled connection that died while idle (Postgres restarted) fails its batch once; SQLAlchemy
    then sees the disconnect and replaces every connection of the pool, and the batch is retried.
    """
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"connect_timeout": 5},
    )


def installation_id(engine_or_url: Engine | str) -> str:
    """The id of this database (``vigil.installation``): ledger records name it, and a worker trusts
    only records committed in its own database."""
    engine = as_engine(engine_or_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT id FROM vigil.installation")).scalar_one())
    except ProgrammingError as exc:
        raise ConfigurationError(
            "the database has no vigil.installation table: run `vigil db upgrade` first"
        ) from exc
    finally:
        if not isinstance(engine_or_url, Engine):
            engine.dispose()


def new_installation_id(engine_or_url: Engine | str) -> str:
    """Give the database a new id, so that no ledger record written before counts for it any more.

    For a database restored from a backup: records of events processed after the backup was taken
    name the old id, and their events must be processed again, not skipped.
    """
    engine = as_engine(engine_or_url)
    try:
        with engine.begin() as conn:
            return str(
                conn.execute(
                    text("UPDATE vigil.installation SET id = gen_random_uuid() RETURNING id")
                ).scalar_one()
            )
    finally:
        if not isinstance(engine_or_url, Engine):
            engine.dispose()
