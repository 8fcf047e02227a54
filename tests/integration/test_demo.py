"""`vigil up --demo --short` end to end on a fresh home: every step of the story runs, and the summary's
counts are what Postgres and Kafka hold afterwards (counted here independently)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import KafkaError, TopicPartition

from ops.inspect import topic_infos
from ops.services import stack as stack_mod
from ops.services.procs import free_port
from streams.catalog import OUTBOX_PREFIX
from streams.demo_script import METRIC_LABELS, METRIC_NAME, METRIC_SOURCE, SUMMARY_ROWS, percentile
from streams.drift_events import fingerprint
from streams.kafka import make_consumer
from streams.settings import Settings, load_settings
from streams.watch import ABSENCE, alert_fingerprint

pytestmark = pytest.mark.integration

VIGIL = str(Path(sys.executable).parent / "vigil")


def _count(url: str, sql: str, *params: object) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _keys(settings: Settings, topic: str) -> list[bytes]:
    """The key of every message of ``topic``, read from the beginning without a group."""
    consumer = make_consumer(
        settings,
        f"test-demo-{uuid.uuid4().hex[:8]}",
        **{"enable.auto.commit": False, "enable.partition.eof": True},
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        keys, done = [], set()
        while len(done) < len(parts):
            msg = consumer.poll(5)
            assert msg is not None, f"{topic}: nothing read within 5 s"
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                done.add(msg.partition())
                continue
            keys.append(msg.key() or b"")
        return keys
    finally:
        consumer.close()


@pytest.mark.timeout(420)
def test_vigil_up_demo_tells_the_whole_story_and_its_summary_adds_up(throwaway_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_HOME"] = str(throwaway_home)
    env["COLUMNS"] = "200"
    env["VIGIL_HTTP_PORT"] = str(free_port())  # test processes run side by side: never the default
    done = subprocess.run(
        [VIGIL, "up", "--demo", "--short"], env=env, capture_output=True, text=True, timeout=400, check=False
    )
    logs = "".join(
        f"\n--- {log.name}\n{log.read_text()[-3000:]}"
        for log in sorted((throwaway_home / "logs").glob("*.log"))
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-4000:] + logs
    assert "demo complete" in done.stdout
    for step in range(1, 7):
        assert f"{step}/6" in done.stdout, f"step {step} missing"

    summary = json.loads((throwaway_home / "demo" / "summary.json").read_text())
    rows, facts = summary["rows"], summary["facts"]
    assert set(rows) == {key for key, _, _ in SUMMARY_ROWS}
    assert all(rows.values()), rows  # every row counted something

    settings = stack_mod.attach(load_settings(home=throwaway_home, embedded_schema_registry=True))
    url = settings.require_database_url()
    since = summary["started_at"]
    drift_fp = fingerprint(METRIC_SOURCE, METRIC_NAME, {**METRIC_LABELS, "run": summary["batch"]})
    absence_fp = alert_fingerprint(ABSENCE, facts["heartbeat"])
    assert facts["drift_fingerprint"] == drift_fp

    # Postgres
    assert rows["runs"] == _count(url, "SELECT count(*) FROM vigil.runs WHERE started_at >= %s", since)
    assert rows["outbox"] == _count(url, "SELECT count(*) FROM vigil.outbox WHERE created_at >= %s", since)
    delivered = _count(
        url, "SELECT count(*) FROM vigil.deliveries WHERE status = 'delivered' AND created_at >= %s", since
    )
    assert rows["delivered"] == delivered == rows["outbox"]
    assert (
        rows["reviews"]
        == _count(url, "SELECT count(*) FROM vigil.reviews WHERE created_at >= %s", since)
        == 2
    )
    assert (
        rows["approved"] == _count(url, "SELECT count(*) FROM vigil.reviews WHERE status = 'approved'") == 1
    )
    assert (
        rows["resolved"]
        == _count(url, "SELECT count(*) FROM vigil.drift_incidents WHERE status = 'closed'")
        >= 2
    )
    closed = "SELECT status FROM vigil.drift_incidents WHERE fingerprint = %s"
    assert _count(url, closed, drift_fp) == _count(url, closed, absence_fp) == "closed"
    decided = "SELECT count(*) FROM vigil.drift_decisions WHERE "
    assert rows["drift_detector"] == _count(url, decided + "fingerprint = %s", drift_fp)
    assert rows["drift_absence"] == _count(url, decided + "fingerprint = %s", absence_fp) == 2
    assert rows["alerts_warning"] == _count(url, decided + "tier = 'warning'")
    assert rows["alerts_critical"] == _count(url, decided + "tier = 'critical'")
    assert (
        _count(
            url,
            "SELECT count(*) FROM vigil.alerts WHERE kind = 'absence' AND subject = %s",
            facts["heartbeat"],
        )
        == 1
    )
    assert _count(url, "SELECT status FROM vigil.alerts WHERE subject = %s", facts["heartbeat"]) == "resolved"
    ticker_runs = "SELECT count(*) FROM vigil.runs WHERE agent = 'demo-ticker' AND status = 'succeeded'"
    assert rows["ticks"] == _count(url, ticker_runs)
    assert _count(url, ticker_runs + " AND trace->0->>'step' = 'woken'") == 1  # the wakeup fired once
    order_runs = "SELECT count(*) FROM vigil.runs WHERE agent = 'order-watch' AND status = 'succeeded'"
    assert rows["duplicates"] == _count(url, order_runs)  # the replay skipped every processed change
    with psycopg.connect(url) as conn:
        latencies = [
            float(r[0])
            for r in conn.execute(
                "SELECT extract(epoch FROM finished_at) * 1000 - (trace->0->>'committed_ms')::double precision "
                "FROM vigil.runs WHERE agent = 'order-watch' AND trace->0->>'committed_ms' IS NOT NULL"
            )
        ]
    assert rows["latency_p50"] == pytest.approx(percentile(latencies, 50))
    assert rows["latency_p99"] == pytest.approx(percentile(latencies, 99))

    # Kafka: a fresh home, so every message on these topics belongs to the story
    held = {info.name: info.messages for info in topic_infos(settings)}
    assert rows["cdc_orders"] == held["cdc.public.orders"]
    assert rows["cdc_payments"] == held["cdc.public.payments"]
    assert rows["cdc_metrics"] == held["cdc.public.metrics"]
    assert rows["ticks"] == held["vigil.ticks"]
    assert rows["alerts_warning"] == held["drift.warning"]
    assert rows["alerts_critical"] == held["drift.critical"]
    assert (
        rows["published"] == sum(n for t, n in held.items() if t.startswith(OUTBOX_PREFIX)) == rows["outbox"]
    )
    drift_keys = _keys(settings, "drift.events")
    assert rows["drift_detector"] == drift_keys.count(drift_fp.encode())
    assert rows["drift_absence"] == drift_keys.count(absence_fp.encode())

    lines = [
        json.loads(line)
        for line in (throwaway_home / "demo" / "notifications.jsonl").read_text().splitlines()
    ]
    assert len(lines) == len({line["id"] for line in lines}) == rows["delivered"]
    topics = {line["topic"] for line in lines}
    assert topics == {
        f"{OUTBOX_PREFIX}{t}" for t in ("notifications", "drift-reports", "remediation", "drift-alerts")
    }

    status = subprocess.run(
        [VIGIL, "status", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    report = json.loads(status.stdout)
    connectors = {c["name"]: c for c in report["connectors"]}
    # The connectors run in the embedded Kafka Connect, which outlives `vigil up`.
    for name in ("vigil-demo", "vigil-outbox"):
        assert connectors[name]["mode"] == "connect" and connectors[name]["state"] == "RUNNING", connectors
    assert report["outbox_backlog"] is None, "the demo's outbox is relayed by Debezium's outbox router"
