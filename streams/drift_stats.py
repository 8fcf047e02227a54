"""Drift statistics: how far a current sample moved away from a baseline sample. Pure functions.

Each statistic takes two samples (baseline first) and returns a :class:`Score`: the number the
thresholds are compared with, and whether a larger value means more drift (PSI, distances) or less
(the KS p-value). Continuous samples are binned on the baseline's quantiles for PSI, Jensen-Shannon
and Hellinger, so a shift anywhere in the distribution is seen with the same resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

from schemas.errors import ConfigurationError

#: Added to empty bins so that PSI's logarithm stays finite (the usual choice in the field).
EPSILON = 1e-4
DEFAULT_BINS = 10

Floats = Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class Score:
    """A statistic's value; ``higher_is_worse`` is False for p-values."""

    statistic: str
    value: float
    higher_is_worse: bool = True


def _array(sample: Sequence[float], what: str) -> npt.NDArray[np.float64]:
    values = np.asarray(sample, dtype=float)
    if values.size == 0:
        raise ConfigurationError(f"{what} sample is empty: a drift statistic needs values on both sides")
    return values


def bin_edges(baseline: Sequence[float], bins: int = DEFAULT_BINS) -> npt.NDArray[np.float64]:
    """Inner edges on the baseline's quantiles (duplicates dropped, so constant data gives one bin)."""
    base = _array(baseline, "baseline")
    quantiles = np.quantile(base, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def proportions(sample: Sequence[float], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Share of ``sample`` in each bin defined by the inner ``edges`` (open-ended first and last)."""
    values = _array(sample, "current")
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return counts / values.size


def psi_from_proportions(expected: Floats, actual: Floats, eps: float = EPSILON) -> float:
    """Population stability index: sum((a - e) * ln(a / e)), empty bins floored at ``eps``."""
    e = np.clip(np.asarray(expected, dtype=float), eps, None)
    a = np.clip(np.asarray(actual, dtype=float), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(baseline: Sequence[float], current: Sequence[float], bins: int = DEFAULT_BINS) -> Score:
    edges = bin_edges(baseline, bins)
    return Score("psi", psi_from_proportions(proportions(baseline, edges), proportions(current, edges)))


def ks(baseline: Sequence[float], current: Sequence[float]) -> Score:
    """Two-sample Kolmogorov-Smirnov; the score is the p-value (small means drifted)."""
    result = stats.ks_2samp(_array(baseline, "baseline"), _array(current, "current"))
    return Score("ks", float(result.pvalue), higher_is_worse=False)


def ks_statistic(baseline: Sequence[float], current: Sequence[float]) -> float:
    """The KS distance D (largest gap between the two empirical CDFs)."""
    return float(stats.ks_2samp(_array(baseline, "baseline"), _array(current, "current")).statistic)


def wasserstein(baseline: Sequence[float], current: Sequence[float]) -> Score:
    """Earth mover's distance, in the metric's own unit."""
    value = stats.wasserstein_distance(_array(baseline, "baseline"), _array(current, "current"))
    return Score("wasserstein", float(value))


def jensen_shannon(baseline: Sequence[float], current: Sequence[float], bins: int = DEFAULT_BINS) -> Score:
    """Jensen-Shannon distance (base 2: between 0 and 1) of the binned distributions."""
    edges = bin_edges(baseline, bins)
    value = distance.jensenshannon(proportions(baseline, edges), proportions(current, edges), base=2)
    return Score("jensen_shannon", float(value))


def hellinger_from_proportions(p: Floats, q: Floats) -> float:
    """Hellinger distance, between 0 and 1."""
    pa, qa = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    return float(np.sqrt(0.5 * np.sum((np.sqrt(pa) - np.sqrt(qa)) ** 2)))


def hellinger(baseline: Sequence[float], current: Sequence[float], bins: int = DEFAULT_BINS) -> Score:
    edges = bin_edges(baseline, bins)
    return Score(
        "hellinger", hellinger_from_proportions(proportions(baseline, edges), proportions(current, edges))
    )


def chi_square(baseline: Mapping[str, int], current: Mapping[str, int]) -> Score:
    """Chi-square test of the current category counts against the baseline's shares; score = p-value.

    A category never seen in the baseline gets the floor share ``EPSILON``, so a new category counts
    as strong drift instead of dividing by zero.
    """
    categories = sorted(set(baseline) | set(current))
    observed = np.array([current.get(c, 0) for c in categories], dtype=float)
    if observed.sum() <= 0 or sum(baseline.values()) <= 0:
        raise ConfigurationError("chi-square needs counts on both sides: a category sample is empty")
    shares = np.clip(np.array([baseline.get(c, 0) for c in categories], dtype=float), EPSILON, None)
    expected = shares / shares.sum() * observed.sum()
    result = stats.chisquare(observed, expected)
    return Score("chi_square", float(result.pvalue), higher_is_worse=False)


def zscore(baseline: Sequence[float], current: Sequence[float]) -> Score:
    """How many baseline standard deviations the current mean is away from the baseline mean."""
    base, cur = _array(baseline, "baseline"), _array(current, "current")
    std = float(np.std(base, ddof=1)) if base.size > 1 else 0.0
    gap = abs(float(np.mean(cur)) - float(np.mean(base)))
    return Score("zscore", gap / std if std > 0 else (math.inf if gap > 0 else 0.0))


def threshold(current: Sequence[float]) -> Score:
    """A plain threshold rule: the latest value itself is the score."""
    return Score("threshold", float(_array(current, "current")[-1]))


NUMERIC = {
    "psi": psi,
    "ks": ks,
    "wasserstein": wasserstein,
    "jensen_shannon": jensen_shannon,
    "hellinger": hellinger,
    "zscore": zscore,
}


def score(statistic: str, baseline: Sequence[float], current: Sequence[float]) -> Score:
    """The named numeric statistic (``threshold`` looks at ``current`` only)."""
    if statistic == "threshold":
        return threshold(current)
    try:
        return NUMERIC[statistic](baseline, current)
    except KeyError:
        known = ", ".join(sorted([*NUMERIC, "threshold"]))
        raise ConfigurationError(f"unknown drift statistic {statistic!r}: use one of {known}") from None
