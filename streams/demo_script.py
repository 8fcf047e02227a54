"""The script of ``vigil up --demo``, the pure part: its sizes, the drifting metric, the drift policy
it runs under, percentiles and the rows of its final summary. No I/O (:mod:`ops.demo_story` does it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

#: The drifting metric: source, name and labels (a ``run`` label is added per demo run, so each run
#: has a fingerprint, hence an incident, of its own).
METRIC_SOURCE = "demo"
METRIC_NAME = "checkout.latency_ms"
METRIC_LABELS = {"service": "checkout"}
REMEDIATION_TOPIC = "remediation"

#: The demo's drift policy (``VIGIL_DRIFT_POLICY`` of the demo's worker): a z-score on windows of 5
#: against a fixed baseline of 20, warning at 3 standard deviations, critical at 5; its remediation
#: waits for an approval. Other sources keep the packaged defaults.
POLICY_TOML = f"""\
[[metric]]
source = "{METRIC_SOURCE}"
metric = "{METRIC_NAME}"
statistic = "zscore"
warning = 3.0
critical = 5.0
window = 5
baseline_size = 20
resolve_after = 3
remediation = {{ action = "scale", aggregatetype = "{REMEDIATION_TOPIC}", approval = true, params = {{ service = "checkout", replicas = 4 }} }}
"""


@dataclass(frozen=True)
class Script:
    """How much of each step the demo plays; the short script (tests) plays every step, less of each."""

    orders: int = 12  # inserted; then 3 fail, 2 ship, the last is deleted
    failed: int = 3
    shipped: int = 2
    rising: tuple[float, ...] = (1.0, 3.6, 4.2, 6.5, 7.0)  # window means, in baseline std devs
    window_pause_s: float = 1.0  # between two windows of the metric: it drifts slowly
    schedule_every_s: int = 5
    ticks: int = 3  # schedule ticks to wait for
    wake_in_s: float = 3.0  # the self-set wakeup, after the first tick
    beat_every_s: float = 2.0  # the heartbeat the demo stops
    beat_grace_s: float = 1.0
    beats_before_stop: int = 3

    @classmethod
    def short(cls) -> Script:
        return cls(
            orders=6,
            failed=2,
            shipped=1,
            rising=(3.6, 6.5),
            window_pause_s=0.2,
            schedule_every_s=2,
            ticks=2,
            wake_in_s=1.0,
            beat_every_s=1.0,
            beat_grace_s=1.0,
            beats_before_stop=2,
        )


BASELINE_MEAN = 100.0
BASELINE_STD = 2.0
WINDOW = 5
BASELINE_SIZE = 20
RECOVERY_WINDOWS = 3


@dataclass(frozen=True)
class MetricSeries:
    baseline: tuple[float, ...]
    rising: tuple[tuple[float, ...], ...]  # windows drifting away, to critical
    recovery: tuple[tuple[float, ...], ...]  # windows back at the baseline: resolved after the last


def metric_series(script: Script, seed: int = 15) -> MetricSeries:
    """The metric's values: a baseline, windows drifting by ``script.rising`` std devs, a recovery.

    Seeded, so the detector's verdicts are the same on every run (a unit test pins them).
    """
    rng = random.Random(seed)
    baseline = [rng.gauss(BASELINE_MEAN, BASELINE_STD) for _ in range(BASELINE_SIZE)]
    mean = sum(baseline) / len(baseline)
    std = math.sqrt(sum((v - mean) ** 2 for v in baseline) / (len(baseline) - 1))

    def window(at_stds: float) -> tuple[float, ...]:
        noise = [rng.gauss(0.0, std / 4) for _ in range(WINDOW)]
        shift = sum(noise) / WINDOW  # centre the noise: the window's mean is exactly where it is meant to be
        return tuple(round(mean + at_stds * std + n - shift, 3) for n in noise)

    return MetricSeries(
        tuple(round(v, 3) for v in baseline),
        tuple(window(s) for s in script.rising),
        tuple(window(0.0) for _ in range(RECOVERY_WINDOWS)),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks; None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q}: use 0 to 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class SummaryRow:
    key: str  # stable name, for scripts and tests
    what: str
    value: float | None
    where: str  # where it was counted

    def shown(self) -> str:
        if self.value is None:
            return "-"
        if self.key.startswith("latency"):
            return f"{self.value:.0f} ms"
        return f"{self.value:.0f}" if float(self.value).is_integer() else f"{self.value:.1f}"


#: The summary's rows in order: (key, what, where counted).
SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("cdc_orders", "events · CDC orders", "Kafka cdc.public.orders"),
    ("cdc_payments", "events · CDC payments", "Kafka cdc.public.payments"),
    ("cdc_metrics", "events · CDC metrics", "Kafka cdc.public.metrics"),
    ("drift_detector", "events · drift (detector)", "Kafka drift.events"),
    ("drift_absence", "events · absence alerts (heartbeat)", "Kafka drift.events"),
    ("ticks", "events · ticks (schedule + wakeup)", "Kafka vigil.ticks"),
    ("runs", "agent runs", "Postgres vigil.runs"),
    ("duplicates", "duplicates skipped (replay)", "replay through order-watch"),
    ("outbox", "side effects written", "Postgres vigil.outbox"),
    ("published", "side effects published", "Kafka vigil.outbox.*"),
    ("delivered", "side effects delivered (file sink)", "Postgres vigil.deliveries"),
    ("alerts_warning", "alerts · warning tier", "Kafka drift.warning"),
    ("alerts_critical", "alerts · critical tier", "Kafka drift.critical"),
    ("resolved", "incidents resolved (drift + absence)", "Postgres vigil.drift_incidents"),
    ("reviews", "review items filed", "Postgres vigil.reviews"),
    ("approved", "review items approved", "Postgres vigil.reviews"),
    ("latency_p50", "CDC latency p50 (commit → run)", "Postgres commit ts vs runs.finished_at"),
    ("latency_p99", "CDC latency p99 (commit → run)", "Postgres commit ts vs runs.finished_at"),
)


def summary_rows(counts: dict[str, float | None]) -> list[SummaryRow]:
    """The summary's rows from the counts by key (a missing count is shown as ``-``)."""
    return [SummaryRow(key, what, counts.get(key), where) for key, what, where in SUMMARY_ROWS]


def empty_rows(rows: Sequence[SummaryRow]) -> list[str]:
    """Keys of the rows that counted nothing: each step of the demo must show in every row."""
    return [row.key for row in rows if not row.value]
