"""The CLI surface: every contract command exists; unbuilt ones say so and fail."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ops.cli import app

runner = CliRunner()

CONTRACT = {
    "up": [],
    "services": ["up", "down", "status"],
    "connectors": ["list", "apply", "run", "status"],
    "worker": [],
    "relay": [],
    "drift": ["publish", "detect"],
    "replay": [],
    "inspect": ["topics", "groups", "tail", "get"],
    "status": [],
    "schedule": ["add", "list", "remove", "pause", "resume"],
    "watch": ["add", "list", "remove"],
    "heartbeat": ["expect", "beat", "list"],
    "review": ["list", "approve", "reject"],
    "db": ["upgrade"],
    "doctor": [],
}


def test_help_lists_every_contract_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in CONTRACT:
        assert command in result.output, command


@pytest.mark.parametrize(("group", "subs"), [(g, s) for g, s in CONTRACT.items() if s])
def test_every_subcommand_exists(group: str, subs: list[str]) -> None:
    result = runner.invoke(app, [group, "--help"])
    assert result.exit_code == 0, result.output
    for sub in subs:
        assert sub in result.output, f"vigil {group} {sub}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["replay", "drift.events"], "--to-topic SANDBOX or --agent NAME"),
        (["replay", "t", "--to-topic", "t"], "sandbox topic"),
        (["replay", "t", "--to-topic", "s", "--dry-run"], "go with --agent"),
        (["replay", "t", "--agent", "a", "--from", "-1h", "--from-offset", "3"], "not both"),
    ],
)
def test_replay_checks_its_options_before_touching_kafka(argv: list[str], expected: str) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and expected in str(result.exception)


def test_replay_help_names_every_option() -> None:
    result = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    for option in (
        "--from",
        "--to",
        "--from-offset",
        "--to-offset",
        "--key",
        "--partition",
        "--header",
        "--to-topic",
        "--agent",
        "--dry-run",
        "--rerun",
        "--yes",
        "--rate",
        "--json",
    ):
        assert option in result.output, option


def test_drift_publish_checks_its_arguments_before_touching_kafka() -> None:
    result = runner.invoke(app, ["drift", "publish"])
    assert result.exit_code == 2 and "--source" in result.output
    bad = runner.invoke(
        app, ["drift", "publish", "--source", "s", "--metric", "m", "--value", "1", "--label", "oops"]
    )
    assert bad.exit_code != 0
    assert isinstance(bad.exception, Exception) and "name=value" in str(bad.exception)


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule", "add", "s", "--agent", "a"],  # no --cron, --every or --at
        ["schedule", "add", "s", "--agent", "a", "--cron", "* * *"],
        ["schedule", "add", "s", "--agent", "a", "--every", "5x"],
        ["schedule", "add", "s", "--agent", "a", "--every", "5s", "--tz", "Mars/Olympus"],
        ["schedule", "add", "s", "--agent", "a", "--every", "5s", "--overlap", "sometimes"],
        [
            "watch",
            "add",
            "w",
            "--topic",
            "t",
            "--match",
            "__import__('os')",
            "--by",
            "03:00",
            "--then-agent",
            "a",
        ],
    ],
)
def test_bad_schedules_and_watches_are_refused_before_touching_the_database(argv: list[str]) -> None:
    import sys

    from ops.cli import main

    old = sys.argv
    sys.argv = ["vigil", *argv]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = old
    assert exit_info.value.code == 3  # a configuration error, with a message naming the fix


def test_heartbeat_expect_checks_its_durations_before_touching_the_database() -> None:
    result = runner.invoke(app, ["heartbeat", "expect", "nightly", "--every", "soon", "--grace", "1m"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "30s, 5m" in str(result.exception)
    missing = runner.invoke(app, ["heartbeat", "expect", "nightly"])
    assert missing.exit_code == 2 and "--every" in missing.output
