"""Drift events as records: fingerprints, stable event ids, and the ``DriftEvent`` dict. Pure.

A fingerprint names *what* drifts (source, metric, labels), so the firing and the resolved event of
one alert share it. An event id names *one observation* of it (fingerprint, severity, time), so a
producer that sends the same observation twice (a retried webhook, a re-run CLI) makes one event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.errors import ConfigurationError

SEVERITIES = ("warning", "critical", "resolved")


def fingerprint(source: str, metric: str, labels: Mapping[str, str]) -> str:
    """16 hex digits, stable for (source, metric, labels) whatever the labels' order."""
    canonical = json.dumps([source, metric, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def drift_event_id(source: str, fp: str, severity: str, observed_at: datetime) -> str:
    """``<source>/<fingerprint>/<severity>/<time in µs>``: one observation, one id."""
    micros = int(observed_at.timestamp() * 1_000_000)
    return f"{source}/{fp}/{severity}/{micros}"


@dataclass(frozen=True)
class BaselineStats:
    count: int
    mean: float
    stddev: float
    min: float
    max: float
    window_seconds: int = 0


def drift_record(
    *,
    source: str,
    metric: str,
    value: float,
    severity: str,
    labels: Mapping[str, str] | None = None,
    observed_at: datetime | None = None,
    statistic: str = "external",
    score: float | None = None,
    baseline: BaselineStats | None = None,
    fp: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``DriftEvent`` record (the Avro schema's fields), its id and fingerprint filled in."""
    if severity not in SEVERITIES:
        raise ConfigurationError(f"severity {severity!r}: use warning, critical or resolved")
    if not source or not metric:
        raise ConfigurationError("a drift event needs a source and a metric")
    labels = {str(k): str(v) for k, v in (labels or {}).items()}
    at = observed_at or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    fp = fp or fingerprint(source, metric, labels)
    return {
        "id": event_id or drift_event_id(source, fp, severity, at),
        "source": source,
        "metric": metric,
        "value": float(value),
        "baseline": None if baseline is None else dict(baseline.__dict__),
        "statistic": statistic,
        "score": float(value if score is None else score),
        "severity": severity,
        "labels": labels,
        "observed_at": at,
        "fingerprint": fp,
    }


def as_epoch(value: Any) -> float:
    """A record's ``observed_at`` (datetime, or µs as an int) in epoch seconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value) / 1_000_000
