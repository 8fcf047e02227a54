"""The drift policy: per source and metric, which statistic, its thresholds, cooldown, escalation,
inhibition, hysteresis, remediation and the circuit breaker. Pure: parsed from TOML text.

``VIGIL_DRIFT_POLICY`` names a TOML file; without it the packaged defaults apply::

    [defaults]                      # every key optional; these are the packaged values
    statistic = "psi"
    cooldown_seconds = 300          # a fingerprint routed to a tier is not routed there again sooner
    escalate_after = 3              # this many warnings of one fingerprint ...
    escalate_window_seconds = 900   # ... within this window are routed as critical
    inhibit_equal = ["service"]     # an open critical of a source mutes its warnings with equal labels
    resolve_after = 3               # windows below warning before a detector says `resolved`
    window = 50                     # observations per detector window
    baseline = "fixed"              # or "rolling"
    baseline_size = 200
    breaker_limit = 5               # remediations of one fingerprint within the window ...
    breaker_window_seconds = 600    # ... open the circuit breaker

    [thresholds.psi]                # overrides a statistic's default thresholds
    warning = 0.1
    critical = 0.25

    [[metric]]                      # the first block whose patterns match wins
    source = "*"                    # fnmatch patterns
    metric = "orders.*"
    statistic = "ks"
    warning = 0.15                  # p-values: lower is worse
    critical = 0.05
    remediation = { aggregatetype = "remediation", action = "scale", approval = true, params = { replicas = 4 } }
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from schemas.errors import ConfigurationError

Level = Literal["normal", "warning", "critical"]


@dataclass(frozen=True)
class Thresholds:
    warning: float
    critical: float
    higher_is_worse: bool = True


#: Defaults from the field: PSI 0.1 / 0.25; KS and chi-square p < 0.15 / < 0.05;
#: Jensen-Shannon and Hellinger 0.15 / 0.4; z-score 3 / 5 standard deviations. Wasserstein and
#: plain thresholds are in the metric's own unit: they have no default and must be configured.
DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "psi": Thresholds(0.1, 0.25),
    "ks": Thresholds(0.15, 0.05, higher_is_worse=False),
    "chi_square": Thresholds(0.15, 0.05, higher_is_worse=False),
    "jensen_shannon": Thresholds(0.15, 0.4),
    "hellinger": Thresholds(0.15, 0.4),
    "zscore": Thresholds(3.0, 5.0),
}
LOWER_IS_WORSE = frozenset({"ks", "chi_square"})


@dataclass(frozen=True)
class Remediation:
    """What the remediate agent emits for a critical drift: an outbox event to ``aggregatetype``."""

    action: str
    aggregatetype: str = "remediation"
    approval: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """Everything the policy says about one source and metric."""

    statistic: str = "psi"
    thresholds: Thresholds | None = None
    cooldown_s: float = 300.0
    escalate_after: int = 3
    escalate_window_s: float = 900.0
    inhibit_equal: tuple[str, ...] = ("service",)
    resolve_after: int = 3
    window: int = 50
    baseline: Literal["fixed", "rolling"] = "fixed"
    baseline_size: int = 200
    breaker_limit: int = 5
    breaker_window_s: float = 600.0
    remediation: Remediation | None = None

    def limits(self) -> Thresholds:
        """The thresholds of this rule's statistic (configured, else the default)."""
        if self.thresholds is not None:
            return self.thresholds
        default = DEFAULT_THRESHOLDS.get(self.statistic)
        if default is None:
            raise ConfigurationError(
                f"statistic {self.statistic!r} has no default thresholds: set warning and critical "
                "for it in the drift policy (VIGIL_DRIFT_POLICY)"
            )
        return default


def level(score: float, thresholds: Thresholds) -> Level:
    """The severity of ``score``: critical, warning or normal."""
    sign = 1.0 if thresholds.higher_is_worse else -1.0
    if sign * score >= sign * thresholds.critical:
        return "critical"
    if sign * score >= sign * thresholds.warning:
        return "warning"
    return "normal"


@dataclass(frozen=True)
class MetricRule:
    source: str
    metric: str
    rule: Rule


@dataclass(frozen=True)
class Policy:
    defaults: Rule = field(default_factory=Rule)
    metrics: tuple[MetricRule, ...] = ()

    def rule_for(self, source: str, metric: str) -> Rule:
        for entry in self.metrics:
            if fnmatch.fnmatchcase(source, entry.source) and fnmatch.fnmatchcase(metric, entry.metric):
                return entry.rule
        return self.defaults


_RULE_KEYS = {
    "statistic": "statistic",
    "cooldown_seconds": "cooldown_s",
    "escalate_after": "escalate_after",
    "escalate_window_seconds": "escalate_window_s",
    "inhibit_equal": "inhibit_equal",
    "resolve_after": "resolve_after",
    "window": "window",
    "baseline": "baseline",
    "baseline_size": "baseline_size",
    "breaker_limit": "breaker_limit",
    "breaker_window_seconds": "breaker_window_s",
}


def _rule(table: Mapping[str, Any], base: Rule, thresholds: Mapping[str, Thresholds], where: str) -> Rule:
    unknown = set(table) - set(_RULE_KEYS) - {"warning", "critical", "remediation", "source", "metric"}
    if unknown:
        raise ConfigurationError(f"drift policy {where}: unknown key(s) {sorted(unknown)}")
    changes: dict[str, Any] = {_RULE_KEYS[k]: v for k, v in table.items() if k in _RULE_KEYS}
    if "inhibit_equal" in changes:
        changes["inhibit_equal"] = tuple(str(v) for v in changes["inhibit_equal"])
    if changes.get("baseline", "fixed") not in ("fixed", "rolling"):
        raise ConfigurationError(f"drift policy {where}: baseline must be 'fixed' or 'rolling'")
    rule = replace(base, **changes)
    if "warning" in table or "critical" in table:
        if not ("warning" in table and "critical" in table):
            raise ConfigurationError(f"drift policy {where}: give both warning and critical")
        warning, critical = float(table["warning"]), float(table["critical"])
        higher = rule.statistic not in LOWER_IS_WORSE
        if (critical < warning) if higher else (critical > warning):
            raise ConfigurationError(
                f"drift policy {where}: critical ({critical}) must be beyond warning ({warning}) "
                f"for {rule.statistic} ({'higher' if higher else 'lower'} is worse)"
            )
        rule = replace(rule, thresholds=Thresholds(warning, critical, higher))
    elif "statistic" in changes:
        rule = replace(rule, thresholds=thresholds.get(rule.statistic))
    remediation = table.get("remediation")
    if remediation is not None:
        if "action" not in remediation:
            raise ConfigurationError(f"drift policy {where}: a remediation needs an action")
        rule = replace(
            rule,
            remediation=Remediation(
                action=str(remediation["action"]),
                aggregatetype=str(remediation.get("aggregatetype", "remediation")),
                approval=bool(remediation.get("approval", False)),
                params=dict(remediation.get("params", {})),
            ),
        )
    if rule.escalate_after < 1 or rule.resolve_after < 1 or rule.window < 1 or rule.breaker_limit < 1:
        raise ConfigurationError(
            f"drift policy {where}: escalate_after, resolve_after, window, breaker_limit must be >= 1"
        )
    return rule


def parse_policy(text: str) -> Policy:
    """A policy from TOML text; raises :class:`ConfigurationError` naming what to fix."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"drift policy is not valid TOML: {exc}") from exc
    thresholds = dict(DEFAULT_THRESHOLDS)
    for statistic, values in document.get("thresholds", {}).items():
        thresholds[statistic] = Thresholds(
            float(values["warning"]), float(values["critical"]), statistic not in LOWER_IS_WORSE
        )
    base = Rule()
    base = replace(base, thresholds=thresholds.get(base.statistic))
    defaults = _rule(document.get("defaults", {}), base, thresholds, "[defaults]")
    if defaults.thresholds is None or (
        "statistic" in document.get("defaults", {}) and "warning" not in document.get("defaults", {})
    ):
        defaults = replace(defaults, thresholds=thresholds.get(defaults.statistic))
    metrics = []
    for index, table in enumerate(document.get("metric", [])):
        where = f"[[metric]] #{index + 1}"
        rule = _rule(table, defaults, thresholds, where)
        metrics.append(MetricRule(str(table.get("source", "*")), str(table.get("metric", "*")), rule))
    return Policy(defaults, tuple(metrics))


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path`` (``VIGIL_DRIFT_POLICY``), or the packaged defaults when None."""
    if path is None:
        return Policy()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the drift policy {path}: {exc}; fix VIGIL_DRIFT_POLICY"
        ) from exc
    return parse_policy(text)
