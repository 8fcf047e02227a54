"""Peer (3): a plain faust-streaming agent, one Postgres transaction per event.

``async for event in stream.events()``; per event, in one transaction of an async psycopg
connection: the processed row (``ON CONFLICT DO NOTHING RETURNING``) and, when new, the outbox row.
Faust acks the event when the loop asks for the next one, i.e. after the commit, and commits acked
offsets every ``broker_commit_interval``. Web server off, root logger back to WARNING after start
(``faust worker`` leaves it at DEBUG). Runs until SIGTERM.
Same arguments as :mod:`bench.peers.loop_rows`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from typing import Any

import faust
import psycopg

from bench.peers.work import (
    AGGREGATE,
    INSERT_OUTBOX,
    INSERT_PROCESSED,
    event_id_of,
    outbox_key,
    outbox_payload,
    peer_arguments,
    route_of,
)


def build(args: Any, datadir: str) -> faust.App:
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        broker_heartbeat_interval=1,
        web_enabled=False,
        store="memory://",
        datadir=datadir,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="per-event")
    async def per_event(stream: Any) -> None:
        async with await psycopg.AsyncConnection.connect(args.database_url, autocommit=True) as conn:
            async for event in stream.events():
                event_id = event_id_of(event.message.headers)
                value = json.loads(event.value)
                route = route_of(value)
                async with conn.transaction():
                    cur = await conn.execute(INSERT_PROCESSED, (args.agent, event_id))
                    if await cur.fetchone() is not None:
                        await conn.execute(
                            INSERT_OUTBOX,
                            (
                                AGGREGATE,
                                outbox_key(value),
                                AGGREGATE,
                                json.dumps(outbox_payload(value, route)),
                                event_id,
                            ),
                        )

    @app.task
    async def calm_root_logger() -> None:
        logging.getLogger().setLevel(logging.WARNING)

    return app


def main() -> None:
    args = peer_arguments(__doc__)
    # Faust makes ``<app>-data/`` in the working directory unless told otherwise.
    with tempfile.TemporaryDirectory(prefix="vigil-bench-faust-") as datadir:
        app = build(args, datadir)
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()


if __name__ == "__main__":
    main()
