"""``vigil relay``: it refuses to run next to Debezium's outbox router, and says which setting to change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ops.relay import outbox_router_files, refuse_if_debezium_relays
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


@pytest.mark.timeout(30)
def test_vigil_relay_exits_3_naming_the_setting_before_touching_any_service(tmp_path: Path) -> None:
    env = {
        "VIGIL_HOME": str(tmp_path),
        "VIGIL_CONNECTORS": str(ROOT / "connectors"),
        "PATH": "/usr/bin:/bin",
        "COLUMNS": "300",
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops", "relay"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 3, result.stderr
    assert "outbox router relays vigil.outbox" in result.stderr
    assert "VIGIL_CONNECTORS" in result.stderr
    assert not (tmp_path / "postgres").exists()
