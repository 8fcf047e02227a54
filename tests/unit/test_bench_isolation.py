"""The benchmarks' own state directory: which processes are other Vigil stacks, and what may be emptied."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.isolation import check_emptiable, other_stacks_text, stack_home_of


def test_an_embedded_kafka_or_connect_jvm_names_its_state_directory() -> None:
    kafka = ["java", "-Xmx512m", "-cp", "/c/*", "kafka.Kafka", "/srv/app/.vigil/kafka/kafka.properties"]
    connect = [
        "java",
        "org.apache.kafka.connect.cli.ConnectDistributed",
        "/x/.vigil-bench/connect/connect.properties",
    ]
    assert stack_home_of(kafka) == (Path("/srv/app/.vigil"), "kafka")
    assert stack_home_of(connect) == (Path("/x/.vigil-bench"), "connect")


def test_an_embedded_postmaster_names_its_state_directory() -> None:
    argv = ["/usr/lib/postgresql/15/bin/postgres", "-D", "/srv/app/.vigil/postgres/data"]
    assert stack_home_of(argv) == (Path("/srv/app/.vigil"), "postgres")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["postgres: vigil vigil 127.0.0.1(5432) idle"],  # a backend, not the postmaster
        ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main"],  # not Vigil's
        ["java", "kafka.Kafka", "/etc/kafka/server.properties"],
        ["java", "kafka.Kafka", "/etc/kafka.properties"],  # not under <home>/kafka/
        ["/usr/lib/postgresql/15/bin/postgres", "-D"],
    ],
)
def test_other_processes_are_not_vigil_stacks(argv: list[str]) -> None:
    assert stack_home_of(argv) is None


def test_the_warning_names_each_stack_and_how_to_stop_it() -> None:
    assert other_stacks_text({}) == ""
    text = other_stacks_text({"/srv/app/.vigil": ["kafka pid 12", "connect pid 13"]})
    assert "/srv/app/.vigil: kafka pid 12, connect pid 13" in text
    assert "VIGIL_HOME=/srv/app/.vigil vigil services down" in text


def test_only_a_vigil_state_directory_is_emptied(tmp_path: Path) -> None:
    check_emptiable(tmp_path / "absent")
    state = tmp_path / "state"
    for name in ("postgres", "kafka", "connect", "logs"):
        (state / name).mkdir(parents=True)
    check_emptiable(state)
    (state / "thesis.tex").write_text("")
    with pytest.raises(RuntimeError, match=r"thesis\.tex.*VIGIL_BENCH_HOME"):
        check_emptiable(state)
    with pytest.raises(RuntimeError, match="not a directory"):
        check_emptiable(state / "thesis.tex")
