"""The one settings object: environment, vigil.toml, secrets, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from streams.kafka import client_config, session_timeout_ms
from streams.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_contract() -> None:
    s = load_settings()
    assert s.home == Path(".vigil")
    assert s.http_port == 6066
    assert s.database_url is None and s.kafka_bootstrap is None
    assert s.uses_embedded_postgres and s.uses_embedded_broker
    assert s.agent_modules == []


def test_environment_wins_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "vigil.toml").write_text('http_port = 7000\nagents = "a.b, c"\nkafka_bootstrap = "k:9092"\n')
    monkeypatch.setenv("VIGIL_KAFKA_BOOTSTRAP", "env:9092")
    s = load_settings()
    assert s.http_port == 7000
    assert s.agent_modules == ["a.b", "c"]
    assert s.kafka_bootstrap == "env:9092"


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_INGEST_TOKEN", "s3cret")
    monkeypatch.setenv("VIGIL_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("VIGIL_DATABASE_URL", "postgresql://vigil:dbpw@db:5432/vigil")
    s = load_settings()
    assert "s3cret" not in repr(s) and "hunter2" not in repr(s) and "dbpw" not in repr(s)
    assert s.ingest_token is not None and s.ingest_token.get_secret_value() == "s3cret"


def test_security_settings_reach_every_kafka_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_KAFKA_BOOTSTRAP", "b1:9093,b2:9093")
    monkeypatch.setenv("VIGIL_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VIGIL_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("VIGIL_KAFKA_SASL_USERNAME", "vigil")
    monkeypatch.setenv("VIGIL_KAFKA_SASL_PASSWORD", "pw")
    conf = client_config(load_settings())
    assert conf == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "vigil",
        "sasl.password": "pw",
    }


def test_session_timeout_defaults_to_kafkas_own() -> None:
    assert session_timeout_ms(Settings(kafka_bootstrap="x:1")) == 45000
    assert session_timeout_ms(Settings(kafka_bootstrap="x:1", kafka_session_timeout_ms=6000)) == 6000


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_HTTP_PORT", "not-a-port")
    with pytest.raises(ConfigurationError, match="http_port"):
        load_settings()


def test_missing_stack_names_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="VIGIL_KAFKA_BOOTSTRAP"):
        load_settings().require_bootstrap()
    with pytest.raises(ConfigurationError, match="VIGIL_DATABASE_URL"):
        load_settings().require_database_url()


@pytest.mark.parametrize("bad", ["", "has space", "slash/in", "x" * 201])
def test_a_group_instance_id_kafka_would_refuse_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="group_instance_id"):
        load_settings(group_instance_id=bad)
