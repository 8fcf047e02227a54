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
