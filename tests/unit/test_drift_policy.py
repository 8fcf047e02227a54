"""The drift policy (TOML) and the windowed detector's severity and hysteresis, with no broker."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.errors import ConfigurationError
from streams.drift_detect import WindowedDetector
from streams.drift_policy import Policy, Rule, Thresholds, level, parse_policy

pytestmark = pytest.mark.timeout(30)

POLICY = """
[defaults]
cooldown_seconds = 60
escalate_after = 2

[thresholds.psi]
warning = 0.2
critical = 0.5

[[metric]]
metric = "orders.*"
statistic = "ks"
warning = 0.1
critical = 0.01
remediation = { action = "scale", approval = true, params = { replicas = 4 } }

[[metric]]
source = "grafana"
metric = "*"
statistic = "threshold"
warning = 100
critical = 200
"""


def test_field_defaults_and_overrides() -> None:
    default = Policy().rule_for("anything", "x")
    assert default.limits() == Thresholds(0.1, 0.25)
    policy = parse_policy(POLICY)
    assert policy.rule_for("cli", "cpu").limits() == Thresholds(0.2, 0.5)
    assert policy.rule_for("cli", "cpu").cooldown_s == 60
    orders = policy.rule_for("cli", "orders.latency")
    assert orders.statistic == "ks" and orders.limits() == Thresholds(0.1, 0.01, higher_is_worse=False)
    assert orders.remediation is not None and orders.remediation.approval
    assert orders.remediation.params == {"replicas": 4}
    assert orders.escalate_after == 2  # inherited from [defaults]
    assert policy.rule_for("grafana", "cpu").limits() == Thresholds(100, 200)


def test_levels_in_both_directions() -> None:
    psi = Thresholds(0.1, 0.25)
    assert [level(v, psi) for v in (0.05, 0.1, 0.3)] == ["normal", "warning", "critical"]
    ks = Thresholds(0.15, 0.05, higher_is_worse=False)
    assert [level(v, ks) for v in (0.5, 0.1, 0.01)] == ["normal", "warning", "critical"]


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("[defaults]\nbogus = 1", "unknown key"),
        ("[[metric]]\nstatistic = 'psi'\nwarning = 0.3\ncritical = 0.1", "must be beyond"),
        ("[[metric]]\nwarning = 0.3", "both warning and critical"),
        ("[[metric]]\nremediation = { approval = true }", "needs an action"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_policies_name_the_fix(text: str, fix: str) -> None:
    with pytest.raises(ConfigurationError, match=fix):
        parse_policy(text)


def test_a_statistic_without_defaults_must_be_configured() -> None:
    with pytest.raises(ConfigurationError, match="set warning and critical"):
        WindowedDetector(Rule(statistic="wasserstein"))


def _run(detector: WindowedDetector, values: list[float]) -> list[str]:
    out = []
    for i, value in enumerate(values):
        found = detector.observe(value, float(i))
        if found is not None:
            out.append(found.severity)
    return out


def test_slow_drift_warns_then_goes_critical_then_resolves_with_hysteresis() -> None:
    rng = np.random.default_rng(7)
    # windows of 400: PSI's sampling noise (about bins/n) stays well under the 0.1 warning level
    rule = Rule(statistic="psi", window=400, baseline_size=1000, resolve_after=2)
    detector = WindowedDetector(rule)
    baseline = rng.normal(0, 1, 1000).tolist()
    steady = rng.normal(0, 1, 800).tolist()
    drifted_a_little = rng.normal(0.3, 1, 400).tolist()
    drifted_a_lot = rng.normal(2.0, 1, 800).tolist()
    back = rng.normal(0, 1, 1200).tolist()
    severities = _run(detector, baseline + steady + drifted_a_little + drifted_a_lot + back)
    assert severities == ["warning", "critical", "critical", "resolved"]


def test_one_calm_window_is_not_enough_to_resolve() -> None:
    rule = Rule(
        statistic="threshold", thresholds=Thresholds(10, 20), window=1, baseline_size=0, resolve_after=3
    )
    detector = WindowedDetector(rule)
    assert _run(detector, [1, 15, 1, 15, 1, 1, 1, 1]) == ["warning", "warning", "resolved"]
    assert _run(WindowedDetector(rule), [25, 1, 1]) == ["critical"]


def test_rolling_baseline_follows_the_metric() -> None:
    rule = Rule(statistic="zscore", window=5, baseline_size=20, baseline="rolling", resolve_after=1)
    ramp = [float(i % 3) for i in range(20)] + [10.0] * 5 + [10.0] * 40
    severities = _run(WindowedDetector(rule), ramp)
    assert severities[0] == "critical" and severities[-1] == "resolved"
    # with a fixed baseline the level shift stays critical
    assert set(_run(WindowedDetector(Rule(statistic="zscore", window=5, baseline_size=20)), ramp)) == {
        "critical"
    }
