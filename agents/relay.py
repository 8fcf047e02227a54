"""The outbox relay: publishes committed ``vigil.outbox`` rows when Debezium does not.

Each round takes the unsent rows in ``seq`` order (``FOR UPDATE SKIP LOCKED``), produces them with
the idempotent producer in the Outbox Event Router's format (:mod:`agents.outbox_mapping`), waits
until the broker acknowledged every one, then marks them ``sent_at`` in the same transaction. If
any produce fails the transaction rolls back and the rows stay unsent; a crash between produce and
commit publishes them again on the next round. Either way a row reaches its topic at least once,
always with the same ``id`` header, and sinks deliver it once.

Order: per (aggregatetype, aggregateid), i.e. per topic and key. Rows are split into ``lanes`` by
a hash of that pair; a relay holds a lane's advisory lock while it publishes from it, so several
workers share the outbox (each lane is published by one worker at a time, in ``seq`` order) and a
row is never overtaken by a later row of its key. ``seq`` is the insert order: rows of one key
written by concurrent transactions go out in the order the relay sees them committed.

Supervision (:meth:`OutboxRelay.run`): every exception of a round is logged at WARNING with the
error, counted in :attr:`OutboxRelay.stats` and retried with backoff; a round slower than
``slow_round_s`` is logged too, so a relay never stalls in silence. Every few seconds the relay
beats the heartbeat row ``relay:<app_id>`` in ``vigil.heartbeats`` (its ``detail`` holds the
counters, the backlog and the last error): the beat advances only after a successful round, so a
relay that keeps failing, hangs, or whose thread or process died becomes overdue, and
``vigil status`` reports it.

It runs as a thread of the worker (``VIGIL_OUTBOX_RELAY=true``) or alone in ``vigil relay``
(:mod:`ops.relay`), which is what ``vigil up`` starts: in the worker it cost ≈29% of its throughput.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer
from sqlalchemy import Connection, Engine, text

from agents.backoff import RetryPolicy
from agents.db import as_engine
from agents.outbox_mapping import OutboxRow, to_message
from agents.relay_health import RelayHealth, RelayStats, relay_health
from schemas.errors import RetryableError
from streams.catalog import TopicSpec
from streams.outgoing import Outgoing
from streams.produce import produce_all
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)

#: First key of the relay's advisory locks (the second is the lane); "VgOb".
LOCK_CLASS = 0x56674F62
DEFAULT_LANES = 4
RUN_RETRY = RetryPolicy(max_attempts=1_000_000, base=0.5, factor=2.0, max_delay=10.0, jitter=0.2)
#: Seconds between heartbeat writes, and a round slower than this many seconds is logged.
BEAT_EVERY_S = 5.0
SLOW_ROUND_S = 5.0

_BACKLOG = text(
    "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS oldest_s "
    "FROM vigil.outbox WHERE sent_at IS NULL"
)
# The beat (last_beat_at, next_expected_at) moves only when the last round succeeded; the detail
# (counters, last error) is written every time, so `vigil status` sees why a relay is stuck.
_BEAT = text(
    """
    INSERT INTO vigil.heartbeats AS h
        (name, every_seconds, grace_seconds, last_beat_at, next_expected_at, status, detail)
    VALUES (:name, :every, :grace, now(), now() + make_interval(secs => :every), :status,
            CAST(:detail AS jsonb))
    ON CONFLICT (name) DO UPDATE SET
        every_seconds = EXCLUDED.every_seconds,
        grace_seconds = EXCLUDED.grace_seconds,
        status = EXCLUDED.status,
        detail = EXCLUDED.detail,
        last_beat_at = CASE WHEN :advance THEN EXCLUDED.last_beat_at ELSE h.last_beat_at END,
        next_expected_at = CASE WHEN :advance THEN EXCLUDED.next_expected_at ELSE h.next_expected_at END
    """
)

_SELECT = """
    SELECT id, aggregatetype, aggregateid, type, payload::text AS payload_json, seq, trace_id
    FROM vigil.outbox
    WHERE sent_at IS NULL {lane_filter}
    ORDER BY seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
"""
_LANE_FILTER = "AND mod(hashtext(aggregatetype || '/' || aggregateid)::bigint + 2147483648, :lanes) = :lane"


class OutboxRelay:
    """Publishes unsent outbox rows; :meth:`relay_once` for one round, :meth:`run` as a loop."""

    def __init__(
        self,
        settings: Settings,
        engine_or_url: Engine | str,
        producer: Producer,
        *,
        lanes: int = DEFAULT_LANES,
        flush_timeout: float = 30.0,
        create_topics: bool = True,
        beat_name: str | None = None,
        unhealthy_after_s: float = 60.0,
        beat_every_s: float = BEAT_EVERY_S,
        slow_round_s: float = SLOW_ROUND_S,
        runs_in: str = "worker",
    ) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self.settings = settings
        self.engine = as_engine(engine_or_url)
        self._owns_engine = not isinstance(engine_or_url, Engine)
        self.producer = producer
        self.lanes = lanes
        self.flush_timeout = flush_timeout
        self.create_topics = create_topics
        self._known_topics: set[str] = set()
        self._next_lane = 0
        #: The heartbeat row this relay beats (None: none), e.g. ``relay:<app_id>``.
        self.beat_name = beat_name
        self.unhealthy_after_s = unhealthy_after_s
        self.beat_every_s = beat_every_s
        self.slow_round_s = slow_round_s
        #: What runs the relay (``worker`` or ``vigil relay``), in the heartbeat's detail.
        self.runs_in = runs_in
        self.stats = RelayStats()
        self._last_beat = float("-inf")

    def relay_once(self, limit: int = 1000) -> int:
        """Publish up to ``limit`` unsent rows from each lane not locked by another relay; return how many."""
        total = 0
        start = self._next_lane
        self._next_lane = (self._next_lane + 1) % self.lanes
        for i in range(self.lanes):
            total += self._relay_lane((start + i) % self.lanes, limit)
        return total

    def _relay_lane(self, lane: int, limit: int) -> int:
        with self.engine.begin() as conn:
            locked = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:cls, :lane)"), {"cls": LOCK_CLASS, "lane": lane}
            ).scalar_one()
            if not locked:
                return 0
            rows = self._unsent(conn, lane, limit)
            if not rows:
                return 0
            messages = [to_message(row) for row in rows]
            self._ensure_topics({m.topic for m in messages})
            self._publish(messages)
            conn.execute(
                text("UPDATE vigil.outbox SET sent_at = now() WHERE id = ANY(:ids)"),
                {"ids": [row.id for row in rows]},
            )
        log.debug("relayed %d outbox rows from lane %d", len(rows), lane)
        return len(rows)

    def _unsent(self, conn: Connection, lane: int, limit: int) -> list[OutboxRow]:
        lane_filter = _LANE_FILTER if self.lanes > 1 else ""
        result = conn.execute(
            text(_SELECT.format(lane_filter=lane_filter)),
            {"limit": limit, "lanes": self.lanes, "lane": lane},
        )
        return [
            OutboxRow(
                id=r.id if isinstance(r.id, uuid.UUID) else uuid.UUID(str(r.id)),
                aggregatetype=r.aggregatetype,
                aggregateid=r.aggregateid,
                type=r.type,
                payload=None,  # published as Postgres's text of it: no decode and encode again
                payload_json=r.payload_json,
                seq=r.seq,
                trace_id=r.trace_id,
            )
            for r in result
        ]

    def _ensure_topics(self, topics: set[str]) -> None:
        missing = topics - self._known_topics
        if missing and self.create_topics:
            ensure_topics(
                self.settings, [TopicSpec(name, "relayed outbox events") for name in sorted(missing)]
            )
        self._known_topics |= missing

    def _publish(self, messages: list[Outgoing]) -> None:
        produce_all(self.producer, messages, what="outbox relay", timeout=self.flush_timeout)

    def close(self) -> None:
        """Flush the producer; dispose of the engine if the relay made it from a URL."""
        self.producer.flush(self.flush_timeout)
        if self._owns_engine:
            self.engine.dispose()

    def run(self, stop_event: threading.Event, idle_sleep: float = 0.5, limit: int = 1000) -> int:
        """Relay until ``stop_event`` is set; sleep ``idle_sleep`` when nothing is due. Returns the count.

        Any exception of a round (broker, database, a bug) is logged, counted in :attr:`stats` and
        retried with backoff: the thread never dies of one. Every relay sharing an outbox must use
        the same ``lanes``, or two could publish one key at once.
        """
        total = 0
        self.stats.started_at = _now()
        while not stop_event.is_set():
            began = time.monotonic()
            try:
                relayed = self.relay_once(limit)
            except Exception as exc:
                self.stats.failed(_now(), exc)
                failures = self.stats.consecutive_errors
                delay = RUN_RETRY.delay(failures)
                # A traceback for what is not an expected outage: that is a bug to see in full.
                log.warning(
                    "outbox relay round failed (%d in a row, %d in all), retrying in %.1fs: %s",
                    failures,
                    self.stats.errors,
                    delay,
                    exc,
                    exc_info=not isinstance(exc, RetryableError),
                )
                self._beat_if_due()
                stop_event.wait(delay)
                continue
            took = time.monotonic() - began
            if took > self.slow_round_s:
                log.warning("outbox relay round took %.1fs (%d rows published)", took, relayed)
            self.stats.succeeded(_now(), relayed)
            total += relayed
            self._beat_if_due()
            if relayed == 0:
                stop_event.wait(idle_sleep)
        self._beat(status="paused")  # a clean stop is not an outage
        return total

    def health(self, now: datetime | None = None, *, thread_alive: bool = True) -> RelayHealth:
        return relay_health(
            self.stats, now or _now(), thread_alive=thread_alive, unhealthy_after_s=self.unhealthy_after_s
        )

    def _beat_if_due(self) -> None:
        if self.beat_name is not None and time.monotonic() - self._last_beat >= self.beat_every_s:
            self._beat()

    def _beat(self, status: str = "ok") -> None:
        """Measure the backlog and write the heartbeat row; a failure here is only logged."""
        if self.beat_name is None:
            return
        self._last_beat = time.monotonic()
        try:
            with self.engine.begin() as conn:
                row = conn.execute(_BACKLOG).one()
                self.stats.backlog = int(row.n)
                self.stats.oldest_unsent_age_s = float(row.oldest_s) if row.oldest_s is not None else None
                self.stats.backlog_at = _now()
                detail = {
                    **self.stats.as_dict(),
                    "worker": f"{socket.gethostname()}:{os.getpid()}",
                    "runs_in": self.runs_in,
                }
                conn.execute(
                    _BEAT,
                    {
                        "name": self.beat_name,
                        "every": self.beat_every_s,
                        "grace": max(0.0, self.unhealthy_after_s - self.beat_every_s),
                        "status": status,
                        "detail": json.dumps(detail),
                        "advance": self.stats.consecutive_errors == 0,
                    },
                )
        except Exception as exc:  # the database may be what is failing: the round logs that
            log.debug("outbox relay: heartbeat not written: %s", exc)


def _now() -> datetime:
    return datetime.now(UTC)


def unsent_count(engine: Engine) -> int:
    """The outbox backlog: rows not yet relayed (meaningful only when this relay, not CDC, publishes)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM vigil.outbox WHERE sent_at IS NULL")).scalar_one())
