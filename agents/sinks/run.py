"""Run one sink as a process: ``python -m agents.sinks.run webhook --name N --url U --topic T --group G``.

Settings come from the environment (``VIGIL_*``). SIGTERM or SIGINT stops it cleanly (offsets of
recorded deliveries committed); it prints its counters as JSON on exit. Used by the fault tests
(kill -9 mid-way) and handy by hand; ``vigil`` wires sinks into the worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
from types import FrameType

from agents.backoff import RetryPolicy
from agents.sinks.base import Sink
from agents.sinks.file import FileSink
from agents.sinks.runner import DEFAULT_POLICY, run_sink
from agents.sinks.webhook import SlackSink, WebhookSink
from streams.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.sinks.run", description=__doc__)
    parser.add_argument("kind", choices=["webhook", "slack", "file"])
    parser.add_argument("--name", required=True, help="sink name (keys vigil.deliveries)")
    parser.add_argument("--url", help="webhook or Slack URL")
    parser.add_argument("--path", help="file sink: the JSON-lines file")
    parser.add_argument("--topic", action="append", required=True, help="topic (or ^regex), repeatable")
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    parser.add_argument("--max-attempts", type=int, default=DEFAULT_POLICY.max_attempts)
    parser.add_argument("--base-delay", type=float, default=DEFAULT_POLICY.base)
    parser.add_argument("--max-delay", type=float, default=DEFAULT_POLICY.max_delay)
    return parser


def _sink(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Sink:
    if args.kind == "file":
        if not args.path:
            parser.error("file sink needs --path")
        return FileSink(args.name, args.path)
    if not args.url:
        parser.error(f"{args.kind} sink needs --url")
    if args.kind == "slack":
        return SlackSink(args.name, args.url, timeout=args.timeout)
    return WebhookSink(args.name, args.url, timeout=args.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    sink = _sink(args, parser)
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
