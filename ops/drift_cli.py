"""``vigil drift publish`` and ``vigil drift detect``: drift events from the command line."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ops.services import stack
from schemas.errors import ConfigurationError
from streams.drift_detect import WindowedDetector
from streams.drift_events import BaselineStats, drift_record
from streams.drift_policy import load_policy
from streams.drift_publish import DriftPublisher, publish_drift
from streams.drift_sources import Sample, stdin_sample
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


@dataclass(frozen=True)
class DetectorTarget:
    """What ``vigil drift detect`` scores, whatever feeds it: the (source, metric) and labels its
    events carry, and the policy's window, baseline and step where the command overrides them."""

    source: str
    metric: str
    labels: Sequence[str] = ()
    window: int | None = None
    baseline_size: int | None = None
    step: int | None = None


def detect(
    settings: Settings, samples: Iterable[Sample], target: DetectorTarget, *, out: Callable[[str], None]
) -> int:
    """Run the policy's detector for (source, metric) over ``(value, at)`` samples (``at`` in epoch
    seconds) and publish each detection to drift.events; return how many were published.

    Every source (stdin, a CDC field, a Postgres query) feeds this one loop.
    """
    parsed = parse_labels(target.labels)
    rule = load_policy(settings.drift_policy).rule_for(target.source, target.metric)
    rule = replace(
        rule,
        window=target.window if target.window is not None else rule.window,
        baseline_size=target.baseline_size if target.baseline_size is not None else rule.baseline_size,
    )
    detector = WindowedDetector(rule, step=target.step)
    publisher = DriftPublisher(settings)
    published = 0
    try:
        for value, at in samples:
            found = detector.observe(value, at)
            if found is None:
                continue
            record = drift_record(
                source=target.source,
                metric=target.metric,
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


def stdin_samples(lines: Iterable[str]) -> Iterator[Sample]:
    """Samples from JSON lines: a number or ``{"value": v, "at": epoch}`` (``at`` default now)."""
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield stdin_sample(line, number, time.time())


def limited(samples: Iterator[Sample], max_samples: int | None, stop: threading.Event) -> Iterator[Sample]:
    """At most ``max_samples`` samples (all when ``None``). After the last one was scored, ``stop`` is
    set and the feed resumed once, so it records its progress (a committed offset) and ends."""
    for count, sample in enumerate(samples, 1):
        yield sample
        if max_samples is not None and count >= max_samples:
            stop.set()
            for _ in samples:  # the feed sees ``stop`` and ends
                pass
            return


def run_detect(
    settings: Settings,
    *,
    stdin_lines: Iterable[str] | None,
    topic: str | None,
    field: str | None,
    group: str | None,
    query: str | None,
    every: float,
    max_samples: int | None,
    target: DetectorTarget,
    out: Callable[[str], None],
) -> int:
    """Pick the one source named (--stdin, --topic/--field or --query), feed it to :func:`detect`."""
    from ops.drift_feeds import cdc_samples, default_group, query_samples

    given = (("--stdin", stdin_lines), ("--topic", topic), ("--query", query))
    chosen = [name for name, value in given if value is not None]
    if len(chosen) != 1:
        raise ConfigurationError(
            "vigil drift detect needs one source: --stdin, --topic cdc.<schema>.<table> --field COLUMN, "
            'or --query "SELECT observed_at, value FROM …"'
            + (f" (got {' and '.join(chosen)})" if chosen else "")
        )
    if (topic is None) != (field is None):
        raise ConfigurationError("--topic and --field go together: the CDC topic and the column to score")
    if group is not None and topic is None:
        raise ConfigurationError("--group is the consumer group of --topic: give --topic too")
    if max_samples is not None and max_samples < 1:
        raise ConfigurationError("--max-samples must be at least 1")
    resolved = stack.attach(settings)
    stop = threading.Event()
    samples: Iterator[Sample]
    if stdin_lines is not None:
        samples = stdin_samples(stdin_lines)
    elif topic is not None and field is not None:
        samples = cdc_samples(resolved, topic, field, group=group or default_group(topic, field), stop=stop)
    else:
        assert query is not None
        samples = query_samples(resolved, query, every=every, stop=stop)
    # A topic or query feed runs until stopped: SIGTERM and Ctrl-C end it cleanly (offsets committed).
    # Reading stdin blocks, so there the signals keep their default behaviour.
    handled = () if stdin_lines is not None else (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in handled}
    try:
        return detect(resolved, limited(samples, max_samples, stop), target, out=out)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
