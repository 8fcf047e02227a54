"""``vigil up``'s worker: it decides VIGIL_OUTBOX_RELAY only when the user did not."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.pipeline import build_supervisor, demo_worker_env
from streams.demo_script import POLICY_TOML
from streams.settings import load_settings


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
