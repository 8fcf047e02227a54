"""``python -m bench [NAME ...]``: run the benchmarks, print one table, write JSON per benchmark.

Without names, the suite of issue #14 runs (:data:`SUITE`); ``drift`` (and any other benchmark)
runs only when named. One table is printed: the issue's targets with their verdicts, then every
measurement. ``bench/results/<name>.json`` holds each benchmark's rows and targets,
``bench/results/latest.json`` the whole run's (``latest-named.json`` when only some benchmarks were
named, so that the last whole suite's record stays). A benchmark that fails is reported and the
others still run; its targets read ``not run`` and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence

from rich.console import Console

import bench
from bench.common import BenchContext, Measurement, machine, payload, render, write_json
from bench.isolation import BENCH_HOME_ENV, bench_home, other_stacks, other_stacks_text, use_bench_home
from bench.targets import TARGETS, evaluate

#: The default run, in this order: ``memory`` last, because its million ledger records are read
#: (and skipped) by every later worker's ledger reader on the same broker. ``latency`` after
#: ``cdc``, ``agents`` and ``dedup``: the run's stack starts from empty (:mod:`bench.isolation`), and
#: for minutes a new Kafka or Connect JVM spends about half its CPU in its JIT compilers (session
#: 19: 17 of Kafka's first 35 CPU seconds, 19 of Connect's 36). Two minutes after the start, three
#: runs of ``latency`` had p99s of 97, 105 and 114 ms (seconds with a worst row of 100-175 ms); ten
#: minutes after, 50 and 41 ms. Its target is a steady rate's latency, not a new JVM's.
SUITE = ("codec", "cdc", "agents", "dedup", "latency", "memory")
#: Columns of the table when the output is not a terminal.
LOG_WIDTH = 200


def discover() -> list[str]:
    return sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )


def run_record_name(names: Sequence[str]) -> str:
    """The run's record: ``latest`` for the whole suite; a run of some benchmarks only must not
    replace the last whole run's, so it is ``latest-named``."""
    return "latest" if set(names) >= set(SUITE) else "latest-named"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        help=f"benchmarks to run (default: {' '.join(SUITE)}; all: {' '.join(discover())})",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply event counts and durations (0.1 for a quick look)"
    )
    parser.add_argument(
        "--keep-state",
        action="store_true",
        help=f"reuse the benchmarks' stack and state directory ({BENCH_HOME_ENV}, default .vigil-bench) "
        "as the last run left them, and leave the stack running; without it the directory is emptied "
        "first and the stack stopped at the end",
    )
    args = parser.parse_args(argv)
    # Piped into a log (CI, `make bench > file`), rich would wrap the table at 80 columns, one word
    # of each cell a line; a wide table reads there.
    console = Console(width=None if sys.stdout.isatty() else LOG_WIDTH)
    names = args.names or list(SUITE)
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (there are: {', '.join(discover())})")
    home = bench_home()
    use_bench_home(home, fresh=not args.keep_state)
    console.print(f"state directory {home} ({'as the last run left it' if args.keep_state else 'emptied'})")
    others = other_stacks(home)
    if others:
        console.print(f"[yellow]{other_stacks_text(others)}[/]")
    ctx = BenchContext(scale=args.scale)
    started = time.time()
    at_start = {
        **machine(),
        "state_dir": str(home),
        "fresh_state": not args.keep_state,
        "other_stacks": others,
    }
    everything: list[Measurement] = []
    failed: dict[str, str] = {}
    for name in names:
        begun = time.monotonic()
        console.print(f"[bold]bench {name}[/] (scale {args.scale:g}) …")
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            rows: list[Measurement] = module.run(ctx)
        except Exception as exc:  # one broken benchmark must not lose the others' numbers
            console.print(f"[red]bench {name} failed:[/] {exc}")
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"[:4000]
            continue
        results = evaluate(rows, [t for t in TARGETS if t.bench == name])
        data = payload(rows, results, when=time.time(), machine=machine(), scale=args.scale)
        path = write_json(name, data)
        console.print(f"  {time.monotonic() - begun:.0f}s; wrote {path}")
        everything.extend(rows)
    results = evaluate(everything)
    data = payload(
        everything,
        results,
        when=started,
        machine={**at_start, "load_avg_at_end": machine()["load_avg"]},
        scale=args.scale,
        benchmarks=names,
        seconds=round(time.time() - started),
        failed=failed,
    )
    path = write_json(run_record_name(names), data)
    render(everything, results, console)
    console.print(f"{time.time() - started:.0f}s in all; wrote {path}")
    for name, error in failed.items():
        console.print(f"[red]bench {name} failed:[/] {error.splitlines()[0]}")
    if not args.keep_state:
        ctx.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
