"""Where a sink's URL comes from: --url-env, --url-file, --url, then VIGIL_SLACK_WEBHOOK_URL / VIGIL_SINK_URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from agents.sinks.run import main
from agents.sinks.url_source import SinkUrl, resolve_sink_url
from schemas.errors import ConfigurationError
from streams.settings import Settings

HOOK = "https://hooks.slack.com/services/T000/B000/s3cretT0ken"


def _resolve(
    kind: str = "slack",
    *,
    url: str | None = None,
    url_env: str | None = None,
    url_file: str | None = None,
    environ: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> SinkUrl:
    return resolve_sink_url(
        kind,
        url=url,
        url_env=url_env,
        url_file=url_file,
        environ=environ or {},
        settings=settings or Settings(),
    )


def test_url_from_a_named_environment_variable() -> None:
    found = _resolve(url_env="SLACK_HOOK", environ={"SLACK_HOOK": f"  {HOOK}\n"})
    assert found == SinkUrl(HOOK, "$SLACK_HOOK") and not found.on_command_line


def test_url_from_a_file_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "hook.url"
    path.write_text(HOOK + "\n")
    assert _resolve(url_file=str(path)) == SinkUrl(HOOK, str(path))


def test_url_on_the_command_line_still_works() -> None:
    found = _resolve("webhook", url="http://127.0.0.1:9/hook")
    assert found.url == "http://127.0.0.1:9/hook" and found.on_command_line


def test_settings_defaults_slack_first_then_the_generic_one() -> None:
    both = Settings(slack_webhook_url=SecretStr(HOOK), sink_url=SecretStr("https://other.example/in"))
    assert _resolve("slack", settings=both) == SinkUrl(HOOK, "VIGIL_SLACK_WEBHOOK_URL")
    assert _resolve("webhook", settings=both) == SinkUrl("https://other.example/in", "VIGIL_SINK_URL")
    assert _resolve("slack", settings=Settings(sink_url=SecretStr(HOOK))).source == "VIGIL_SINK_URL"


def test_an_explicit_source_wins_over_the_settings() -> None:
    settings = Settings(sink_url=SecretStr("https://default.example/in"))
    found = _resolve("webhook", url_env="H", environ={"H": "https://chosen.example/in"}, settings=settings)
    assert found.url == "https://chosen.example/in"


def test_no_url_names_every_way_to_give_one() -> None:
    with pytest.raises(ConfigurationError) as caught:
        _resolve("slack")
    message = str(caught.value)
    for fix in ("--url-env", "--url-file", "VIGIL_SLACK_WEBHOOK_URL", "VIGIL_SINK_URL"):
        assert fix in message


def test_unset_variable_and_missing_file_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="export SLACK_HOOK="):
        _resolve(url_env="SLACK_HOOK", environ={})
    with pytest.raises(ConfigurationError, match="cannot read it"):
        _resolve(url_file=str(tmp_path / "absent"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="is empty"):
        _resolve(url_file=str(tmp_path / "empty"))


def test_two_sources_at_once_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="one way only"):
        _resolve(url="https://a/", url_env="X", environ={"X": "https://b/"})


def test_a_value_that_is_not_a_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError, match="https://") as caught:
        _resolve(url_env="X", environ={"X": "xoxb-bare-token"})
    assert "xoxb-bare-token" not in str(caught.value)


def test_the_runner_refuses_to_start_without_a_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("VIGIL_SINK_URL", "VIGIL_SLACK_WEBHOOK_URL", "VIGIL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIGIL_CONFIG", "/nonexistent/vigil.toml")
    with pytest.raises(SystemExit) as exited:
        main(["slack", "--name", "n", "--topic", "t", "--group", "g"])
    assert exited.value.code == 2
    assert "--url-env NAME" in capsys.readouterr().err


def test_the_runner_takes_only_one_url_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "webhook",
                "--name",
                "n",
                "--topic",
                "t",
                "--group",
                "g",
                "--url",
                "https://a/",
                "--url-env",
                "X",
            ]
        )
    assert "not allowed with" in capsys.readouterr().err
