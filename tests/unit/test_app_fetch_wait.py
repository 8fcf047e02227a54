"""How Vigil builds its Faust app: the fetch wait of the agents' consumer (not Faust's fixed 1,500 ms),
and where Faust keeps its data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams import app as app_module
from streams.settings import Settings


def test_the_worker_consumer_takes_the_fetch_wait_of_its_app(monkeypatch: pytest.MonkeyPatch) -> None:
    def faust_creates(thread: Any, transport: Any) -> Any:
        return SimpleNamespace(_fetch_max_wait_ms=1500)  # what Faust passes to aiokafka

    monkeypatch.setattr(app_module, "_faust_create_worker_consumer", faust_creates)
    monkeypatch.setitem(app_module._FETCH_MAX_WAIT_MS, "fetch-wait-a", 20)

    def thread_of(app_id: str) -> Any:
        return SimpleNamespace(app=SimpleNamespace(conf=SimpleNamespace(id=app_id)))

    assert app_module._create_worker_consumer(thread_of("fetch-wait-a"), None)._fetch_max_wait_ms == 20
    assert app_module._create_worker_consumer(thread_of("another"), None)._fetch_max_wait_ms == 1500
    default = Settings(kafka_bootstrap="x:1")
    assert default.fetch_wait_ms(faust=True) == 20 and default.fetch_wait_ms(faust=False) == 500
    chosen = Settings(kafka_bootstrap="x:1", fetch_max_wait_ms=50)
    assert chosen.fetch_wait_ms(faust=True) == chosen.fetch_wait_ms(faust=False) == 50


def test_faust_builds_its_worker_consumer_through_vigils_hook() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert AIOKafkaConsumerThread._create_worker_consumer is app_module._create_worker_consumer


def test_with_batch_delivery_fausts_idle_consumer_keeps_its_own_wait() -> None:
    app_module.make_app(Settings(kafka_bootstrap="x:1", delivery="faust"), "fetch-wait-b")
    assert app_module._FETCH_MAX_WAIT_MS["fetch-wait-b"] == 20
    app_module.make_app(Settings(kafka_bootstrap="x:1", delivery="batch"), "fetch-wait-b")
    assert "fetch-wait-b" not in app_module._FETCH_MAX_WAIT_MS


def test_fausts_data_directory_is_under_vigils_home_not_the_working_directory() -> None:
    settings = Settings(kafka_bootstrap="x:1", home=Path("/srv/vigil-state"))
    app = app_module.make_app(settings, "datadir-a")
    assert app.conf.datadir == Path("/srv/vigil-state/faust/datadir-a-data")
