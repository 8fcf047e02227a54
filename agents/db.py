"""Database engines for the agents' floor: one place that turns a Postgres URL into an engine."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
    """The asyncio engine the unit of work uses; a short connect timeout so outages are noticed fast."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )
