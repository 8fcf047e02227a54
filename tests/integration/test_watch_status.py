"""`vigil status --json` against its schema with a running worker, a failing agent and an overdue
heartbeat; `/metrics` scraped and parsed with prometheus_client's parser; `/healthz` 503 while
Postgres is stopped, 200 once it is back."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.services.procs import free_port
from ops.services.stack import embedded_postgres
from streams.settings import Settings
from streams.watch import ABSENCE, FAILURES
from tests.integration.drift_helpers import vigil
from tests.integration.watch_helpers import alert_status, start_watch_worker
from tests.integration.workers import produce_events, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "ops" / "status.schema.json").read_text())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return found


def test_status_metrics_and_health_of_a_worker_with_a_failing_agent_and_an_overdue_heartbeat(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    a = f"{unique}-a"
    beat = f"{unique}-backup"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_watch_worker(
        stack,
        fresh_database,
        tmp_path,
        unique,
        port=port,
        module="tests.integration.agentmods.flaky",
        extra_env={"VIGIL_TEST_TOPIC": unique, "VIGIL_TEST_AGENT": unique},
    )
    log = tmp_path / "worker.log"

    def health() -> int:
        try:
            return httpx.get(f"{base}/healthz", timeout=10).status_code
        except httpx.HTTPError:
            return 0

    postgres = embedded_postgres(stack)
    try:
        wait_until(lambda: health() == 200, 120, "/healthz 200", worker, log)
        declared = vigil(stack, fresh_database, "heartbeat", "expect", beat, "--every", "1s", "--grace", "1s")
        assert declared.returncode == 0, declared.stderr
        events = [(f"{a}-{n}", {"n": n, "fail": n < 3}) for n in range(4)]
        produce_events(stack, f"{unique}.a", events[:3])  # three failures in a row
        wait_until(lambda: alert_status(fresh_database, FAILURES, a) == "open", 120, "a's alert", worker, log)
        wait_until(lambda: alert_status(fresh_database, ABSENCE, beat) == "open", 30, "the absence alert")

        status = vigil(stack, fresh_database, "status", "--json")
        assert status.returncode == 1, status.stderr
        report = json.loads(status.stdout)
        jsonschema.validate(report, SCHEMA)
        assert report["heartbeats"][0]["name"] == beat and report["heartbeats"][0]["state"] == "overdue"
        assert {(x["kind"], x["subject"]) for x in report["open_alerts"]} == {(ABSENCE, beat), (FAILURES, a)}
        agent = next(x for x in report["agents"] if x["agent"] == a)
        assert agent["consecutive_failures"] == 3 and agent["failures_last_hour"] == 3
        assert report["dlq"]["dead_lettered"] == 3
        assert any(f"agent {a} failed 3 runs in a row" in p for p in report["problems"]), report["problems"]
        human = vigil(stack, fresh_database, "status")
        assert human.returncode == 1 and "Heartbeats (overdue first)" in human.stdout

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            response = httpx.get(f"{base}/metrics", timeout=10)
            assert response.status_code == 200
            return samples(response.text)

        def metric(metric_name: str, **labels: str) -> float | None:
            return scraped().get((metric_name, tuple(sorted(labels.items()))))

        assert metric("vigil_events_dead_lettered_total", agent=a) == 3
        assert metric("vigil_events_consumed_total", agent=a) == 3
        assert metric("vigil_batch_size_events_count", agent=a) is not None
        assert metric("vigil_processing_latency_seconds_count", agent=a) is not None
        wait_until(lambda: (metric("vigil_alerts_published_total") or 0) >= 2, 30, "alerts counted")
        wait_until(lambda: metric("vigil_heartbeat_age_seconds", name=f"agent:{a}") is not None, 30, "ages")
        assert metric("vigil_outbox_backlog_rows") is not None
        wait_until(
            lambda: metric("vigil_consumer_lag_messages", agent=a, topic=f"{unique}.a") == 0, 60, "lag"
        )

        postgres.stop()
        wait_until(lambda: health() == 503, 30, "/healthz 503 without Postgres")
        body = httpx.get(f"{base}/healthz", timeout=10).json()
        assert body["parts"]["database"] != "ok" and body["parts"]["broker"] == "ok", body
        postgres.start()
        wait_until(lambda: health() == 200, 60, "/healthz 200 with Postgres back", worker, log)
    finally:
        if not postgres.status().running:
            postgres.start()
        stop(worker)
