"""Step 6 of ``vigil up --demo``: the summary, counted from Postgres and Kafka once the pipeline is
quiet, printed and written to ``$VIGIL_HOME/demo/summary.json``."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

from confluent_kafka import KafkaException

from agents.feed import is_app_group
from ops.demo_context import Story
from ops.inspect import group_infos
from ops.output import print_table
from ops.replay import ReplayRequest, make_plan, read_range
from schemas.errors import ConfigurationError, VigilError
from streams.catalog import DRIFT_CRITICAL, DRIFT_EVENTS, DRIFT_WARNING, OUTBOX_PREFIX, TICKS
from streams.demo_script import Script, SummaryRow, percentile, summary_rows
from streams.kafka import make_admin, make_consumer
from streams.settings import Settings
from streams.watch import ABSENCE, alert_fingerprint

ORDERS_TOPIC = "cdc.public.orders"
PAYMENTS_TOPIC = "cdc.public.payments"
METRICS_TOPIC = "cdc.public.metrics"
ORDER_AGENT = "order-watch"


def kafka_counts(
    settings: Settings, topic: str, since: datetime, keys: dict[str, bytes] | None = None
) -> dict[str, int]:
    """Messages of ``topic`` written since ``since``: ``{"all": n}``, plus one count per named key."""
    consumer = make_consumer(
        settings,
        f"vigil-demo-count-{uuid.uuid4().hex[:12]}",  # throwaway; assign() only, never committed
        **{"enable.auto.commit": False, "enable.partition.eof": True},
    )
    try:
        try:
            plan, _ = make_plan(
                consumer, ReplayRequest(topic, from_time=since.isoformat(), agent="-"), now=since
            )
        except ConfigurationError:  # no such topic yet: nothing was written to it
            return {"all": 0, **dict.fromkeys(keys or {}, 0)}
        counts = {"all": plan.total, **dict.fromkeys(keys or {}, 0)}
        if keys:
            wanted = {key: name for name, key in keys.items()}
            for msg in read_range(consumer, plan):
                name = wanted.get(msg.key() or b"")
                if name is not None:
                    counts[name] += 1
        return counts
    finally:
        consumer.close()


def outbox_topics(settings: Settings) -> list[str]:
    topics = make_admin(settings).list_topics(timeout=10).topics
    return sorted(t for t in topics if t.startswith(OUTBOX_PREFIX))


def wait_until_quiet(story: Story) -> None:
    """Before counting: every outbox row of the story delivered, and no agent behind on its topics."""
    since = story.started_at

    def quiet() -> bool:
        written = story.scalar("SELECT count(*) FROM vigil.outbox WHERE created_at >= %s", since)
        delivered = story.scalar(
            "SELECT count(*) FROM vigil.deliveries WHERE status = 'delivered' AND created_at >= %s", since
        )
        if delivered < written:
            return False
        try:
            app_id = story.settings.app_id
            infos = [i for i in group_infos(story.settings) if is_app_group(app_id, i.group)]
        except (KafkaException, VigilError):
            return False
        return all(lag == 0 for info in infos for _, _, lag in info.lag.values())

    story.wait_for("quiet pipeline (outbox delivered, no consumer lag)", quiet, timeout=60.0)


def latencies_ms(story: Story) -> list[float]:
    """CDC latency of each order change of the story: its commit (Debezium's ``source.ts_ms``) to the
    end of its ``order-watch`` run."""
    rows = story.query(
        "SELECT extract(epoch FROM finished_at) * 1000 - (trace->0->>'committed_ms')::double precision "
        "FROM vigil.runs WHERE agent = %s AND started_at >= %s AND status = 'succeeded' "
        "AND trace->0->>'committed_ms' IS NOT NULL",
        ORDER_AGENT,
        story.started_at,
    )
    return [float(r[0]) for r in rows]


def collect_counts(story: Story) -> dict[str, float | None]:
    since = story.started_at
    settings = story.settings
    counts: dict[str, float | None] = {}
    counts["cdc_orders"] = kafka_counts(settings, ORDERS_TOPIC, since)["all"]
    counts["cdc_payments"] = kafka_counts(settings, PAYMENTS_TOPIC, since)["all"]
    counts["cdc_metrics"] = kafka_counts(settings, METRICS_TOPIC, since)["all"]
    drift_fp = story.facts.get("drift_fingerprint")
    if drift_fp is not None:
        counts["drift_detector"] = kafka_counts(settings, DRIFT_EVENTS, since, {"fp": drift_fp.encode()})[
            "fp"
        ]
    name = story.facts.get("heartbeat")
    if name is not None:
        absence = {"fp": alert_fingerprint(ABSENCE, name).encode()}
        counts["drift_absence"] = kafka_counts(settings, DRIFT_EVENTS, since, absence)["fp"]
    counts["ticks"] = kafka_counts(settings, TICKS, since)["all"]
    counts["alerts_warning"] = kafka_counts(settings, DRIFT_WARNING, since)["all"]
    counts["alerts_critical"] = kafka_counts(settings, DRIFT_CRITICAL, since)["all"]
    counts["resolved"] = story.scalar(
        "SELECT count(*) FROM vigil.drift_incidents WHERE status = 'closed' AND updated_at >= %s", since
    )
    counts["published"] = sum(kafka_counts(settings, t, since)["all"] for t in outbox_topics(settings))
    counts["runs"] = story.scalar("SELECT count(*) FROM vigil.runs WHERE started_at >= %s", since)
    counts["outbox"] = story.scalar("SELECT count(*) FROM vigil.outbox WHERE created_at >= %s", since)
    counts["delivered"] = story.scalar(
        "SELECT count(*) FROM vigil.deliveries WHERE status = 'delivered' AND created_at >= %s", since
    )
    counts["reviews"] = story.scalar("SELECT count(*) FROM vigil.reviews WHERE created_at >= %s", since)
    counts["approved"] = story.scalar(
        "SELECT count(*) FROM vigil.reviews WHERE created_at >= %s AND status = 'approved'", since
    )
    counts["duplicates"] = story.facts.get("duplicates")
    latencies = latencies_ms(story)
    counts["latency_p50"] = percentile(latencies, 50)
    counts["latency_p99"] = percentile(latencies, 99)
    return counts


def step_summary(story: Story) -> list[SummaryRow]:
    wait_until_quiet(story)
    rows = summary_rows(collect_counts(story))
    print_table(
        story.console,
        f"vigil up --demo: what happened (batch {story.batch}, since {story.started_at:%H:%M:%S})",
        ["", "count", "counted in"],
        [[row.what, row.shown(), row.where] for row in rows],
    )
    per_agent = story.query(
        "SELECT agent, status, count(*) FROM vigil.runs WHERE started_at >= %s GROUP BY 1, 2 ORDER BY 1, 2",
        story.started_at,
    )
    print_table(
        story.console, "runs by agent", ["agent", "status", "runs"], [[a, s, str(n)] for a, s, n in per_agent]
    )
    summary = {
        "batch": story.batch,
        "started_at": story.started_at.isoformat(),
        "short": story.script == Script.short(),
        "rows": {row.key: row.value for row in rows},
        "facts": {k: v for k, v in story.facts.items() if isinstance(v, str | int | float | bool)},
    }
    out = Path(story.settings.home).absolute() / "demo" / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    story.say(f"summary written to {out}")
    return rows
