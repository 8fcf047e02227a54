"""Watches: a future condition on a topic, with a deadline. ``armed → matched → handed_off``, or
``armed → expired`` (a critical alert).

A watch runner is a thread in every worker (with the scheduler); several may run. It consumes the
topics of the open watches (group ``<app_id>-watches``; events older than a watch do not count for
it) and evaluates each watch's predicate (:mod:`streams.predicates`) on each event:

- **matched**: the first matching event is stored on the watch (``UPDATE … WHERE state = 'armed'``:
  one event wins, however many runners saw one), then handed to the watch's agent as a ``Tick``
  (``schedule_id`` ``watch:<name>``, payload ``{"watch", "event_id", "event"}``) whose event id is
  ``watch:<name>``: a hand-off published twice (a crash before ``handed_off`` was written) runs the
  agent once;
- **expired**: an armed watch past its deadline publishes one critical ``DriftEvent`` to
  ``drift.events`` (source ``vigil``, id ``watch:<name>:expired``), then is marked expired, in the
  transaction that holds its row lock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer, Message, Producer
from psycopg.types.json import Jsonb

from agents.rounds import LazyConnection, run_rounds
from schemas.codec import Codec
from schemas.errors import PoisonError
from streams import headers
from streams.catalog import DRIFT_EVENTS, TICKS
from streams.kafka import make_consumer
from streams.outgoing import Outgoing
from streams.predicates import Predicate, event_fields, parse
from streams.produce import produce_all
from streams.settings import Settings
from streams.views import MessageParts, headers_to_dict, view_of

log = logging.getLogger(__name__)

#: How often the set of open watches (and so the topics consumed) is read again.
REFRESH_S = 1.0


def watch_event_id(name: str) -> str:
    return f"watch:{name}"


def expired_alert(watch: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The critical ``DriftEvent`` of an expired absence watch."""
    name = watch["name"]
    return {
        "id": f"watch:{name}:expired",
        "source": "vigil",
        "metric": f"watch.{name}",
        "value": 0.0,
        "baseline": None,
        "statistic": "absence",
        "score": 1.0,
        "severity": "critical",
        "labels": {
            "watch": name,
            "topic": watch["topic"],
            "match": watch["predicate"],
            "deadline": watch["deadline"].isoformat(),
            "agent": watch["agent"],
        },
        "observed_at": now,
        "fingerprint": f"vigil/watch/{name}",
    }


class WatchRunner:
    """Matches, hands off and expires watches; :meth:`run` as a loop until ``stop`` is set."""

    def __init__(self, settings: Settings, database_url: str, producer: Producer, codec: Codec) -> None:
        self.settings = settings
        self.database_url = database_url
        self.producer = producer
        self.codec = codec
        self._db = LazyConnection(database_url)
        self._consumer: Consumer | None = None
        self._topics: list[str] = []
        self._armed: dict[str, list[tuple[dict[str, Any], Predicate]]] = {}
        self._refreshed = 0.0

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        return self._db.get()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._db.close()

    def run(self, stop: threading.Event) -> None:
        # A round waits for messages itself (poll_s), so no pause between rounds.
        poll_s = self.settings.scheduler_poll_s
        run_rounds("watches", lambda: self.run_round(poll_s=poll_s), stop, pause_s=0, close=self.close)

    def run_round(self, poll_s: float = 0.25) -> None:
        if time.monotonic() - self._refreshed >= REFRESH_S:
            self._refresh()
        self.expire_due()
        self.hand_off_matched()
        if self._consumer is None:
            time.sleep(poll_s)
            return
        messages = self._consumer.consume(500, poll_s)
        for message in messages:
            if message.error() is None:
                self._evaluate(message)
        if messages:
            self._consumer.commit(asynchronous=False)

    def _refresh(self) -> None:
        conn = self._connection()
        with conn.transaction():
            rows = conn.execute("SELECT * FROM vigil.watches WHERE state = 'armed'").fetchall()
        armed: dict[str, list[tuple[dict[str, Any], Predicate]]] = {}
        for row in rows:
            try:
                armed.setdefault(row["topic"], []).append((row, parse(row["predicate"])))
            except Exception as exc:  # checked when added; a row edited by hand may not parse
                log.warning("watch %s: predicate does not parse (%s); ignored", row["name"], exc)
        self._armed = armed
        topics = sorted(armed)
        if topics != self._topics:
            if self._consumer is None and topics:
                self._consumer = make_consumer(
                    self.settings, f"{self.settings.app_id}-watches", **{"enable.auto.offset.store": True}
                )
            if self._consumer is not None:
                if topics:
                    self._consumer.subscribe(topics)
                else:
                    self._consumer.unsubscribe()
            self._topics = topics
        self._refreshed = time.monotonic()

    def _evaluate(self, message: Message) -> None:
        candidates = self._armed.get(message.topic() or "", [])
        if not candidates:
            return
        parts = MessageParts(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=message.key(),
            value=message.value(),
            headers=headers_to_dict(message.headers()),  # type: ignore[arg-type]
        )
        try:
            view = view_of(parts, self.codec)
        except PoisonError:
            return  # not readable: no watch can match it (the agents dead-letter it if they read it)
        if view is None:
            return
        _kind, stamp_ms = message.timestamp()
        sent_at = datetime.fromtimestamp(stamp_ms / 1000, UTC) if stamp_ms and stamp_ms > 0 else None
        fields = event_fields(view)
        for watch, predicate in candidates:
            if sent_at is not None and sent_at < watch["created_at"]:
                continue  # the event is older than the watch
            if predicate.matches(fields):
                self._match(watch, view.event_id, fields)

    def _match(self, watch: dict[str, Any], event_id: str, fields: dict[str, Any]) -> None:
        conn = self._connection()
        with conn.transaction():
            won = conn.execute(
                """
                UPDATE vigil.watches SET state = 'matched', matched_event_id = %s, matched_event = %s,
                       matched_at = clock_timestamp()
                WHERE name = %s AND state = 'armed' AND deadline > clock_timestamp() RETURNING name
                """,
                (event_id, Jsonb(fields, dumps=lambda v: json.dumps(v, default=str)), watch["name"]),
            ).fetchone()
        if won is not None:
            log.info("watch %s matched by %s", watch["name"], event_id)
            self._refreshed = 0.0  # stop evaluating it
        self.hand_off_matched()

    def hand_off_matched(self) -> int:
        """Hand every matched watch's event to its agent (also after a crash between the two)."""
        conn = self._connection()
        handed = 0
        with conn.transaction():
            rows = conn.execute(
                "SELECT *, clock_timestamp() AS now FROM vigil.watches WHERE state = 'matched' "
                "FOR UPDATE SKIP LOCKED"
            ).fetchall()
            messages = []
            for row in rows:
                tick = {
                    "id": watch_event_id(row["name"]),
                    "kind": "schedule",
                    "schedule_id": watch_event_id(row["name"]),
                    "agent": row["agent"],
                    "slot_time": row["matched_at"],
                    "fired_at": row["now"],
                    "payload": json.dumps(
                        {
                            "watch": row["name"],
                            "event_id": row["matched_event_id"],
                            "event": row["matched_event"],
                        }
                    ),
                }
                event_id = watch_event_id(row["name"]).encode()
                messages.append(
                    Outgoing(
                        TICKS,
                        row["name"].encode(),
                        self.codec.encode("Tick", tick),
                        ((headers.EVENT_ID, event_id), (headers.TRACE_ID, event_id)),
                        tag=row["name"],
                    )
                )
            self._publish(messages, "watch hand-offs")
            for row in rows:
                conn.execute(
                    "UPDATE vigil.watches SET state = 'handed_off', handed_off_at = clock_timestamp() "
                    "WHERE name = %s",
                    (row["name"],),
                )
                log.info("watch %s handed off to %s", row["name"], row["agent"])
                handed += 1
        return handed

    def expire_due(self) -> int:
        """Raise one critical alert for each armed watch past its deadline, and mark it expired."""
        conn = self._connection()
        with conn.transaction():
            rows = conn.execute(
                "SELECT *, clock_timestamp() AS now FROM vigil.watches "
                "WHERE state = 'armed' AND deadline <= clock_timestamp() FOR UPDATE SKIP LOCKED"
            ).fetchall()
            messages = []
            for row in rows:
                alert = expired_alert(row, row["now"])
                messages.append(
                    Outgoing(
                        DRIFT_EVENTS,
                        alert["fingerprint"].encode(),
                        self.codec.encode("DriftEvent", alert),
                        ((headers.EVENT_ID, alert["id"].encode()), (headers.TRACE_ID, alert["id"].encode())),
                        tag=row["name"],
                    )
                )
            self._publish(messages, "watch alerts")
            for row in rows:
                conn.execute(
                    "UPDATE vigil.watches SET state = 'expired', expired_at = clock_timestamp() WHERE name = %s",
                    (row["name"],),
                )
                log.warning("watch %s expired at %s: critical alert raised", row["name"], row["deadline"])
        if rows:
            self._refreshed = 0.0
        return len(rows)

    def _publish(self, messages: list[Outgoing], what: str) -> None:
        if not messages:
            return
        produce_all(self.producer, messages, what=what)
