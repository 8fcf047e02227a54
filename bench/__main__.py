"""``python -m bench [NAME ...]``: run the benchmarks, print one table, write JSON per benchmark."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from rich.console import Console

import bench
from bench.common import BenchContext, Measurement, render, write_json


def discover() -> list[str]:
    return sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {discover()})")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply event counts (0.1 for a quick look)"
    )
    args = parser.parse_args(argv)
    console = Console()
    names = args.names or discover()
    ctx = BenchContext(scale=args.scale)
    everything: list[Measurement] = []
    for name in names:
        console.print(f"[bold]bench {name}[/] …")
        module = importlib.import_module(f"bench.bench_{name}")
        rows: list[Measurement] = module.run(ctx)
        path = write_json(rows, name)
        console.print(f"  wrote {path}")
        everything.extend(rows)
    render(everything, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
