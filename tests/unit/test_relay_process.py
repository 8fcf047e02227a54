"""``vigil relay``: it refuses to run next to Debezium's outbox router, and says which setting to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.relay import outbox_router_files, refuse_if_debezium_relays
from ops.status import relay_entry, relay_process
from ops.worker import prunes_outbox_by_age
from schemas.errors import ConfigurationError
from streams.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(10)
def test_the_packaged_outbox_connector_makes_vigil_relay_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_CONNECTORS", raising=False)
    settings = load_settings(home=tmp_path)
    assert [p.name for p in outbox_router_files(settings)] == ["outbox.json"]
    with pytest.raises(ConfigurationError, match="VIGIL_CONNECTORS unset") as caught:
        refuse_if_debezium_relays(settings)
    assert "outbox.json" in str(caught.value) and "publish every outbox row twice" in str(caught.value)


@pytest.mark.timeout(10)
def test_connectors_without_the_outbox_router_let_vigil_relay_run(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, connectors=str(ROOT / "connectors" / "demo.json"))
    assert outbox_router_files(settings) == []
    refuse_if_debezium_relays(settings)  # no error


@pytest.mark.timeout(10)
def test_the_worker_prunes_unsent_outbox_rows_only_when_debezium_publishes_them(tmp_path: Path) -> None:
    demo_only = str(ROOT / "connectors" / "demo.json")
    with_router = str(ROOT / "connectors")
    assert prunes_outbox_by_age(load_settings(home=tmp_path, outbox_relay=False, connectors=with_router))
    # a `vigil relay` process (vigil up) or none yet: rows are kept until they are marked sent
    assert not prunes_outbox_by_age(load_settings(home=tmp_path, outbox_relay=False, connectors=demo_only))
    assert not prunes_outbox_by_age(load_settings(home=tmp_path, outbox_relay=True, connectors=with_router))


def test_status_names_the_process_a_relay_runs_in() -> None:
    detail = {"published": 3, "worker": "host:42", "runs_in": "vigil relay"}
    entry = relay_entry("relay:vigil", "ok", None, False, detail)
    assert relay_process(entry) == "vigil relay host:42"
    # a heartbeat written before runs_in existed came from a worker's thread
    assert relay_process(relay_entry("relay:vigil", "ok", None, False, {"worker": "h:1"})) == "worker h:1"
