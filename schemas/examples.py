"""One realistic example record per schema: the golden records of the tests, benchmarks and docs."""

from __future__ import annotations

import datetime as dt
from typing import Any

_T0 = dt.datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=dt.UTC)

EXAMPLES: dict[str, dict[str, Any]] = {
    "DriftEvent": {
        "id": "prometheus/orders.latency_p99/2024-05-17T09:30:15Z",
        "source": "prometheus",
        "metric": "orders.latency_p99",
        "value": 412.5,
        "baseline": {
            "count": 1440,
            "mean": 210.25,
            "stddev": 33.125,
            "min": 120.0,
            "max": 390.0,
            "window_seconds": 86400,
        },
        "statistic": "zscore",
        "score": 6.11,
        "severity": "critical",
        "labels": {"service": "orders", "env": "prod"},
        "observed_at": _T0,
        "fingerprint": "4c1f0e9a2b7d3c55",
    },
    "Tick": {
        "id": "nightly-report/2024-05-17T09:30:00Z",
        "kind": "schedule",
        "schedule_id": "nightly-report",
        "agent": None,
        "slot_time": _T0.replace(second=0, microsecond=0),
        "fired_at": _T0,
        "payload": '{"report": "orders"}',
    },
    "ProcessedEvent": {
        "agent": "investigate",
        "event_id": "prometheus/orders.latency_p99/2024-05-17T09:30:15Z",
        "run_id": "0b6f2a5e-7d4c-4e59-9a51-3f1c2d8e7b60",
        "status": "succeeded",
        "processed_at": _T0 + dt.timedelta(seconds=2),
        "source_topic": "drift.critical",
        "source_partition": 2,
        "source_offset": 18446,
        "installation": "5d0c1f0e-3b5a-4f7e-8a53-1c7e6b2d9f40",
    },
    "RunRecord": {
        "run_id": "0b6f2a5e-7d4c-4e59-9a51-3f1c2d8e7b60",
        "agent": "remediate",
        "event_id": "prometheus/orders.latency_p99/2024-05-17T09:30:15Z",
        "trigger": "drift.critical",
        "status": "succeeded",
        "attempt": 1,
        "started_at": _T0,
        "finished_at": _T0 + dt.timedelta(milliseconds=1830),
        "error": None,
        "trace": [
            {
                "name": "query_recent_deploys",
                "started_at": _T0 + dt.timedelta(milliseconds=5),
                "duration_ms": 41.5,
                "ok": True,
                "detail": '{"deploys": 2}',
            },
            {
                "name": "emit:notifications",
                "started_at": _T0 + dt.timedelta(milliseconds=1800),
                "duration_ms": 0.25,
                "ok": True,
                "detail": None,
            },
        ],
    },
    "Heartbeat": {
        "id": "nightly-etl/2024-05-17T09:30:15.123456Z",
        "name": "nightly-etl",
        "status": "beat",
        "beat_at": _T0,
        "next_expected_at": _T0 + dt.timedelta(days=1),
        "labels": {"host": "etl-1"},
    },
    "DeadLetter": {
        "error": "not Avro: starts with 'ffff', expected c301 (single-object) or 00 (Confluent wire format)",
        "error_type": "DecodeError",
        "source_topic": "drift.events",
        "source_partition": 0,
        "source_offset": 77,
        "event_id": None,
        "agent": None,
        "attempts": 0,
        "dead_lettered_at": _T0,
    },
    "ReviewItem": {
        "id": "review-000042",
        "agent": "remediate",
        "event_id": "prometheus/orders.latency_p99/2024-05-17T09:30:15Z",
        "run_id": "0b6f2a5e-7d4c-4e59-9a51-3f1c2d8e7b60",
        "reason": "scale-down of a production service needs approval",
        "proposed": '{"outbox": [{"aggregatetype": "actions", "payload": {"scale": 0}}]}',
        "status": "pending",
        "created_at": _T0,
        "decided_by": None,
        "decided_at": None,
    },
}
