"""Each drift statistic against scipy's (or the textbook formula's) reference on fixed samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from schemas.errors import ConfigurationError
from streams import drift_stats

pytestmark = pytest.mark.timeout(30)

RNG = np.random.default_rng(20240517)
BASE = RNG.normal(100.0, 10.0, 2000).round(3).tolist()
SAME = RNG.normal(100.0, 10.0, 500).round(3).tolist()
SHIFTED = RNG.normal(115.0, 10.0, 500).round(3).tolist()


def test_ks_is_scipys_two_sample_p_value() -> None:
    assert drift_stats.ks(BASE, SHIFTED).value == pytest.approx(stats.ks_2samp(BASE, SHIFTED).pvalue)
    assert drift_stats.ks_statistic(BASE, SHIFTED) == pytest.approx(stats.ks_2samp(BASE, SHIFTED).statistic)
    assert not drift_stats.ks(BASE, SHIFTED).higher_is_worse
    assert drift_stats.ks(BASE, SHIFTED).value < 0.05 < drift_stats.ks(BASE, SAME).value


def test_wasserstein_is_scipys() -> None:
    assert drift_stats.wasserstein(BASE, SHIFTED).value == pytest.approx(
        stats.wasserstein_distance(BASE, SHIFTED)
    )
    assert drift_stats.wasserstein([0, 1, 3], [5, 6, 8]).value == pytest.approx(5.0)


def test_jensen_shannon_and_hellinger_on_baseline_quantile_bins() -> None:
    edges = np.quantile(BASE, np.linspace(0, 1, 11)[1:-1])
    p = np.bincount(np.searchsorted(edges, BASE, side="right"), minlength=10) / len(BASE)
    q = np.bincount(np.searchsorted(edges, SHIFTED, side="right"), minlength=10) / len(SHIFTED)
    assert drift_stats.jensen_shannon(BASE, SHIFTED).value == pytest.approx(
        distance.jensenshannon(p, q, base=2)
    )
    hellinger = math.sqrt(0.5 * sum((math.sqrt(a) - math.sqrt(b)) ** 2 for a, b in zip(p, q, strict=True)))
    assert drift_stats.hellinger(BASE, SHIFTED).value == pytest.approx(hellinger)
    assert drift_stats.jensen_shannon(BASE, BASE).value == pytest.approx(0.0, abs=1e-9)


def test_psi_matches_the_formula_on_known_proportions() -> None:
    expected = [0.25, 0.25, 0.25, 0.25]
    actual = [0.1, 0.2, 0.3, 0.4]
    reference = sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))
    assert drift_stats.psi_from_proportions(expected, actual) == pytest.approx(reference)
    assert drift_stats.psi(BASE, SAME).value < 0.1 < 0.25 < drift_stats.psi(BASE, SHIFTED).value
    # an empty bin is floored, not infinite
    assert math.isfinite(drift_stats.psi_from_proportions([0.5, 0.5], [1.0, 0.0]))


def test_chi_square_is_scipys_with_baseline_shares() -> None:
    baseline = {"card": 700, "paypal": 200, "cash": 100}
    current = {"card": 50, "paypal": 30, "cash": 20}
    expected = np.array([100, 700, 200]) / 1000 * 100  # sorted: cash, card, paypal
    reference = stats.chisquare([20, 50, 30], expected).pvalue
    assert drift_stats.chi_square(baseline, current).value == pytest.approx(reference)
    assert drift_stats.chi_square(baseline, {"card": 10, "crypto": 90}).value < 0.05


def test_zscore_threshold_and_unknown_statistic() -> None:
    z = drift_stats.zscore([1.0, 2.0, 3.0], [5.0]).value
    assert z == pytest.approx(3.0)
    assert drift_stats.threshold([1.0, 7.5]).value == 7.5
    with pytest.raises(ConfigurationError, match="use one of"):
        drift_stats.score("nope", BASE, SAME)
    with pytest.raises(ConfigurationError, match="empty"):
        drift_stats.ks([], SAME)
