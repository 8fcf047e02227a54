"""Connector files and their translation to embedded-engine properties (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.config import (
    DEFAULT_OFFSET_TABLE,
    JDBC_OFFSET_STORE,
    ConnectorSpec,
    EngineOptions,
    derive_connector,
    engine_properties,
    load_connector_file,
    load_connectors,
    parse_connector,
    parse_database_url,
    slot_safe,
)
from schemas.errors import ConfigurationError

PACKAGED = sorted((Path(__file__).resolve().parents[2] / "connectors").glob("*.json"))


def packaged(name: str) -> ConnectorSpec:
    specs = {s.name: s for path in PACKAGED for s in load_connector_file(path)}
    return specs[name]


def test_packaged_files_are_connect_rest_documents() -> None:
    assert {p.name for p in PACKAGED} >= {"demo.json", "outbox.json"}
    for path in PACKAGED:
        data = json.loads(path.read_text())
        assert set(data) == {"name", "config"}
        config = data["config"]
        assert all(isinstance(v, str) for v in config.values()), path
        assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
        assert config["plugin.name"] == "pgoutput"
        assert config["topic.prefix"] == "cdc"
        assert config["publication.autocreate.mode"] == "filtered"
        assert config["slot.name"] and config["publication.name"]
        assert int(config["heartbeat.interval.ms"]) > 0
        assert "snapshot.mode" in config
        # docker-compose values, replaced by VIGIL_DATABASE_URL when run embedded
        assert (config["database.hostname"], config["database.dbname"], config["database.user"]) == (
            "postgres",
            "vigil",
            "vigil",
        )
        spec = parse_connector(data, str(path))
        assert spec.heartbeat_table in spec.tables, "the heartbeat table must be in the publication"


def test_outbox_connector_routes_with_the_event_router() -> None:
    spec = packaged("vigil-outbox")
    assert "vigil.outbox" in spec.tables
    assert spec.config["transforms.outbox.type"] == "io.debezium.transforms.outbox.EventRouter"
    assert spec.config["transforms.outbox.route.topic.replacement"] == "vigil.outbox.${routedByValue}"
    assert spec.config["transforms.outbox.table.field.event.key"] == "aggregateid"
    assert spec.string_keys


def test_heartbeat_table_is_read_from_the_action_query() -> None:
    spec = packaged("vigil-demo")
    assert spec.heartbeat_table == "public.vigil_heartbeat"
    assert spec.with_config({"heartbeat.action.query": "SELECT 1"}).heartbeat_table is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JSON object"),
        ({"config": {}}, '"name"'),
        ({"name": "x"}, '"config"'),
        ({"name": "x", "config": {"a": "b"}}, "connector.class"),
        ({"name": "x", "config": {"connector.class": "C", "name": "y"}}, "differs"),
        ({"name": "x", "config": {"connector.class": "C", "k": ["list"]}}, "string, number or boolean"),
    ],
)
def test_invalid_documents_name_the_problem(document: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_connector(document, "f.json")


def test_numbers_and_booleans_become_strings() -> None:
    spec = parse_connector({"name": "x", "config": {"connector.class": "C", "n": 5, "b": True}})
    assert spec.config["n"] == "5"
    assert spec.config["b"] == "true"


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    doc = {"name": "x", "config": {"connector.class": "C"}}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "b.json").write_text(json.dumps([doc]))
    with pytest.raises(ConfigurationError, match="defined twice"):
        load_connectors([tmp_path / "a.json", tmp_path / "b.json"])


def test_database_url_parts() -> None:
    target = parse_database_url("postgresql://alice:s%40cret@db.example:6543/app")
    assert (target.host, target.port, target.user, target.password, target.dbname) == (
        "db.example",
        6543,
        "alice",
        "s@cret",
        "app",
    )
    assert target.jdbc_url == "jdbc:postgresql://db.example:6543/app"
    bare = parse_database_url("postgresql://postgres@127.0.0.1:5555/vigil")
    assert bare.password is None
    with pytest.raises(ConfigurationError):
        parse_database_url("mysql://x@y/z")


def test_engine_properties_take_the_database_from_the_url_and_add_offsets() -> None:
    spec = packaged("vigil-demo")
    props = engine_properties(spec, parse_database_url("postgresql://postgres@127.0.0.1:5555/vigil"))
    assert props["name"] == "vigil-demo"  # the offset key
    assert (props["database.hostname"], props["database.port"], props["database.user"]) == (
        "127.0.0.1",
        "5555",
        "postgres",
    )
    assert props["database.password"] == "vigil"  # the URL has none: the file's stays
    assert props["offset.storage"] == JDBC_OFFSET_STORE
    assert props["offset.storage.jdbc.connection.url"] == "jdbc:postgresql://127.0.0.1:5555/vigil"
    assert props["offset.storage.jdbc.connection.password"]  # the store refuses an empty one
    assert props["offset.storage.jdbc.table.name"] == DEFAULT_OFFSET_TABLE
    assert "IF NOT EXISTS" in props["offset.storage.jdbc.table.ddl"]
    # connectors share the table: each store reads and rewrites only its own rows
    own = "starts_with(offset_key, '[\"vigil-demo\",')"
    assert own in props["offset.storage.jdbc.table.select"]
    assert props["offset.storage.jdbc.table.delete"] == f"DELETE FROM %s WHERE {own}"
    assert int(props["offset.flush.interval.ms"]) <= 1000
    assert "key.converter" not in props and "value.converter" not in props
    assert props["converter.schemas.enable"] == "false"
    assert props["custom.metric.tags"] == "connector=vigil-demo"
    # everything else from the file is kept as is
    assert props["slot.name"] == spec.slot_name
    assert props["transforms"] == spec.config["transforms"]


def test_engine_properties_use_the_url_password_and_options() -> None:
    spec = packaged("vigil-outbox")
    props = engine_properties(
        spec,
        parse_database_url("postgresql://u:pw@h:1/d"),
        EngineOptions(
            offset_table="public.offs", offset_flush_interval_ms=250, extra={"poll.interval.ms": "5"}
        ),
    )
    assert props["database.password"] == "pw"
    assert props["offset.storage.jdbc.connection.password"] == "pw"
    assert props["offset.storage.jdbc.table.name"] == "public.offs"
    assert props["offset.flush.interval.ms"] == "250"
    assert props["poll.interval.ms"] == "5"


def test_offset_key_prefix_is_escaped_for_sql_and_format() -> None:
    spec = ConnectorSpec("it's 100%", {"connector.class": "C"})
    props = engine_properties(spec, parse_database_url("postgresql://u@h/d"))
    assert "'[\"it''s 100%%\",'" in props["offset.storage.jdbc.table.delete"]


def test_derived_connector_has_its_own_names_and_keeps_the_heartbeat() -> None:
    spec = derive_connector(packaged("vigil-demo"), "T-Orders.1", ["public.t_orders"])
    assert spec.name == "T-Orders.1"
    assert spec.slot_name == spec.publication_name == "t_orders_1"
    assert spec.tables == ["public.t_orders", "public.vigil_heartbeat"]
    assert "'T-Orders.1'" in spec.config["heartbeat.action.query"]
    assert spec.heartbeat_table == "public.vigil_heartbeat"
    assert "name" not in spec.config
    assert slot_safe("A b-c") == "a_b_c"


def test_the_urls_password_reaches_debezium_and_its_offset_store() -> None:
    spec = packaged("vigil-demo")
    props = engine_properties(
        spec, parse_database_url("postgresql://postgres:p%40ss%2Fw@127.0.0.1:5555/vigil")
    )
    assert props["database.password"] == "p@ss/w"
    assert props["offset.storage.jdbc.connection.password"] == "p@ss/w"
