"""Peer (1): a hand-written confluent-kafka loop, per-row SQL, one transaction per batch of 500.

Per event: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` of the processed row and, when it is new,
an ``INSERT`` of the outbox row. The batch commits, then its offsets are committed. Runs until
SIGTERM. ``python -m bench.peers.loop_rows --bootstrap … --database-url … --topic … --group … --agent …``
"""

from __future__ import annotations

import json

import psycopg
from confluent_kafka import Consumer, TopicPartition

from bench.peers.work import (
    AGGREGATE,
    INSERT_OUTBOX,
    INSERT_PROCESSED,
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
            with conn.cursor() as cur:
                for msg in messages:
                    if msg.error() is not None:
                        continue
                    event_id = event_id_of(msg.headers())
                    event = json.loads(msg.value() or b"null")
                    route = route_of(event)
                    cur.execute(INSERT_PROCESSED, (args.agent, event_id))
                    if cur.fetchone() is not None:
                        cur.execute(
                            INSERT_OUTBOX,
                            (
                                AGGREGATE,
                                outbox_key(event),
                                AGGREGATE,
                                json.dumps(outbox_payload(event, route)),
                                event_id,
                            ),
                        )
                    offsets[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
            conn.commit()
            if offsets:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True
                )
    consumer.close()


if __name__ == "__main__":
    main()
