"""Peer (2): the loop of peer (1) with set-based SQL, one transaction per batch of 500.

Per batch: ``INSERT … SELECT unnest(ids) ON CONFLICT DO NOTHING RETURNING`` of the processed rows,
then ``COPY`` of the outbox rows of the ids it returned. The batch commits, then its offsets are
committed. Runs until SIGTERM. Same arguments as :mod:`bench.peers.loop_rows`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from bench.peers.work import (
    AGGREGATE,
    COPY_OUTBOX,
    INSERT_PROCESSED_SET,
    consumer_config,
    event_id_of,
    outbox_key,
    outbox_payload,
    peer_arguments,
    route_of,
    stop_on_sigterm,
)


def main() -> None:
    args = peer_arguments(__doc__)
    stop = stop_on_sigterm()
    consumer = Consumer(consumer_config(args))
    consumer.subscribe([args.topic])
    with psycopg.connect(args.database_url) as conn:
        while not stop.is_set():
            messages = consumer.consume(args.batch, timeout=0.2)
            if not messages:
                continue
            offsets: dict[tuple[str, int], int] = {}
            batch: list[tuple[str, dict[str, Any]]] = []
            for msg in messages:
                if msg.error() is not None:
                    continue
                batch.append((event_id_of(msg.headers()), json.loads(msg.value() or b"null")))
                offsets[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
            with conn.cursor() as cur:
                cur.execute(INSERT_PROCESSED_SET, (args.agent, [event_id for event_id, _ in batch]))
                new = {row[0] for row in cur.fetchall()}
                with cur.copy(COPY_OUTBOX) as copy:
                    for event_id, event in batch:
                        if event_id not in new:
                            continue
                        new.discard(event_id)  # a duplicate within the batch: one side effect
                        copy.write_row(
                            (
                                uuid.uuid4(),
                                AGGREGATE,
                                outbox_key(event),
                                AGGREGATE,
                                json.dumps(outbox_payload(event, route_of(event))),
                                event_id,
                            )
                        )
            conn.commit()
            if offsets:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True
                )
    consumer.close()


if __name__ == "__main__":
    main()
