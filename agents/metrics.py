"""The worker's Prometheus metrics (``GET /metrics``), one registry per worker.

Counters are per agent and counted where the unit of work's result is known (:func:`observe_batch`);
gauges that live in Postgres (outbox backlog, relay lag, heartbeat ages) are refreshed by the
monitor's rounds (:func:`refresh_from_database`), so a scrape never waits on the database.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

_GAUGES_SQL = text(
    """
    SELECT (SELECT count(*) FROM vigil.outbox WHERE sent_at IS NULL) AS backlog,
           (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
            FROM vigil.outbox WHERE sent_at IS NULL) AS relay_lag_s
    """
)
_BEATS_SQL = text(
    "SELECT name, coalesce(extract(epoch FROM now() - last_beat_at), -1) AS age FROM vigil.heartbeats"
)


class _AgentChildren(NamedTuple):
    """One agent's labelled metrics, looked up once (``labels()`` takes a lock and builds a key)."""

    consumed: Any
    processed: Any
    duplicates: Any
    skipped_by_ledger: Any
    dead_lettered: Any
    rejected: Any
    batch_size: Any
    latency: Any


def observe_all(histogram: Any, amounts: Sequence[float]) -> None:
    """``histogram.observe(a)`` for each of ``amounts``, counted per bucket first: one increment per
    bucket and one of the sum, not one of each per amount (a batch's latencies are ~500 amounts).

    Uses the histogram's own buckets and counters (prometheus_client's internals, checked by a unit
    test against one ``observe`` per amount); a histogram without them is observed one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            histogram.observe(amount)
        return
    histogram._raise_if_not_observable()
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # the first bound >= amount, as observe() finds
    total.inc(sum(amounts))
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[str, _AgentChildren] = {}
        r = self.registry
        self.consumed = Counter(
            "vigil_events_consumed", "Events an agent took from Kafka.", ["agent"], registry=r
        )
        self.processed = Counter(
            "vigil_events_processed", "Events whose handler succeeded and committed.", ["agent"], registry=r
        )
        self.duplicates = Counter(
            "vigil_events_duplicates_skipped",
            "Events skipped as already processed (ledger table or processed_events).",
            ["agent"],
            registry=r,
        )
        self.skipped_by_ledger = Counter(
            "vigil_events_skipped_by_ledger",
            "Of those, events the in-memory ledger skipped without asking Postgres.",
            ["agent"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "vigil_events_dead_lettered", "Events sent to vigil.dlq.", ["agent"], registry=r
        )
        self.rejected = Counter(
            "vigil_events_rejected",
            "Events whose output the validator sent to review.",
            ["agent"],
            registry=r,
        )
        self.latency = Histogram(
            "vigil_processing_latency_seconds",
            "From the event's Kafka timestamp to the commit of its unit of work.",
            ["agent"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "vigil_batch_size_events",
            "Events per unit of work.",
            ["agent"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.outbox_backlog = Gauge("vigil_outbox_backlog_rows", "Outbox rows not yet relayed.", registry=r)
        self.relay_lag = Gauge(
            "vigil_outbox_relay_lag_seconds", "Age of the oldest outbox row not yet relayed.", registry=r
        )
        self.consumer_lag = Gauge(
            "vigil_consumer_lag_messages",
            "Messages not yet consumed by an agent.",
            ["agent", "topic"],
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "vigil_heartbeat_age_seconds", "Seconds since a heartbeat's last beat.", ["name"], registry=r
        )
        self.alerts = Counter(
            "vigil_alerts_published", "Vigil's own alerts (absence, repeated failures) published.", registry=r
        )

    def observe_batch(
        self,
        agent: str,
        *,
        consumed: int,
        processed: int,
        duplicates: int,
        dead_lettered: int,
        rejected: int,
        timestamps_ms: Sequence[int],
        skipped_by_ledger: int = 0,
    ) -> None:
        children = self._children.get(agent)
        if children is None:
            children = self._children[agent] = _AgentChildren(
                self.consumed.labels(agent),
                self.processed.labels(agent),
                self.duplicates.labels(agent),
                self.skipped_by_ledger.labels(agent),
                self.dead_lettered.labels(agent),
                self.rejected.labels(agent),
                self.batch_size.labels(agent),
                self.latency.labels(agent),
            )
        children.consumed.inc(consumed)
        children.processed.inc(processed)
        children.duplicates.inc(duplicates)
        children.skipped_by_ledger.inc(skipped_by_ledger)
        children.dead_lettered.inc(dead_lettered)
        children.rejected.inc(rejected)
        if consumed:
            children.batch_size.observe(consumed)
        if timestamps_ms:
            now = time.time()
            observe_all(children.latency, [max(0.0, now - stamp / 1000) for stamp in timestamps_ms])

    def set_lag(self, agent: str, lag: Mapping[str, int]) -> None:
        for topic, n in lag.items():
            self.consumer_lag.labels(agent, topic).set(n)

    def refresh_from_database(self, engine: Engine) -> None:
        with engine.connect() as conn:
            row = conn.execute(_GAUGES_SQL).mappings().one()
            self.outbox_backlog.set(int(row["backlog"]))
            self.relay_lag.set(float(row["relay_lag_s"]))
            for beat in conn.execute(_BEATS_SQL).mappings():
                if float(beat["age"]) >= 0:
                    self.heartbeat_age.labels(beat["name"]).set(float(beat["age"]))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
