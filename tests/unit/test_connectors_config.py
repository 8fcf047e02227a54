"""Connector files and the config sent to Kafka Connect for them (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.config import (
    ConnectorSpec,
    connect_config,
    derive_connector,
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


def test_connect_config_takes_the_database_from_the_url() -> None:
    spec = packaged("vigil-demo")
    config = connect_config(spec, parse_database_url("postgresql://postgres@127.0.0.1:5555/vigil"))
    assert config["name"] == "vigil-demo"
    assert (config["database.hostname"], config["database.port"], config["database.user"]) == (
        "127.0.0.1",
        "5555",
        "postgres",
    )
    assert config["database.dbname"] == "vigil"
    assert "database.password" not in config  # the URL has none: the placeholder's is dropped
    # everything else from the file is sent as is
    assert {k: v for k, v in config.items() if not k.startswith("database.") and k != "name"} == {
        k: v for k, v in spec.config.items() if not k.startswith("database.")
    }


def test_connect_config_uses_the_url_password_or_leaves_the_file_alone() -> None:
    spec = packaged("vigil-outbox")
    assert connect_config(spec, parse_database_url("postgresql://u:pw@h:1/d"))["database.password"] == "pw"
    unchanged = connect_config(spec, None)
    assert unchanged == {**spec.config, "name": "vigil-outbox"}
    assert unchanged["database.hostname"] == "postgres"


def test_derived_connector_has_its_own_names_and_keeps_the_heartbeat() -> None:
    spec = derive_connector(packaged("vigil-demo"), "T-Orders.1", ["public.t_orders"])
    assert spec.name == "T-Orders.1"
    assert spec.slot_name == spec.publication_name == "t_orders_1"
    assert spec.tables == ["public.t_orders", "public.vigil_heartbeat"]
    assert "'T-Orders.1'" in spec.config["heartbeat.action.query"]
    assert spec.heartbeat_table == "public.vigil_heartbeat"
    assert "name" not in spec.config
    assert slot_safe("A b-c") == "a_b_c"


def test_the_urls_password_reaches_debezium() -> None:
    spec = packaged("vigil-demo")
    props = connect_config(spec, parse_database_url("postgresql://postgres:p%40ss%2Fw@127.0.0.1:5555/vigil"))
    assert props["database.password"] == "p@ss/w"
