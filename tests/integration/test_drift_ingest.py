"""The HTTP ingest against a real worker: an Alertmanager payload POSTed twice is one event per
alert, routed by tier, investigated once and remediated once; unauthenticated and oversized
requests publish nothing; the token never reaches the log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from ops.services.procs import free_port
from streams.settings import Settings
from tests.integration.drift_helpers import decisions, outbox, reports, start_drift_worker
from tests.integration.workers import scalar, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TOKEN = "ingest-token-5f0c9a"


def payload(unique: str) -> dict[str, object]:
    def alert(name: str, severity: str, fp: str) -> dict[str, object]:
        # Different services: an open critical of one service would inhibit the other's warning.
        return {
            "status": "firing",
            "labels": {"alertname": name, "service": f"{unique}-{severity}", "severity": severity},
            "annotations": {"value": "0.5"},
            "startsAt": "2024-05-17T09:30:15.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": fp,
        }

    return {
        "version": "4",
        "groupKey": "{}:{}",
        "status": "firing",
        "receiver": "vigil",
        "groupLabels": {},
        "commonLabels": {"job": unique},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            alert("HighLatency", "warning", unique + "w"),
            alert("ErrorRate", "critical", unique + "c"),
        ],
    }


def alertmanager_events(database_url: str, unique: str) -> int:
    return scalar(
        database_url,
        "SELECT count(*) FROM vigil.drift_decisions WHERE source = 'alertmanager' AND fingerprint LIKE %s",
        unique + "%",
    )


def test_alertmanager_twice_is_one_event_each_routed_investigated_and_remediated(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    port = free_port()
    policy = '[[metric]]\nsource = "alertmanager"\nmetric = "ErrorRate"\nremediation = { action = "scale" }\n'
    worker = start_drift_worker(
        stack,
        fresh_database,
        tmp_path,
        unique,
        policy,
        extra_env={
            "VIGIL_HTTP_PORT": str(port),
            "VIGIL_INGEST_TOKEN": TOKEN,
            "VIGIL_INGEST_MAX_BYTES": "20000",
        },
    )
    log = tmp_path / "worker.log"
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 120, "the HTTP ingest", worker, log)
        body = json.dumps(payload(unique)).encode()

        refused = httpx.post(f"{base}/ingest/alertmanager", content=body, timeout=10)
        assert refused.status_code == 401, refused.text
        wrong = httpx.post(f"{base}/ingest/alertmanager", content=body, timeout=10,
                           headers={"Authorization": "Bearer wrong"})  # fmt: skip
        assert wrong.status_code == 401
        big = httpx.post(f"{base}/ingest/drift", content=b"[" + b" " * 30000 + b"]", timeout=10,
                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert big.status_code == 413, big.text
        bad = httpx.post(f"{base}/ingest/drift", content=b'{"source": "x"}', timeout=10,
                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert bad.status_code == 422 and "missing" in bad.json()["error"]

        ids = []
        for _ in range(2):
            accepted = httpx.post(f"{base}/ingest/alertmanager", content=body, timeout=20,
                                  headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert accepted.status_code == 202, accepted.text
            ids.append(accepted.json()["ids"])
        assert ids[0] == ids[1] and len(ids[0]) == 2

        wait_until(lambda: outbox(fresh_database, "remediation", "alertmanager") >= 1
                   and reports(fresh_database, "alertmanager") >= 1, 150, "report and remediation", worker, log)  # fmt: skip
        # Both deliveries were consumed once the router recorded all it ever will: wait for its
        # runs to cover the 4 messages (2 of them duplicates, skipped by processed_events).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and alertmanager_events(fresh_database, unique) < 2:
            time.sleep(0.5)
        assert alertmanager_events(fresh_database, unique) == 2  # one event per alert
        assert (
            scalar(
                fresh_database, "SELECT count(*) FROM vigil.drift_decisions WHERE event_id = ANY(%s)", ids[0]
            )
            == 2
        )
        assert decisions(fresh_database, "alertmanager", tier="warning") == 1
        assert decisions(fresh_database, "alertmanager", tier="critical") == 1
        assert reports(fresh_database, "alertmanager") == 1
        assert outbox(fresh_database, "remediation", "alertmanager") == 1
    finally:
        stop(worker)
    assert TOKEN not in log.read_text()
