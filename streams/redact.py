"""Secrets out of anything Vigil prints: URLs with their passwords and tokens replaced by ``***``.

Pure string functions, no I/O. :func:`mask_url` is applied wherever a URL reaches a screen, a log
or a JSON report (``vigil up``, ``vigil services status [--json]``, connector tables, sink
messages); the real URL stays in the settings and in the environment of Vigil's child processes.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

MASK = "***"

# Query parameters whose value is a secret (password=, sasl.password=, access_token=, sig=, …).
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|sig|key|auth|credential", re.IGNORECASE)
# libpq connection strings: ``host=h password='x y' user=u``.
_LIBPQ_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# Webhook URLs whose last path segment is the credential: Slack's /services/T…/B…/<secret>,
# Discord's /api/webhooks/<id>/<token>.
_TOKEN_IN_PATH = re.compile(r"^(/services/[^/]+/[^/]+/|/api/webhooks/[^/]+/)[^/]+(/?)$")
# A URL inside free text (log lines, error messages).
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def mask_url(url: str) -> str:
    """``url`` with its password (and any token in its query or webhook path) replaced by ``***``.

    User, host, port, path, database and the other query parameters are kept, so the masked URL
    still says where it points. A libpq ``key=value`` string has its ``password=`` masked; any
    other string without a scheme (a Kafka bootstrap list) is returned unchanged.
    """
    if "://" not in url:
        return _LIBPQ_PASSWORD.sub(lambda m: m.group(1) + MASK, url)
    # The scheme is split off by hand: urlsplit lower-cases it and does not take Kafka's
    # "SASL_SSL" (an underscore) for a scheme at all.
    scheme, rest = url.split("://", 1)
    try:
        parts = urlsplit("//" + rest)
    except ValueError:
        # Not parseable as a URL (e.g. a bad IPv6 literal): hide everything after the scheme.
        return f"{scheme}://{MASK}"
    masked = f"{scheme}://{_mask_netloc(parts.netloc)}{_mask_path(parts.path)}"
    if parts.query:
        masked += "?" + _mask_query(parts.query)
    if parts.fragment:
        masked += "#" + parts.fragment
    return masked


def mask_urls_in(text: str) -> str:
    """``text`` with every URL in it masked by :func:`mask_url` (for log lines and error messages)."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def _mask_netloc(netloc: str) -> str:
    # rpartition: an unencoded "@" in the password must not be taken for the host's start.
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return netloc
    user = userinfo.split(":", 1)[0]
    return f"{user}:{MASK}@{hostport}"


def _mask_path(path: str) -> str:
    return _TOKEN_IN_PATH.sub(lambda m: m.group(1) + MASK + m.group(2), path)


def _mask_query(query: str) -> str:
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        pairs.append(f"{name}={MASK}" if eq and value and _SECRET_PARAM.search(name) else pair)
    return "&".join(pairs)


class MaskingFormatter(logging.Formatter):
    """A log formatter that masks every URL in the formatted line (exception text included)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_urls_in(super().format(record))


def mask_urls_in_logs(fmt: str) -> None:
    """Give the root logger's handlers a :class:`MaskingFormatter` with ``fmt``.

    Defence in depth for the CLI and the sink runner: Vigil prints URLs through :func:`mask_url`
    anyway, but a library's error message may quote one.
    """
    for handler in logging.getLogger().handlers:
        handler.setFormatter(MaskingFormatter(fmt))
