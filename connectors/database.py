"""What the connectors need from Postgres directly: the heartbeat table, replication slot lag, dropping a slot."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from connectors.config import parse_qualified_name
from schemas.errors import ServiceError


def ensure_heartbeat_table(database_url: str, table: str) -> None:
    """Create the table ``heartbeat.action.query`` writes to, if missing: ``(id text, beat_at)``.

    It must exist before the connector starts, so that the filtered publication includes it.
    ``table`` is read as SQL would (``public.Beats`` is ``public.beats``, ``"Beats"`` keeps its case).
    """
    # The name comes from a connector file: parsed as SQL would read it, and only ever quoted.
    ident = sql.Identifier(*parse_qualified_name(table))
    statement = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, beat_at timestamptz NOT NULL DEFAULT now())"
    ).format(ident)
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)
    except psycopg.Error as exc:
        raise ServiceError(f"cannot create heartbeat table {table}: {exc}", code=exc.sqlstate) from exc


#: Every replication slot and the WAL it keeps from being recycled (from its ``restart_lsn``), for
#: ``vigil status`` and ``vigil doctor``.
SLOTS_SQL = """
SELECT slot_name, plugin, slot_type, active,
       CASE WHEN restart_lsn IS NULL THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END AS retained_wal_bytes,
       wal_status
FROM pg_replication_slots ORDER BY slot_name
"""


@dataclass(frozen=True)
class SlotInfo:
    slot_name: str
    active: bool
    #: Bytes of WAL the slot still holds back: pg_current_wal_lsn() - confirmed_flush_lsn.
    lag_bytes: int | None
    confirmed_flush_lsn: str | None


def replication_slots(database_url: str, names: list[str] | None = None) -> dict[str, SlotInfo]:
    query = (
        "SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,"
        " confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_type = 'logical'"
    )
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.Error as exc:
        raise ServiceError(f"cannot read pg_replication_slots: {exc}", code=exc.sqlstate) from exc
    slots = {row[0]: SlotInfo(row[0], bool(row[1]), row[2], row[3]) for row in rows}
    return slots if names is None else {n: s for n, s in slots.items() if n in names}


def drop_replication_slot(database_url: str, slot_name: str, timeout: float = 30.0) -> bool:
    """Drop ``slot_name`` once no walsender holds it (a deleted connector lets go a moment later)."""
    deadline = time.monotonic() + timeout
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            while True:
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot_name,)
                ).fetchone()
                if row is None:
                    return False
                if not row[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot_name,))
    except psycopg.Error as exc:
        raise ServiceError(
            f"cannot drop replication slot {slot_name}: {exc}; drop it with "
            f"SELECT pg_drop_replication_slot('{slot_name}')",
            code=exc.sqlstate,
        ) from exc
    return True
