"""`vigil drift detect` over its two other sources: a CDC topic's column (Debezium-shaped change
events, a consumer group of its own that resumes from its committed offset) and a polled Postgres
query (a watermark on the time column, so no row is scored twice); both publish the same drift
events as --stdin. The CDC source is also run on a real Debezium connector."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from streams.catalog import TopicSpec
from streams.kafka import make_producer
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.drift_helpers import vigil

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

T0 = 1_780_000_000


def policy(tmp_path: Path, unique: str) -> dict[str, str]:
    path = tmp_path / "policy.toml"
    path.write_text(
        f"""
[[metric]]
source = "{unique}"
metric = "cpu"
statistic = "threshold"
warning = 10
critical = 1000
window = 1
baseline_size = 0
resolve_after = 2
"""
    )
    return {"VIGIL_DRIFT_POLICY": str(path)}


def severities(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()]


def published(stack: Settings, database_url: str, unique: str) -> list[tuple[str, float]]:
    """(severity, value) of this test's events on drift.events, in order."""
    tailed = vigil(stack, database_url, "inspect", "tail", "drift.events", "--json")
    assert tailed.returncode == 0, tailed.stderr
    events = [json.loads(line)["value"] for line in tailed.stdout.splitlines()]
    return [(e["severity"], e["value"]) for e in events if e["source"] == unique]


def produce_changes(stack: Settings, topic: str, rows: list[tuple[int, float]]) -> None:
    """Debezium JSON change events (schema envelope, as Kafka Connect's JsonConverter writes them)."""
    producer = make_producer(stack)
    for t, value in rows:
        payload = {
            "before": None,
            "after": {"id": t, "host": "api-1", "value": value},
            "source": {"name": "cdc", "schema": "public", "table": "metrics", "lsn": 1000 + t, "ts_ms": (T0 + t) * 1000},
            "op": "c",
            "ts_ms": (T0 + t) * 1000 + 5,
        }  # fmt: skip
        key = {"schema": {"type": "struct"}, "payload": {"id": t}}
        producer.produce(
            topic, key=json.dumps(key).encode(), value=json.dumps({"schema": {}, "payload": payload}).encode()
        )
    producer.produce(topic, key=b'{"id": 999}', value=None)  # a tombstone is skipped
    assert producer.flush(30) == 0


def test_cdc_field_source_scores_after_images_and_resumes_from_its_committed_offset(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    topic = f"cdc.{unique}.metrics"
    ensure_topics(stack, [TopicSpec(topic, "test CDC topic", 1, {})])
    env = policy(tmp_path, unique)
    detect = (
        "drift",
        "detect",
        "--source",
        unique,
        "--metric",
        "cpu",
        "--topic",
        topic,
        "--label",
        "service=api",
    )

    produce_changes(stack, topic, [(t, 4.0 + t) for t in range(8)])  # 4 … 11: warnings at 10, 11
    first = vigil(stack, fresh_database, *detect, "--field", "value", "--max-samples", "8", env=env)
    assert first.returncode == 0, first.stderr
    assert severities(first.stdout) == ["warning", "warning"], first.stdout

    # The same group again: only the new changes are read (the committed offset), none twice.
    produce_changes(stack, topic, [(8, 13.0), (9, 4.0), (10, 3.0)])
    second = vigil(stack, fresh_database, *detect, "--field", "value", "--max-samples", "3", env=env)
    assert second.returncode == 0, second.stderr
    assert severities(second.stdout) == ["warning", "resolved"], second.stdout

    assert published(stack, fresh_database, unique) == [
        ("warning", 10.0), ("warning", 11.0), ("warning", 13.0), ("resolved", 3.0)
    ]  # fmt: skip

    unknown = vigil(stack, fresh_database, *detect, "--field", "valu", "--group", f"{unique}-other", env=env)
    assert unknown.returncode != 0
    assert "no column 'valu'" in unknown.stderr and "host, id, value" in unknown.stderr, unknown.stderr

    missing = vigil(stack, fresh_database, "drift", "detect", "--source", unique, "--metric", "cpu",
                    "--topic", f"cdc.{unique}.nothing", "--field", "value", env=env)  # fmt: skip
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr and "connectors" in missing.stderr, missing.stderr


def test_query_source_polls_with_a_watermark_and_scores_each_row_once(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    table = f"public.{unique}"
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (id serial, name text, observed_at timestamptz, value double precision)"
        )
        conn.execute(
            f"INSERT INTO {table} (name, observed_at, value) "
            "SELECT 'cpu', to_timestamp(%s + t), 4 + t FROM generate_series(0, 7) AS t",
            (T0,),
        )
        conn.execute(
            f"INSERT INTO {table} (name, observed_at, value) VALUES ('mem', to_timestamp(%s), 500)", (T0,)
        )
    env = policy(tmp_path, unique)
    query = f"SELECT observed_at, value FROM {table} WHERE name = 'cpu'"
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    base.update({
        "VIGIL_DATABASE_URL": fresh_database, "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(), **env,
    })  # fmt: skip
    command = [str(Path(sys.executable).parent / "vigil"), "drift", "detect", "--source", unique,
               "--metric", "cpu", "--query", query, "--every", "0.3", "--max-samples", "11"]  # fmt: skip
    with subprocess.Popen(
        command, env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        # The first poll reads the 8 rows there are: warnings at 10 and 11.
        assert [proc.stdout.readline().split()[0] for _ in range(2)] == ["warning", "warning"]
        # Rows inserted later are read by a later poll, past the watermark; the first 8 not again.
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            conn.execute(
                f"INSERT INTO {table} (name, observed_at, value) VALUES "
                "('cpu', to_timestamp(%s), 13), ('cpu', to_timestamp(%s), 4), ('cpu', to_timestamp(%s), 3)",
                (T0 + 8, T0 + 9, T0 + 10),
            )
        rest, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    assert severities(rest) == ["warning", "resolved"], rest
    assert published(stack, fresh_database, unique) == [
        ("warning", 10.0), ("warning", 11.0), ("warning", 13.0), ("resolved", 3.0)
    ]  # fmt: skip

    # Without --max-samples it polls until SIGTERM, then ends cleanly.
    with subprocess.Popen(
        command[:-2], env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().split()[0] == "warning"
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=30)
    assert proc.returncode == 0, errors

    three = vigil(stack, fresh_database, "drift", "detect", "--source", unique, "--metric", "cpu",
                  "--query", f"SELECT observed_at, value, name FROM {table}", env=env)  # fmt: skip
    assert three.returncode != 0 and "must select two columns" in three.stderr, three.stderr
    unknown = vigil(stack, fresh_database, "drift", "detect", "--source", unique, "--metric", "cpu",
                    "--query", f"SELECT observed_at, valu FROM {table}", env=env)  # fmt: skip
    assert unknown.returncode != 0 and "valu" in unknown.stderr and "column" in unknown.stderr, unknown.stderr


@pytest.mark.timeout(300)
def test_cdc_field_source_reads_a_real_debezium_connector(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    """The same, end to end: rows written to a table, captured by Debezium in Kafka Connect."""
    from tests.integration.test_cdc_connect import cleanup_database, copy_connector, launch, new_home

    table = f"{unique}_metrics"
    with psycopg.connect(stack.require_database_url(), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE public.{table} (id int PRIMARY KEY, value double precision, amount numeric(10,2))"
        )
    spec = copy_connector("vigil-demo", f"{unique}-cdc", [f"public.{table}"])
    home = new_home()
    applied = None
    try:
        applied = launch(stack, home, [spec])
        with psycopg.connect(stack.require_database_url(), autocommit=True) as conn:
            for n, value in enumerate([4.0, 5.0, 12.0, 13.0, 3.0, 2.0]):
                conn.execute(f"INSERT INTO public.{table} VALUES (%s, %s, 1.5)", (n, value))
        env = policy(tmp_path, unique)
        topic = f"cdc.public.{table}"
        detect = ("drift", "detect", "--source", unique, "--metric", "cpu", "--topic", topic)
        done = vigil(stack, fresh_database, *detect, "--field", "value", "--max-samples", "6", env=env)
        assert done.returncode == 0, done.stderr
        assert severities(done.stdout) == ["warning", "warning", "resolved"], done.stdout
        assert published(stack, fresh_database, unique) == [
            ("warning", 12.0),
            ("warning", 13.0),
            ("resolved", 2.0),
        ]

        # Debezium writes numeric columns as bytes unless told otherwise: the error names the setting.
        decimal = vigil(
            stack, fresh_database, *detect, "--field", "amount", "--group", f"{unique}-amount", env=env
        )
        assert decimal.returncode != 0 and "decimal.handling.mode" in decimal.stderr, decimal.stderr
    finally:
        if applied is not None:
            applied.remove()
        cleanup_database(stack, [spec], [f"public.{table}"])
        shutil.rmtree(home, ignore_errors=True)
