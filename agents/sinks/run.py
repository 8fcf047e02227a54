"""Run one sink as a process: ``python -m agents.sinks.run webhook --name N --url-env VAR --topic T --group G``.

The URL of a webhook or Slack sink may carry a token, so it is best given as ``--url-env NAME``
(read from that environment variable) or ``--url-file PATH``, or left to ``VIGIL_SINK_URL`` /
``VIGIL_SLACK_WEBHOOK_URL``; ``--url U`` works but shows it in the process list
(:mod:`agents.sinks.url_source`).

Settings come from the environment (``VIGIL_*``). SIGTERM or SIGINT stops it cleanly (offsets of
recorded deliveries committed); it prints its counters as JSON on exit. Used by the fault tests
(kill -9 mid-way) and handy by hand; ``vigil`` wires sinks into the worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType

from agents.backoff import RetryPolicy
from agents.sinks.base import Sink
from agents.sinks.file import FileSink
from agents.sinks.runner import DEFAULT_POLICY, run_sink
from agents.sinks.url_source import resolve_sink_url
from agents.sinks.webhook import SlackSink, WebhookSink
from schemas.errors import ConfigurationError
from streams.redact import mask_url, mask_urls_in_logs
from streams.settings import Settings, load_settings

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.sinks.run", description=__doc__)
    parser.add_argument("kind", choices=["webhook", "slack", "file"])
    parser.add_argument("--name", required=True, help="sink name (keys vigil.deliveries)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--url-env", metavar="NAME", help="read the webhook or Slack URL from this env variable"
    )
    source.add_argument("--url-file", metavar="PATH", help="read the webhook or Slack URL from this file")
    source.add_argument("--url", help="the webhook or Slack URL itself (visible in the process list)")
    parser.add_argument("--path", help="file sink: the JSON-lines file")
    parser.add_argument("--topic", action="append", required=True, help="topic (or ^regex), repeatable")
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    parser.add_argument("--max-attempts", type=int, default=DEFAULT_POLICY.max_attempts)
    parser.add_argument("--base-delay", type=float, default=DEFAULT_POLICY.base)
    parser.add_argument("--max-delay", type=float, default=DEFAULT_POLICY.max_delay)
    return parser


def _sink(args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings) -> Sink:
    if args.kind == "file":
        if not args.path:
            parser.error("file sink needs --path")
        return FileSink(args.name, args.path)
    try:
        found = resolve_sink_url(
            args.kind,
            url=args.url,
            url_env=args.url_env,
            url_file=args.url_file,
            environ=os.environ,
            settings=settings,
        )
    except ConfigurationError as exc:
        parser.error(str(exc))
    if found.on_command_line:
        log.warning("%s: the sink URL is on the command line; prefer --url-env or --url-file", args.name)
    log.info("%s: delivering to %s (from %s)", args.name, mask_url(found.url), found.source)
    if args.kind == "slack":
        return SlackSink(args.name, found.url, timeout=args.timeout)
    return WebhookSink(args.name, found.url, timeout=args.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    log_format = "%(asctime)s %(name)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.WARNING, format=log_format)
    mask_urls_in_logs(log_format)
    settings = load_settings()
    sink = _sink(args, parser, settings)
    policy = RetryPolicy(
        max_attempts=args.max_attempts,
        base=args.base_delay,
        factor=DEFAULT_POLICY.factor,
        max_delay=args.max_delay,
        jitter=DEFAULT_POLICY.jitter,
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stats = run_sink(settings, sink, args.topic, args.group, stop, policy=policy)
    print(json.dumps(dataclasses.asdict(stats)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
