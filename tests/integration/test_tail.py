"""``vigil inspect tail`` on the real broker: every framing decoded, read to the end,
``--limit``, ``--key``, ``--follow`` and the CLI."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ops.cli import app
from ops.tail import tail
from schemas.codec import Codec
from schemas.errors import ConfigurationError
from schemas.examples import EXAMPLES
from streams.kafka import make_producer
from streams.settings import Settings

pytestmark = pytest.mark.integration

DEBEZIUM = {"schema": {"type": "struct"}, "payload": {"op": "c", "before": None, "after": {"id": 7}}}


def _fill(
    stack: Settings, topic: str, batches: int = 4, per_batch: int = 15
) -> list[tuple[int, bytes, bytes]]:
    """Several produce batches per partition."""
    codec = Codec()
    producer = make_producer(stack)
    sent: list[tuple[int, bytes, bytes]] = []
    values = [
        lambda i: codec.encode("DriftEvent", {**EXAMPLES["DriftEvent"], "id": f"evt-{i}"}),
        lambda i: json.dumps(DEBEZIUM).encode(),
        lambda i: b"\xff\x00raw" + bytes([i % 256]),
    ]
    for batch in range(batches):
        for i in range(per_batch):
            n = batch * per_batch + i
            partition = n % 2
            key = f"k{n % 5}".encode()
            value = values[n % 3](n)
            producer.produce(topic, key=key, value=value, partition=partition)
            sent.append((partition, key, value))
        assert producer.flush(30) == 0
    return sent


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _tail(stack: Settings, topic: str, **options: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    arguments: dict[str, Any] = {"follow": False, "key": None, "limit": None, "as_json": True}
    arguments.update(options)
    tail(stack, Console(file=io.StringIO()), topic, out=out, **arguments)
    return _lines(out)


def test_tail_reads_everything_and_decodes_each_framing(
    stack: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("mixed", partitions=2)
    sent = _fill(stack, topic)
    lines = _tail(stack, topic)
    assert len(lines) == len(sent)
    for p in (0, 1):
        offsets = [line["offset"] for line in lines if line["partition"] == p]
        assert offsets == list(range(len([s for s in sent if s[0] == p])))
    formats = {line["format"] for line in lines}
    assert formats == {"avro:vigil.DriftEvent", "debezium-json", "bytes"}
    first_avro = next(line for line in lines if line["format"] == "avro:vigil.DriftEvent")
    assert first_avro["value"]["metric"] == "orders.latency_p99"
    assert set(first_avro) >= {"topic", "partition", "offset", "timestamp", "key", "headers", "value"}
    assert next(line for line in lines if line["format"] == "debezium-json")["value"]["after"] == {"id": 7}


def test_tail_limit_gives_the_last_n_per_partition(stack: Settings, make_topic: Callable[..., str]) -> None:
    topic = make_topic("limited", partitions=2)
    sent = _fill(stack, topic)
    lines = _tail(stack, topic, limit=4)
    for p in (0, 1):
        total = len([s for s in sent if s[0] == p])
        assert [line["offset"] for line in lines if line["partition"] == p] == list(range(total - 4, total))


def test_tail_key_filter(stack: Settings, make_topic: Callable[..., str]) -> None:
    topic = make_topic("keyed", partitions=2)
    sent = _fill(stack, topic)
    lines = _tail(stack, topic, key="k3")
    assert len(lines) == len([s for s in sent if s[1] == b"k3"])
    assert {line["key"] for line in lines} == {"k3"}
    assert len(_tail(stack, topic, key="k3", limit=2)) == 4  # two partitions, last two each


def test_tail_follow_prints_new_messages_until_stopped(
    stack: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("followed", partitions=1)
    producer = make_producer(stack)
    producer.produce(topic, value=b'{"n": 1}')
    assert producer.flush(30) == 0
    out = io.StringIO()
    stop = threading.Event()
    follower = threading.Thread(
        target=tail,
        args=(stack, Console(file=io.StringIO()), topic),
        kwargs={
            "follow": True,
            "key": None,
            "limit": None,
            "as_json": True,
            "out": out,
            "should_stop": stop.is_set,
        },
    )
    follower.start()
    try:
        deadline = time.monotonic() + 20
        while '"n": 1' not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
        producer.produce(topic, value=b'{"n": 2}')
        assert producer.flush(30) == 0
        while '"n": 2' not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        follower.join(10)
    assert [line["value"] for line in _lines(out)] == [{"n": 1}, {"n": 2}]


def test_tail_unknown_topic_is_a_configuration_error(stack: Settings, unique: str) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        _tail(stack, f"{unique}.missing")


def test_vigil_inspect_tail_cli(
    stack: Settings, make_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = make_topic("cli", partitions=2)
    sent = _fill(stack, topic, batches=2, per_batch=6)
    monkeypatch.setenv("VIGIL_KAFKA_BOOTSTRAP", stack.require_bootstrap())
    monkeypatch.setenv("VIGIL_DATABASE_URL", stack.require_database_url())
    if stack.kafka_session_timeout_ms is not None:
        monkeypatch.setenv("VIGIL_KAFKA_SESSION_TIMEOUT_MS", str(stack.kafka_session_timeout_ms))
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", "tail", topic, "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(sent)
    human = runner.invoke(app, ["inspect", "tail", topic, "--limit", "1"])
    assert human.exit_code == 0, human.output
    assert f"{topic}[0]@5" in human.stdout and f"{topic}[1]@5" in human.stdout
    assert "2 message(s)" in human.stdout
