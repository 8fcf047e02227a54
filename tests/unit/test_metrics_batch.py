"""Metrics.observe_batch counts a batch's latencies per bucket at once: the same as one observe each."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from agents.metrics import observe_all


def _buckets(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    found = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name.endswith(("_bucket", "_count", "_sum")):
                found[(sample.name, sample.labels.get("le", ""))] = sample.value
    return found


def test_observe_all_is_one_observe_per_amount() -> None:
    bounds = (0.005, 0.01, 0.025, 0.5, 1, 10)
    amounts = [0.0, 0.005, 0.0051, 0.01, 0.3, 0.5, 0.9, 1.0, 9.99, 10.0, 11.0, 1e6, 0.0049] * 7
    one, batch = CollectorRegistry(), CollectorRegistry()
    each = Histogram("lat", "latency", ["agent"], buckets=bounds, registry=one).labels("a")
    for amount in amounts:
        each.observe(amount)
    observe_all(Histogram("lat", "latency", ["agent"], buckets=bounds, registry=batch).labels("a"), amounts)
    expected, got = _buckets(one), _buckets(batch)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key


def test_observe_all_of_nothing_changes_nothing() -> None:
    registry = CollectorRegistry()
    observe_all(Histogram("lat", "latency", registry=registry), [])
    assert all(v == 0 for v in _buckets(registry).values())


def test_a_histogram_without_buckets_is_observed_one_by_one() -> None:
    seen: list[float] = []

    class Plain:
        def observe(self, amount: float) -> None:
            seen.append(amount)

    observe_all(Plain(), [1.0, 2.0])
    assert seen == [1.0, 2.0]
