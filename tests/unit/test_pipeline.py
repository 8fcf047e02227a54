"""``vigil up``'s worker: it decides VIGIL_OUTBOX_RELAY only when the user did not."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.pipeline import build_supervisor
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
