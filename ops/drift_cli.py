"""``vigil drift publish`` and ``vigil drift detect``: drift events from the command line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from ops.services import stack
from schemas.errors import ConfigurationError
from streams.drift_detect import WindowedDetector
from streams.drift_events import BaselineStats, drift_record
from streams.drift_policy import load_policy
from streams.drift_publish import DriftPublisher, publish_drift
from streams.settings import Settings


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigurationError(f"--label {pair!r}: write it as name=value")
        labels[name] = value
    return labels


def publish(
    settings: Settings,
    *,
    source: str,
    metric: str,
    value: float,
    severity: str | None,
    labels: Sequence[str],
    resolved: bool,
) -> str:
    """Publish one event; return its id once the broker acknowledged it."""
    if resolved and severity not in (None, "resolved"):
        raise ConfigurationError("--resolved and --severity exclude each other: give one")
    chosen = "resolved" if resolved else (severity or "warning")
    if chosen not in ("warning", "critical", "resolved"):
        raise ConfigurationError(f"--severity {chosen!r}: use warning or critical (or --resolved)")
    parsed = parse_labels(labels)
    return publish_drift(
        stack.attach(settings), source=source, metric=metric, value=value, severity=chosen, labels=parsed
    )


def detect_stdin(
    settings: Settings,
    lines: Iterable[str],
    *,
    source: str,
    metric: str,
    labels: Sequence[str],
    window: int | None,
    baseline_size: int | None,
    step: int | None,
    out: Callable[[str], None],
) -> int:
    """Run the policy's detector for (source, metric) over JSON lines (``{"value": v, "at": t}`` or a
    bare number; ``at`` in epoch seconds, default now) and publish each detection; return how many."""
    parsed = parse_labels(labels)
    rule = load_policy(settings.drift_policy).rule_for(source, metric)
    rule = replace(
        rule,
        window=window if window is not None else rule.window,
        baseline_size=baseline_size if baseline_size is not None else rule.baseline_size,
    )
    detector = WindowedDetector(rule, step=step)
    publisher = DriftPublisher(stack.attach(settings))
    published = 0
    try:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            value, at = _observation(line, number)
            found = detector.observe(value, at)
            if found is None:
                continue
            record = drift_record(
                source=source,
                metric=metric,
                value=found.value,
                severity=found.severity,
                labels=parsed,
                observed_at=datetime.fromtimestamp(found.observed_at, UTC),
                statistic=found.statistic,
                score=found.score,
                baseline=BaselineStats(**found.baseline.__dict__),
            )
            (event_id,) = publisher.publish_records([record])
            out(f"{found.severity} {found.statistic}={found.score:.4g} {event_id}")
            published += 1
    finally:
        publisher.close()
    return published


def _observation(line: str, number: int) -> tuple[float, float]:
    try:
        document = json.loads(line)
        if isinstance(document, dict):
            return float(document["value"]), float(document.get("at", time.time()))
        return float(document), time.time()
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f'stdin line {number}: {exc}; write one JSON number or {{"value": v, "at": epoch}} a line'
        ) from exc
