"""A connector file naming an odd table: the name is created exactly as quoted, nothing injected."""

from __future__ import annotations

import psycopg
import pytest

from connectors.config import parse_connector
from connectors.database import ensure_heartbeat_table
from schemas.errors import ConfigurationError

pytestmark = pytest.mark.integration

ODD = "hb'; DROP TABLE public.victim; --"


@pytest.mark.timeout(60)
def test_heartbeat_table_with_quote_and_semicolon_is_created_as_named(fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.victim (id int)")
    quoted = '"' + ODD.replace('"', '""') + '"'
    query = f"INSERT INTO public.{quoted} (id, beat_at) VALUES ('c', now())"
    spec = parse_connector(
        {
            "name": "odd",
            "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "heartbeat.action.query": query,
            },
        }
    )
    assert spec.heartbeat_table is not None
    ensure_heartbeat_table(fresh_database, spec.heartbeat_table)
    ensure_heartbeat_table(fresh_database, spec.heartbeat_table)  # idempotent
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        tables = {
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        }
        assert tables == {"victim", ODD}, "exactly the quoted name, and the victim survives"
        # The connector's own query (run by Debezium) finds the table Vigil made.
        conn.execute(query)


@pytest.mark.timeout(60)
def test_an_unquoted_injection_attempt_fails_cleanly(fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.victim (id int)")
    with pytest.raises(ConfigurationError, match="not a table name"):
        ensure_heartbeat_table(fresh_database, "public.hb; DROP TABLE public.victim")
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('public.victim') IS NOT NULL").fetchone() == (True,)
