"""Where a webhook or Slack sink's URL comes from: a flag, a named environment variable, a file.

A Slack incoming-webhook URL *is* its token, and many webhook URLs carry one in their query, so
the URL should not sit in a command line (``ps`` shows it to every user). The sink runner takes
it, in this order, from ``--url-env NAME``, ``--url-file PATH``, ``--url`` (allowed, with a
warning), then the settings (``VIGIL_SLACK_WEBHOOK_URL`` for Slack, ``VIGIL_SINK_URL``).
No Kafka or database client here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigurationError
from streams.settings import Settings


@dataclass(frozen=True)
class SinkUrl:
    """The URL and where it came from (for messages; the URL itself is never printed unmasked)."""

    url: str
    source: str

    @property
    def on_command_line(self) -> bool:
        return self.source == "--url"


def resolve_sink_url(
    kind: str,
    *,
    url: str | None,
    url_env: str | None,
    url_file: str | None,
    environ: Mapping[str, str],
    settings: Settings,
) -> SinkUrl:
    """The sink's URL from the first source given; a :class:`ConfigurationError` naming the fix if none."""
    given = [
        name for name, value in (("--url", url), ("--url-env", url_env), ("--url-file", url_file)) if value
    ]
    if len(given) > 1:
        raise ConfigurationError(f"give the {kind} sink's URL one way only, not {' and '.join(given)}")
    if url_env:
        value = environ.get(url_env, "").strip()
        if not value:
            raise ConfigurationError(
                f"--url-env {url_env}: that environment variable is unset or empty: "
                f"export {url_env}=https://… before starting the sink, or use --url-file PATH"
            )
        return _checked(kind, SinkUrl(value, f"${url_env}"))
    if url_file:
        try:
            value = Path(url_file).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"--url-file {url_file}: cannot read it ({exc.strerror}): write the URL into that file "
                "(one line, mode 0600), or use --url-env NAME"
            ) from exc
        if not value:
            raise ConfigurationError(f"--url-file {url_file} is empty: write the {kind} URL into it")
        return _checked(kind, SinkUrl(value, url_file))
    if url:
        return _checked(kind, SinkUrl(url, "--url"))
    if kind == "slack" and settings.slack_webhook_url is not None:
        return _checked(
            kind, SinkUrl(settings.slack_webhook_url.get_secret_value(), "VIGIL_SLACK_WEBHOOK_URL")
        )
    if settings.sink_url is not None:
        return _checked(kind, SinkUrl(settings.sink_url.get_secret_value(), "VIGIL_SINK_URL"))
    default = "VIGIL_SLACK_WEBHOOK_URL or VIGIL_SINK_URL" if kind == "slack" else "VIGIL_SINK_URL"
    raise ConfigurationError(
        f"the {kind} sink needs a URL: pass --url-env NAME (an environment variable holding it), "
        f"--url-file PATH (a file holding it), or set {default}; --url works too but shows the URL "
        "to anyone who can list processes"
    )


def _checked(kind: str, found: SinkUrl) -> SinkUrl:
    if not found.url.startswith(("http://", "https://")):
        # Not echoed: a value without a scheme (a bare token, say) cannot be masked reliably.
        raise ConfigurationError(
            f"the {kind} sink's URL from {found.source} does not start with http:// or https://: "
            "give the full https://… URL"
        )
    return found
