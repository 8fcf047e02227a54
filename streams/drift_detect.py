"""The windowed detector: a sliding window of a metric compared with a baseline, with hysteresis.

Pure and incremental: feed observations one at a time (:meth:`WindowedDetector.observe`); every
``step`` observations once the baseline and the window are full, the window is scored against the
baseline and a :class:`Detection` may come out. The baseline is either *fixed* (the first
``baseline_size`` observations) or *rolling* (the ``baseline_size`` observations just before the
window).

Hysteresis: once the metric is warning or critical, every scored window at that level gives a
detection; it returns to normal only after ``resolve_after`` consecutive windows below the warning
level, and that gives one ``resolved`` detection. A window in between that is below warning but not
yet enough to resolve gives nothing.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from streams.drift_policy import Level, Rule, level
from streams.drift_stats import score

Severity = Literal["warning", "critical", "resolved"]


@dataclass(frozen=True)
class BaselineSummary:
    count: int
    mean: float
    stddev: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> BaselineSummary:
        if not values:  # a plain threshold rule needs no baseline
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        return cls(
            count=len(values),
            mean=statistics.fmean(values),
            stddev=statistics.stdev(values) if len(values) > 1 else 0.0,
            min=min(values),
            max=max(values),
        )


@dataclass(frozen=True)
class Detection:
    """One scored window that changed or kept the metric away from normal, or brought it back."""

    severity: Severity
    statistic: str
    score: float
    value: float  # the window's mean: what the event reports as the observed value
    baseline: BaselineSummary
    observed_at: float  # the time of the window's last observation (epoch seconds)


@dataclass
class WindowedDetector:
    rule: Rule
    step: int | None = None  # observations between two scores; default: the window (tumbling)
    state: Level = "normal"
    calm_windows: int = 0
    _baseline: deque[float] = field(init=False)
    _window: deque[float] = field(init=False)
    _since_score: int = 0

    def __post_init__(self) -> None:
        self._baseline = deque(maxlen=self.rule.baseline_size)
        self._window = deque(maxlen=self.rule.window)
        self.rule.limits()  # fail at start, not at the first window, when thresholds are missing

    def observe(self, value: float, at: float) -> Detection | None:
        """Add one observation; return a detection when a window was scored and it says something."""
        if len(self._baseline) < self.rule.baseline_size and not self._window:
            self._baseline.append(value)
            return None
        if len(self._window) == self.rule.window and self.rule.baseline == "rolling":
            self._baseline.append(self._window[0])  # the oldest window value slides into the baseline
        self._window.append(value)
        self._since_score += 1
        if len(self._window) < self.rule.window or self._since_score < (self.step or self.rule.window):
            return None
        self._since_score = 0
        return self._score(at)

    def _score(self, at: float) -> Detection | None:
        baseline, window = list(self._baseline), list(self._window)
        result = score(self.rule.statistic, baseline, window)
        current = level(result.value, self.rule.limits())
        summary = BaselineSummary.of(baseline)
        mean = statistics.fmean(window)
        if current != "normal":
            self.state, self.calm_windows = current, 0
            return Detection(current, result.statistic, result.value, mean, summary, at)
        if self.state == "normal":
            return None
        self.calm_windows += 1
        if self.calm_windows < self.rule.resolve_after:
            return None
        self.state, self.calm_windows = "normal", 0
        return Detection("resolved", result.statistic, result.value, mean, summary, at)
