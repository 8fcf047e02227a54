"""The optional embedded schema registry (Apicurio): Vigil's codec writes the Confluent wire format
through it, and registered schema ids survive a restart and a kill -9."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from ops.services import stack as stack_mod
from schemas.codec import Codec, Decoded
from schemas.examples import EXAMPLES
from streams.settings import load_settings

pytestmark = pytest.mark.integration


def decode(url: str, data: bytes) -> Decoded:
    """Decode with a new codec (no cached schema): the schema comes from the registry."""
    with SchemaRegistryClient({"url": url}) as client:
        return Codec(None, client).decode(data)


@pytest.mark.timeout(420)
def test_codec_round_trips_through_the_embedded_registry_and_ids_survive_restarts(
    throwaway_home: Path,
) -> None:
    settings = load_settings(home=throwaway_home, embedded_schema_registry=True)
    registry = stack_mod.embedded_registry(settings)
    url = registry.start(timeout=300).url  # the first start may fetch the distribution
    assert url is not None and url.endswith("/apis/ccompat/v7")
    assert stack_mod.attach(settings).schema_registry_url == url

    tick = EXAMPLES["Tick"]
    with SchemaRegistryClient({"url": url}) as client:
        written = Codec(None, client).encode("Tick", tick)
    assert written[0] == 0, "Confluent wire format: magic byte 0, then the schema id"
    decoded = decode(url, written)
    assert (decoded.framing, decoded.record) == ("confluent", tick)
    subjects = httpx.get(f"{url}/subjects", timeout=10).json()
    assert "vigil.Tick" in subjects

    assert registry.stop()
    registry.start()
    assert decode(url, written).record == tick

    pid = registry.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    again = registry.start()
    assert again.url == url, "the registry keeps its port"
    assert decode(url, written).record == tick
    assert "vigil.Tick" in httpx.get(f"{url}/subjects", timeout=10).json()
    assert "schema registry" in stack_mod.down(settings)
