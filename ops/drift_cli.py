"""``vigil drift publish`` and ``vigil drift detect``: drift events from the command line."""

from __future__ import annotations

from collections.abc import Sequence

from ops.services import stack
from schemas.errors import ConfigurationError
from streams.drift_publish import publish_drift
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
