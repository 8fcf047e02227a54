"""The demo's pure parts: its metric drifts to warning, then critical, and resolves; percentiles;
the summary's rows."""

from __future__ import annotations

import pytest

from streams.demo_script import (
    METRIC_NAME,
    METRIC_SOURCE,
    POLICY_TOML,
    SUMMARY_ROWS,
    Script,
    empty_rows,
    metric_series,
    percentile,
    summary_rows,
)
from streams.drift_detect import WindowedDetector
from streams.drift_policy import parse_policy

pytestmark = pytest.mark.timeout(10)


def _verdicts(script: Script) -> list[str | None]:
    series = metric_series(script)
    rule = parse_policy(POLICY_TOML).rule_for(METRIC_SOURCE, METRIC_NAME)
    detector = WindowedDetector(rule)
    at = 0.0
    for value in series.baseline:
        assert detector.observe(value, at) is None
    verdicts = []
    for window in (*series.rising, *series.recovery):
        found = None
        for value in window:
            at += 1
            found = detector.observe(value, at) or found
        verdicts.append(found.severity if found else None)
    return verdicts


def test_the_metric_warns_then_goes_critical_then_resolves() -> None:
    assert _verdicts(Script()) == [None, "warning", "warning", "critical", "critical", None, None, "resolved"]


def test_the_short_script_plays_every_verdict_once() -> None:
    assert _verdicts(Script.short()) == ["warning", "critical", None, None, "resolved"]


def test_the_policy_puts_the_remediation_behind_an_approval() -> None:
    rule = parse_policy(POLICY_TOML).rule_for(METRIC_SOURCE, METRIC_NAME)
    assert rule.remediation is not None and rule.remediation.approval
    assert parse_policy(POLICY_TOML).rule_for("vigil", "absence").remediation is None


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_rows_keep_their_order_and_name_the_empty_ones() -> None:
    counts: dict[str, float | None] = {key: 1 for key, _, _ in SUMMARY_ROWS}
    counts.update(ticks=0, duplicates=None, latency_p50=12.4)
    rows = summary_rows(counts)
    assert [r.key for r in rows] == [key for key, _, _ in SUMMARY_ROWS]
    assert empty_rows(rows) == ["ticks", "duplicates"]
    shown = {r.key: r.shown() for r in rows}
    assert shown["latency_p50"] == "12 ms" and shown["duplicates"] == "-" and shown["runs"] == "1"
