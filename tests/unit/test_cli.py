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
    "drift": ["publish", "detect"],
    "replay": [],
    "inspect": ["topics", "groups", "tail"],
    "status": [],
    "schedule": ["add", "list", "remove", "pause", "resume"],
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
    "argv",
    [["replay", "drift.events"], ["drift", "publish"], ["heartbeat", "list"]],
)
def test_unbuilt_commands_say_so_and_exit_non_zero(argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "has not landed yet" in result.output
