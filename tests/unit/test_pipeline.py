"""``vigil up``'s worker and relay: it decides VIGIL_OUTBOX_RELAY only when the user did not, and
then runs the relay as its own ``vigil relay`` child unless an outbox connector relays."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.pipeline import build_supervisor, demo_worker_env, lost_slots_problem
from streams.demo_script import POLICY_TOML
from streams.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _worker_env(tmp_path: Path, **overrides: object) -> dict[str, str]:
    settings = load_settings(
        home=tmp_path,
        database_url="postgresql://u@127.0.0.1:1/db",
        kafka_bootstrap="127.0.0.1:9",
        **overrides,
    )
    supervisor = build_supervisor(settings, demo=True, agent_modules=[], sink_file=None)
    return next(c.env for c in supervisor.children if c.name == "worker")


@pytest.mark.timeout(10)
def test_the_packaged_outbox_connector_turns_the_worker_relay_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_OUTBOX_RELAY", raising=False)
    assert _worker_env(tmp_path)["VIGIL_OUTBOX_RELAY"] == "false"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", ["true", "false"])
def test_a_users_vigil_outbox_relay_is_never_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("VIGIL_OUTBOX_RELAY", value)
    assert _worker_env(tmp_path)["VIGIL_OUTBOX_RELAY"] == value


def _children(tmp_path: Path, **overrides: object) -> dict[str, list[str]]:
    settings = load_settings(
        home=tmp_path,
        database_url="postgresql://u@127.0.0.1:1/db",
        kafka_bootstrap="127.0.0.1:9",
        **overrides,
    )
    supervisor = build_supervisor(settings, demo=False, agent_modules=["my.agents"], sink_file=None)
    return {c.name: c.argv for c in supervisor.children}


@pytest.mark.timeout(10)
def test_without_an_outbox_connector_the_relay_runs_as_its_own_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_OUTBOX_RELAY", raising=False)
    connectors = str(ROOT / "connectors" / "demo.json")
    children = _children(tmp_path, connectors=connectors)
    assert list(children) == ["worker", "relay"]
    assert children["relay"][-1] == "relay" and children["relay"][1:3] == ["-m", "ops"]
    assert _worker_env(tmp_path, connectors=connectors)["VIGIL_OUTBOX_RELAY"] == "false"


@pytest.mark.timeout(10)
def test_no_relay_child_when_the_outbox_connector_relays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_OUTBOX_RELAY", raising=False)
    assert list(_children(tmp_path)) == ["worker"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", ["true", "false"])
def test_a_users_vigil_outbox_relay_means_no_relay_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """true: the relay stays in the worker (as asked); false: no relay here (Debezium's, or one elsewhere)."""
    monkeypatch.setenv("VIGIL_OUTBOX_RELAY", value)
    connectors = str(ROOT / "connectors" / "demo.json")
    assert list(_children(tmp_path, connectors=connectors)) == ["worker"]


@pytest.mark.timeout(10)
def test_the_demo_worker_runs_the_demo_policy_and_its_sink_takes_every_side_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_WATCH_INTERVAL_S", raising=False)
    settings = load_settings(
        home=tmp_path, database_url="postgresql://u@127.0.0.1:1/db", kafka_bootstrap="127.0.0.1:9"
    )
    supervisor = build_supervisor(settings, demo=True, agent_modules=[], sink_file=tmp_path / "out.jsonl")
    children = {c.name: c for c in supervisor.children}
    worker = children["worker"]
    policy = Path(worker.env["VIGIL_DRIFT_POLICY"])
    assert policy.read_text() == POLICY_TOML
    assert worker.env["VIGIL_WATCH_INTERVAL_S"] == "1"
    assert "agents.demo" in worker.argv
    sink = children["sink-notifications"].argv
    topics = {sink[i + 1] for i, arg in enumerate(sink) if arg == "--topic"}
    assert topics == {
        f"vigil.outbox.{t}" for t in ("notifications", "drift-reports", "remediation", "drift-alerts")
    }


@pytest.mark.timeout(10)
def test_a_users_watch_interval_is_kept_in_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_WATCH_INTERVAL_S", "5")
    assert "VIGIL_WATCH_INTERVAL_S" not in demo_worker_env(load_settings(home=tmp_path))


def test_a_lost_slot_is_named_with_the_fix_and_healthy_ones_pass() -> None:
    assert (
        lost_slots_problem({"vigil_demo": "reserved", "vigil_outbox": "extended", "new": None}, "1GB") is None
    )
    problem = lost_slots_problem({"vigil_demo": "lost", "vigil_outbox": "reserved"}, "1GB")
    assert problem is not None
    assert "vigil_demo was invalidated" in problem and "vigil_outbox" not in problem
    assert "max_slot_wal_keep_size (1GB)" in problem
    assert "SELECT pg_drop_replication_slot('vigil_demo')" in problem
    assert "DELETE /connectors/<name>/offsets" in problem
    both = lost_slots_problem({"b": "lost", "a": "lost"}, "1GB")
    assert both is not None and both.startswith("replication slots a, b were invalidated")
