"""The benchmark suite's pure parts: percentiles, target verdicts, the table's lines and the JSON."""

from __future__ import annotations

import json

import pytest

from bench import bench_agents, bench_cdc, bench_dedup, bench_latency, bench_memory, procs
from bench.common import Measurement, payload, percentile, table_lines
from bench.procs import Rate, metric_value
from bench.targets import (
    MET_AIM,
    MET_ALTERNATIVE,
    MET_FLOOR,
    MISSED,
    NO_PEER,
    NOT_RUN,
    TARGETS,
    Target,
    evaluate,
    verdict,
)

pytestmark = pytest.mark.timeout(10)

FASTER = Target("faster", "b", "v", "events/s", "ratio", True, 2.5, 3.0, "x")
SMALLER = Target("smaller", "b", "v", "latency", "value", False, 100.0, 50.0, "ms")


# -- percentiles ------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(list(reversed(values)), 0.5) == 50.0


def test_percentile_of_few_values_is_a_value_that_occurred() -> None:
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.5) == 1.0
    assert percentile([1.0, 2.0], 0.99) == 2.0
    assert percentile([3.0, 1.0, 2.0], 0.01) == 1.0


@pytest.mark.parametrize("q", [0.0, -0.1, 1.5])
def test_percentile_refuses_a_quantile_outside_0_1(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)


# -- verdicts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("judged", "expected"),
    [(3.2, MET_AIM), (3.0, MET_AIM), (2.7, MET_FLOOR), (2.5, MET_FLOOR), (2.49, MISSED), (None, NOT_RUN)],
)
def test_verdict_when_higher_is_better(judged: float | None, expected: str) -> None:
    assert verdict(judged, FASTER) == expected


@pytest.mark.parametrize(
    ("judged", "expected"),
    [(12.0, MET_AIM), (50.0, MET_AIM), (99.0, MET_FLOOR), (100.0, MET_FLOOR), (810.0, MISSED)],
)
def test_verdict_when_lower_is_better(judged: float, expected: str) -> None:
    assert verdict(judged, SMALLER) == expected


def test_a_target_without_an_aim_is_met_at_its_floor() -> None:
    relay = Target("relay", "b", "v", "relay cost", "value", False, 10.0, None, "%")
    assert verdict(4.0, relay) == MET_FLOOR
    assert verdict(23.0, relay) == MISSED


def test_a_number_that_misses_is_met_by_the_alternative_the_issue_accepts() -> None:
    relay = Target(
        "relay", "b", "v", "relay cost", "value", False, 10.0, None, "%", alternative="own process"
    )
    assert verdict(4.0, relay) == MET_FLOOR
    assert verdict(23.0, relay) == MET_ALTERNATIVE
    assert verdict(None, relay) == NOT_RUN


def test_evaluate_judges_the_ratio_or_the_value_of_the_matching_row() -> None:
    rows = [
        Measurement("b", "v", "events/s", 7800.0, "events/s", ratio_to="loop (1)", ratio=1.47),
        Measurement("b", "v", "latency", 42.0, "ms"),
        Measurement("b", "other", "latency", 900.0, "ms"),
    ]
    faster, smaller = evaluate(rows, [FASTER, SMALLER])
    assert (faster.judged, faster.value, faster.ratio_to, faster.verdict) == (
        1.47,
        7800.0,
        "loop (1)",
        MISSED,
    )
    assert (smaller.judged, smaller.verdict) == (42.0, MET_AIM)


def test_evaluate_says_when_a_target_was_not_run_or_had_no_peer() -> None:
    no_ratio = [Measurement("b", "v", "events/s", 7800.0, "events/s")]
    assert evaluate(no_ratio, [FASTER])[0].verdict == NO_PEER
    assert evaluate([], [FASTER, SMALLER])[1].verdict == NOT_RUN


def test_every_target_names_a_row_its_benchmark_makes() -> None:
    """The targets name variants and metrics as strings: they must be the ones the benchmarks write."""
    made = {
        ("agents", bench_agents.LOOP_ROWS),
        *(("agents", v.label) for v in bench_agents.VARIANTS),
        ("latency", bench_latency.VIGIL_FAST),
        ("latency", bench_latency.VIGIL_FAUST),
        ("memory", bench_memory.VARIANT),
        *(("dedup", p.label) for p in (*bench_dedup.PHASES, *bench_dedup.FAUST_PHASES)),
        ("cdc", bench_cdc.VARIANT),
    }
    assert {(t.bench, t.variant) for t in TARGETS} <= made
    assert len(TARGETS) == 8


# -- the table and the JSON -------------------------------------------------------------------


def test_table_lines_put_the_targets_first_with_floor_aim_and_verdict() -> None:
    rows = [Measurement("b", "v", "latency", 42.0, "ms", ratio_to="polling", ratio=0.04, notes="n")]
    targets, measurements = table_lines(rows, evaluate(rows, [SMALLER]))
    assert targets == [
        ("b", "v", "smaller", "42.0 ms", "0.04x polling", "≤ 100 ms", "≤ 50 ms", MET_AIM, "issue's now: ")
    ]
    assert measurements == [("b", "v", "latency", "42.0 ms", "0.04x polling", "", "", "", "n")]


def test_table_lines_of_a_missing_measurement() -> None:
    targets, measurements = table_lines([], evaluate([], [FASTER]))
    assert targets[0][3:8] == ("—", "", "≥ 2.5x", "≥ 3x", NOT_RUN)
    assert measurements == []


def test_payload_is_json_with_when_machine_targets_and_rows() -> None:
    rows = [Measurement("b", "v", "latency", 42.0, "ms")]
    data = payload(rows, evaluate(rows, [SMALLER]), when=0.0, machine={"cpus": 2}, scale=0.25)
    decoded = json.loads(json.dumps(data))
    assert decoded["when"] == "1970-01-01T00:00:00Z"
    assert decoded["machine"] == {"cpus": 2}
    assert decoded["scale"] == 0.25
    assert decoded["targets"][0]["verdict"] == MET_AIM
    assert decoded["targets"][0]["floor"] == 100.0
    assert decoded["results"][0]["value"] == 42.0


# -- the benchmarks' own pure parts -------------------------------------------------------------


def test_metric_value_reads_one_labelled_sample() -> None:
    text = "\n".join(
        [
            "# HELP vigil_events_consumed_total Events an agent took from Kafka.",
            "# TYPE vigil_events_consumed_total counter",
            'vigil_events_consumed_total{agent="a"} 12.0',
            'vigil_events_consumed_total{agent="bench-dedup"} 1500.0',
            'vigil_events_consumed_created{agent="bench-dedup"} 1.7e+09',
        ]
    )
    assert metric_value(text, "vigil_events_consumed_total", {"agent": "bench-dedup"}) == 1500.0
    assert metric_value(text, "vigil_events_consumed_total", {"agent": "nobody"}) is None


def test_dedup_phases_reuse_processed_ids_and_make_new_ones_that_never_collide() -> None:
    n = 10
    fresh = bench_dedup.phase_ids(n, 0)
    half = bench_dedup.phase_ids(n, 2)
    every = bench_dedup.phase_ids(n, 1)
    assert fresh == list(range(n))
    assert every == fresh
    assert sum(1 for i in half if i < n) == n // 2
    assert len(set(half)) == n
    assert all(i >= n for i in half if i not in fresh)


def test_the_all_duplicates_phase_holds_the_processed_ids_several_times_over() -> None:
    (every,) = (p for p in bench_dedup.PHASES if p.duplicate_every == 1)
    assert every.rounds == bench_dedup.DUPLICATE_ROUNDS > 1
    ids = bench_dedup.phase_ids(10, 1, every.rounds)
    assert ids == list(range(10)) * every.rounds


def test_dedup_rows_compare_each_delivery_with_its_own_fresh_events() -> None:
    batch_fresh, batch_dups = (p.label for p in bench_dedup.FAUST_PHASES)
    rates = {
        bench_dedup.FRESH: Rate(2000.0, 5.0, 10_000, 1.0, 300e-6),
        batch_fresh: Rate(5000.0, 2.0, 10_000, 1.0, 140e-6),
        batch_dups: Rate(25_000.0, 0.4, 10_000, 1.0, 28e-6),
    }
    by = {(r.variant, r.metric): r for r in bench_dedup.dedup_rows(rates)}
    cost = by[(batch_dups, "per-event cost")]
    assert (cost.ratio_to, cost.ratio) == (batch_fresh, pytest.approx(0.2))
    assert by[(batch_fresh, "per-event cost")].ratio is None
    assert by[(batch_dups, "events/s")].ratio == pytest.approx(5.0)


def test_dedup_judges_the_per_event_cost_by_the_workers_cpu_not_by_events_per_second() -> None:
    # Duplicates skipped faster than they are fetched: events/s barely moves, the CPU does.
    rates = {
        bench_dedup.FRESH: Rate(14_000.0, 3.0, 47_500, 3.4, 44e-6),
        "100% duplicates": Rate(18_500.0, 3.0, 120_000, 6.5, 6e-6, before=30_000),
    }
    rows = bench_dedup.dedup_rows(rates)
    by = {(r.variant, r.metric): r for r in rows}
    cost = by[("100% duplicates", "per-event cost")]
    assert (cost.value, cost.unit) == (pytest.approx(6.0), "µs CPU")
    assert cost.ratio == pytest.approx(6 / 44)
    assert by[("100% duplicates", "events/s")].ratio == pytest.approx(18_500 / 14_000)
    assert "120,000 of 150,000 events" in by[("100% duplicates", "events/s")].notes
    target = next(t for t in TARGETS if t.bench == "dedup")
    assert evaluate(rows, [target])[0].verdict == MET_AIM


def test_dedup_gives_no_cost_row_when_the_cpu_could_not_be_read() -> None:
    rates = {bench_dedup.FRESH: Rate(14_000.0, 3.0, 47_500, 3.4)}
    assert [r.metric for r in bench_dedup.dedup_rows(rates)] == ["events/s"]


def test_agents_rows_give_relay_cost_cpu_per_event_and_the_ratios_to_both_loops() -> None:
    outcomes = {
        bench_agents.LOOP_ROWS: bench_agents.Outcome(5000.0, 2.0, 9000, 1.8, cpu_per_event=150e-6),
        bench_agents.LOOP_SET: bench_agents.Outcome(40000.0, 2.0, 9000, 0.2, cpu_per_event=20e-6),
        bench_agents.VIGIL_1: bench_agents.Outcome(10000.0, 5.0, 9000, 0.9, cpu_per_event=100e-6),
        bench_agents.RELAY_ON: bench_agents.Outcome(8000.0, 5.0, 9000, 1.1, cpu_per_event=120e-6),
        bench_agents.RELAY_PROCESS: bench_agents.Outcome(
            9500.0, 5.0, 9000, 0.95, cpu_per_event=110e-6, relay_backlog=300, relay_drain_s=0.4
        ),
    }
    rows = bench_agents._rows(outcomes, 10_000, 150.0, (1.0, 1.0, 1.0))
    by = {(r.variant, r.metric): r for r in rows}
    assert by[(bench_agents.VIGIL_1, "events/s")].ratio == pytest.approx(2.0)
    assert by[(bench_agents.VIGIL_1, "events/s vs (2)")].ratio == pytest.approx(0.25)
    assert by[(bench_agents.VIGIL_1, "CPU per event")].value == pytest.approx(100.0)
    relay = by[(bench_agents.RELAY_ON, "relay cost")]
    assert (relay.value, relay.ratio) == (pytest.approx(20.0), pytest.approx(0.8))
    process = by[(bench_agents.RELAY_PROCESS, "relay cost")]
    assert (process.value, process.ratio) == (pytest.approx(5.0), pytest.approx(0.95))
    assert "relay backlog 300 rows at t1" in by[(bench_agents.RELAY_PROCESS, "events/s")].notes
    verdicts = {r.target.measure: r.verdict for r in evaluate(rows) if r.target.bench == "agents"}
    assert verdicts == {
        "Vigil 1 process vs per-row loop (1)": MISSED,
        "Vigil 1 process vs set-based loop (2)": MISSED,
        "Vigil CPU per event (relay off)": MISSED,
        "relay's cost on worker throughput (relay in its own process, as `vigil up` runs it)": MET_FLOOR,
    }


def test_markdown_of_a_run_has_the_header_the_targets_and_the_rows() -> None:
    from bench.markdown import markdown

    rows = [Measurement("b", "v", "latency", 42.0, "ms", ratio_to="polling", ratio=0.04, notes="a | b")]
    data = payload(
        rows,
        evaluate(rows, [SMALLER]),
        when=0.0,
        machine={"cpus": 2, "cpu_model": "X", "python": "3.11", "load_avg": [9.5, 1, 1]},
        scale=0.25,
        benchmarks=["latency"],
        seconds=60,
        failed={"cdc": "RuntimeError: no Connect\ntraceback"},
    )
    text = markdown(json.loads(json.dumps(data)))
    lines = text.splitlines()
    assert lines[0].startswith("`python -m bench --scale 0.25` (latency), 1970-01-01T00:00:00Z, 60 s; 2 x X")
    assert "| smaller | 42.0 ms | 0.04x polling | ≤ 100 ms | ≤ 50 ms | **met (aim)** |  |" in lines
    assert "| b | v | latency | 42.0 ms | 0.04x polling | a \\| b |" in lines
    assert lines[-1] == "- `cdc` failed: RuntimeError: no Connect"


def test_a_run_of_some_benchmarks_keeps_the_whole_suites_record() -> None:
    from bench.__main__ import SUITE, run_record_name

    assert run_record_name(list(SUITE)) == "latest"
    assert run_record_name([*SUITE, "drift"]) == "latest"
    assert run_record_name(["agents"]) == "latest-named"


def test_uow_runs_only_when_named_and_reports_medians_and_the_baselines_ratio() -> None:
    from bench import bench_uow
    from bench.__main__ import SUITE, discover

    assert "uow" in discover() and "uow" not in SUITE

    def run(cpu: float) -> dict[str, float]:
        return {"process_us": cpu, **{f"{step}_us": cpu / 4 for step in bench_uow.STEPS}}

    runs = {bench_uow.THIS: [run(60), run(40), run(50)], bench_uow.BASELINE: [run(100), run(80), run(70)]}
    rows = {(r.variant, r.metric): r for r in bench_uow.rows_of(runs, 10, "/tmp/base")}
    assert rows[(bench_uow.THIS, "CPU per event")].value == 50
    assert rows[(bench_uow.THIS, "CPU per event")].notes.startswith("median of 3 runs of 5,000 events")
    assert rows[(bench_uow.BASELINE, "unit of work CPU")].value == 20
    assert rows[(bench_uow.THIS, "CPU per event vs baseline")].ratio == 50 / 80
    assert (bench_uow.THIS, "CPU per event vs baseline") not in {
        (r.variant, r.metric) for r in bench_uow.rows_of({bench_uow.THIS: runs[bench_uow.THIS]}, 10, None)
    }


def test_cpu_split_puts_the_main_thread_librdkafka_and_the_other_threads_apart() -> None:
    before = {100: ("vigil", 1.0), 101: ("rdk:broker1", 0.5), 102: ("vigil", 0.2)}
    # thread 103 started in between; thread 102 ended (its CPU is gone from the reading)
    after = {100: ("vigil", 1.4), 101: ("rdk:broker1", 0.6), 103: ("rdk:main", 0.05), 104: ("vigil", 0.3)}
    split = procs.cpu_split(100, before, after)
    assert split == pytest.approx({procs.LOOP: 0.4, procs.LIBRDKAFKA: 0.15, procs.OTHER_THREADS: 0.3})


def test_cpu_split_gives_the_feeds_and_the_ledger_reader_parts_of_their_own() -> None:
    before = {100: ("vigil", 1.0), 101: ("vigil-feed-benc", 0.5), 102: ("vigil-feed-benc", 0.5)}
    after = {
        100: ("vigil", 1.5),
        101: ("vigil-feed-benc", 0.6),
        102: ("vigil-feed-benc", 0.7),
        103: ("vigil-ledger-re", 0.25),
        104: ("vigil-watches", 0.05),
    }
    split = procs.cpu_split(100, before, after)
    assert split == pytest.approx(
        {
            procs.LOOP: 0.5,
            procs.LIBRDKAFKA: 0.0,
            procs.FEEDS: 0.3,
            procs.LEDGER_READER: 0.25,
            procs.OTHER_THREADS: 0.05,
        }
    )


def test_the_latency_rows_show_the_cpu_per_row_of_each_part() -> None:
    out = bench_latency.Outcome(
        [10.0, 20.0], 1000.0, 20.0, cpu_s=0.001, cpu_split={procs.LOOP: 0.0006, procs.LIBRDKAFKA: 0.0004}
    )
    (p50, *_) = bench_latency.latency_rows({"vigil": out})
    assert "its process's CPU 500 µs per row (event loop 300, librdkafka 200)" in p50.notes


def test_the_agents_cpu_rows_show_the_cpu_per_event_of_each_part() -> None:
    variant = next(v for v in bench_agents.VARIANTS if v.label == bench_agents.VIGIL_1)
    out = bench_agents.Outcome(
        1000.0, 1.0, 10_000, 10.0, cpu_per_event=60e-6, cpu_split={procs.LOOP: 0.5, procs.LIBRDKAFKA: 0.05}
    )
    (row,) = bench_agents._cpu_rows([variant], {variant.label: out})
    assert "µs per event of its (first) process's parts (event loop 50.0, librdkafka 5.0)" in row.notes


def test_the_agents_cpu_rows_compare_vigils_cpu_with_the_set_based_loops() -> None:
    by_label = {v.label: v for v in bench_agents.VARIANTS}
    outcomes = {
        bench_agents.LOOP_SET: bench_agents.Outcome(20_000.0, 0.5, 10_000, 0.5, cpu_per_event=25e-6),
        bench_agents.VIGIL_1: bench_agents.Outcome(10_000.0, 1.0, 10_000, 1.0, cpu_per_event=70e-6),
    }
    rows = bench_agents._cpu_rows([by_label[label] for label in outcomes], outcomes)
    notes = {row.variant: row.notes for row in rows}
    assert "2.80x the set-based loop's" in notes[bench_agents.VIGIL_1]
    assert "set-based loop's" not in notes[bench_agents.LOOP_SET]


def test_steal_per_second_counts_each_interval_in_the_second_it_ends_in() -> None:
    # (epoch s, stolen ticks, all ticks) as StealWatch samples them: 200 ticks a second on 2 cores
    samples = [
        (99.9, 0, 0),
        (100.5, 0, 100),
        (101.0, 10, 200),
        (101.5, 60, 300),
        (102.0, 60, 400),
        (103.2, 60, 640),
    ]
    assert procs.steal_per_second(samples, 100.0) == [0.0, 30.0, 0.0, 0.0]
    assert procs.steal_per_second(samples[:1], 100.0) == []


def test_steal_of_run_lines_up_with_the_worst_latency_seconds() -> None:
    samples = [(10.0, 0, 0), (10.5, 0, 100), (11.5, 50, 300), (12.5, 50, 500), (13.5, 50, 700)]
    timed = [(10.0, 30.0), (11.0, 250.0), (12.5, 40.0)]
    assert bench_latency.worst_per_second(timed) == "30 250 40"
    assert bench_latency.steal_of_run(samples, timed) == [0.0, 25.0, 0.0]
    assert bench_latency.steal_of_run(samples, []) == []
    assert bench_latency._steal_text([25.0, 0.0, 3.0]) == (
        "; hypervisor steal per second of the run: at most 25% of the machine, 1 of 3 seconds over 10%"
    )
    assert bench_latency._steal_text([]) == ""


def test_time_split_tells_on_a_core_from_waiting_for_one_and_idle() -> None:
    split = procs.time_split((1.0, 0.5), (1.6, 0.7), 1.0)
    assert split == pytest.approx({procs.ON_CORE: 60.0, procs.WAITING_FOR_CORE: 20.0, procs.IDLE: 20.0})
    assert procs.time_split((0.0, 0.0), (1.0, 0.0), 0.0) == {}
