"""The cdc benchmark's engine-alone peer: its config from the bench connector, its stdout lines, the
rate, and the ratio that the issue's CDC target judges."""

from __future__ import annotations

import pytest

from bench import bench_cdc
from bench.common import Measurement, with_ratio
from bench.engine_alone import EngineReport, engine_config, parse_line, properties_text, rows_per_second
from bench.targets import MET_AIM, MET_FLOOR, MISSED, TARGETS, evaluate

pytestmark = pytest.mark.timeout(10)

CONNECTOR = {
    "name": "bench1a2b3c-cdc",
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "tasks.max": "1",
    "database.hostname": "127.0.0.1",
    "database.port": "54321",
    "database.user": "vigil",
    "database.dbname": "vigil",
    "topic.prefix": "cdc",
    "plugin.name": "pgoutput",
    "slot.name": "bench1a2b3c_cdc",
    "publication.name": "bench1a2b3c_cdc",
    "publication.autocreate.mode": "filtered",
    "table.include.list": "public.bench1a2b3c_rows,public.vigil_heartbeat",
    "snapshot.mode": "initial",
    "decimal.handling.mode": "string",
    "heartbeat.interval.ms": "10000",
    "heartbeat.action.query": "INSERT INTO public.vigil_heartbeat (id, beat_at) VALUES ('x', now())",
    "poll.interval.ms": "10",
    "custom.metric.tags": "connector=bench1a2b3c-cdc",
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "false",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "false",
    "transforms": "dropHeartbeatRows",
    "transforms.dropHeartbeatRows.type": "org.apache.kafka.connect.transforms.Filter",
    "predicates": "isHeartbeatTable",
    "predicates.isHeartbeatTable.pattern": "cdc\\.public\\.vigil_heartbeat",
}


# -- the engine's config ------------------------------------------------------------------------


def test_engine_config_keeps_the_connectors_own_settings() -> None:
    config = engine_config(CONNECTOR, name="e", slot="e_slot", table="public.t")
    for key in (
        "connector.class",
        "database.hostname",
        "database.port",
        "database.user",
        "database.dbname",
        "topic.prefix",
        "plugin.name",
        "publication.autocreate.mode",
        "decimal.handling.mode",
        "poll.interval.ms",
    ):
        assert config[key] == CONNECTOR[key]


def test_engine_config_drops_what_only_kafka_connect_reads() -> None:
    config = engine_config(CONNECTOR, name="e", slot="e_slot", table="public.t")
    assert not [k for k in config if k.startswith(("tasks.", "transforms", "predicates", "heartbeat."))]
    assert not {"key.converter", "value.converter", "custom.metric.tags"} & set(config)


def test_engine_config_keeps_the_converters_settings_for_the_engines_own_json_converter() -> None:
    config = engine_config(CONNECTOR, name="e", slot="e_slot", table="public.t")
    assert config["key.converter.schemas.enable"] == "false"
    assert config["value.converter.schemas.enable"] == "false"


def test_engine_config_has_its_own_slot_table_no_snapshot_and_memory_offsets() -> None:
    config = engine_config(CONNECTOR, name="e", slot="e_slot", table="public.t")
    assert config["name"] == "e"
    assert (config["slot.name"], config["publication.name"]) == ("e_slot", "e_slot")
    assert config["table.include.list"] == "public.t"
    assert config["snapshot.mode"] == "no_data"
    assert config["offset.storage"] == "org.apache.kafka.connect.storage.MemoryOffsetBackingStore"
    assert config["offset.flush.interval.ms"] == "1000"
    assert CONNECTOR["slot.name"] == "bench1a2b3c_cdc"  # the connector's config is not changed


def test_properties_text_escapes_what_java_properties_would_read_otherwise() -> None:
    text = properties_text(
        {
            "plain": "value with = and : inside",
            "pattern": "cdc\\.public\\.t",
            "lines": "a\nb",
            "lead": " space",
            "odd key=x": "v",
        }
    )
    assert text.splitlines() == [
        "plain=value with = and : inside",
        "pattern=cdc\\\\.public\\\\.t",
        "lines=a\\nb",
        "lead=\\ space",
        "odd\\ key\\=x=v",
    ]


# -- the peer's stdout --------------------------------------------------------------------------


def test_parse_line_reads_the_peers_progress_and_stop() -> None:
    progress = parse_line(
        '{"event": "progress", "count": 2500, "first_at": 1764525600.123456, "last_at": 1764525601.5}\n'
    )
    assert progress == EngineReport("progress", 2500, 1764525600.123456, 1764525601.5)
    stopped = parse_line(
        '{"event": "stopped", "count": 3, "first_at": 1.0, "last_at": 2.0, "error": "slot \\"x\\" is in use"}'
    )
    assert stopped == EngineReport("stopped", 3, 1.0, 2.0, 'slot "x" is in use')
    assert parse_line('{"event": "polling"}') == EngineReport("polling")


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[main] WARN io.debezium.SomeClass - a log line on stdout",
        "[1, 2]",
        '{"count": 3}',
        '{"event": "progress", "count": "many"}',
    ],
)
def test_parse_line_ignores_what_is_not_a_report(line: str) -> None:
    assert parse_line(line) is None


# -- the rate and the ratio ---------------------------------------------------------------------


def test_rows_per_second_counts_from_the_first_commit_to_the_last_row() -> None:
    assert rows_per_second(12_500, 100.0, 102.5) == pytest.approx(5000.0)
    with pytest.raises(ValueError):
        rows_per_second(12_500, 100.0, 100.0)


@pytest.mark.parametrize(("connect", "verdict"), [(9500.0, MET_AIM), (7500.0, MET_FLOOR), (5000.0, MISSED)])
def test_the_cdc_target_judges_connect_against_the_engine_alone(connect: float, verdict: str) -> None:
    rows = with_ratio(
        [
            Measurement(bench_cdc.BENCH, bench_cdc.VARIANT, bench_cdc.BULK, connect, "rows/s"),
            Measurement(bench_cdc.BENCH, bench_cdc.VARIANT, "latency p99 @ steady", 40.0, "ms"),
            Measurement(bench_cdc.BENCH, bench_cdc.ENGINE, bench_cdc.BULK, 10_000.0, "rows/s"),
        ],
        bench_cdc.ENGINE,
    )
    [result] = evaluate(rows, [t for t in TARGETS if t.bench == "cdc"])
    assert result.ratio == pytest.approx(connect / 10_000.0)
    assert result.ratio_to == bench_cdc.ENGINE
    assert result.verdict == verdict


def test_a_missing_tool_is_named_with_what_to_install() -> None:
    import pytest

    from ops.services.java import require_tool
    from schemas.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="install the thing"):
        require_tool("vigil-no-such-tool", "install the thing")
    assert require_tool("sh", "never").endswith("/sh")


def test_the_jit_load_is_each_jvms_compiler_cpu_over_the_wall_time_between_two_readings() -> None:
    before = bench_cdc.JitReading(100.0, {"connect": 10.0, "kafka": 5.0, "engine": 3.0})
    after = bench_cdc.JitReading(
        102.0,
        {
            "connect": 10.1,  # 0.1 s in 2 s
            "kafka": 5.0,  # idle
            "engine": 2.0,  # a compiler thread ended: its CPU left the sum, never a negative load
            "registry": 1.0,  # not read before: not judged
        },
    )
    cores = bench_cdc.jit_cores(before, after)
    assert cores == {"connect": pytest.approx(0.05), "kafka": 0.0, "engine": 0.0}
    assert bench_cdc.jit_settled(cores)
    # The limit is on the sum: three JVMs each just under it are not settled.
    assert not bench_cdc.jit_settled(dict.fromkeys(("connect", "kafka", "engine"), bench_cdc.JIT_SETTLED / 2))
    with pytest.raises(ValueError):
        bench_cdc.jit_cores(after, before)


def test_the_warm_up_notes_say_how_it_ended() -> None:
    warm = bench_cdc._WarmUp([{"connect": 0.4, "engine": 0.02}])
    assert not warm.settled
    assert "rounds, stopped at" in warm.notes(150_000)
    warm.rounds.append({"connect": 0.06, "engine": 0.01})
    assert warm.settled
    assert warm.notes(150_000) == (
        "warmed with 150,000 rows and 2 rounds, until the JIT compilers kept at most 0.10 of a core busy "
        "(last: connect 0.06, engine 0.01 of a core)"
    )


def test_only_the_jit_compiler_threads_count_as_the_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import procs

    threads = {
        1: ("java", 9.0),
        2: ("C2 CompilerThre", 4.0),
        3: ("C1 CompilerThre", 1.5),
        4: ("GC Thread#0", 2.0),
    }
    monkeypatch.setattr(procs, "thread_cpu", lambda pid: threads)
    assert procs.jit_seconds(1234) == pytest.approx(5.5)
