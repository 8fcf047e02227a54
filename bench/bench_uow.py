"""The unit of work in-process: the CPU of the agent hot path alone, and before/after comparisons.

Runs only when named (``python -m bench uow``): it isolates what ``bench agents`` measures with a
whole worker (feeds, Faust, the ledger reader), so that a change to the hot path can be judged on
its own. Each run is a child process (:mod:`bench.uow_child`) on a fresh database of the stack:
``ROUNDS`` runs of ``BATCHES`` batches of 500 route-agent events, after ``WARMUP`` batches. Rows:
the median CPU per event of the process, and of each step on the event loop's thread (prepare,
unit of work, and the rest of ``commit_batch``: the table of processed events, the ledger records).

``VIGIL_BENCH_BASELINE_TREE=<another checkout>`` runs that checkout's hot path too, its runs
interleaved with this one's (the machine's speed drifts by tens of percent within minutes), and
adds the ratio of the medians. ``VIGIL_BENCH_VALGRIND=1`` (needs ``valgrind``) also counts the
instructions per event, which do not depend on the machine's state: a run under cachegrind minus a
run that only makes the events, divided by the events processed (about 4 minutes per tree).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

from bench import procs
from bench.common import BenchContext, Measurement
from bench.uow_child import STEPS
from streams.settings import Settings

BENCH = "uow"
ROUNDS = 5
BATCHES = 40
WARMUP = 5
#: Batches processed under valgrind (it runs ≈ 50x slower): one warm-up, then these.
VALGRIND_BATCHES = 10
THIS = "this checkout"
BASELINE = "baseline tree"
CHILD = Path(__file__).with_name("uow_child.py")


def _child(
    tree: Path, settings_env: dict[str, str], db_url: str, argv: list[str], prefix: list[str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(settings_env)
    env["PYTHONPATH"] = str(tree)
    # This checkout's child program, run with the other tree's code: run_path adds nothing to sys.path.
    child = (
        f"import runpy, sys; sys.argv[0] = {str(CHILD)!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    cmd = [*prefix, sys.executable, "-c", child, "--database-url", db_url, *argv]
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"bench.uow_child failed ({tree}): {done.stderr[-2000:]}")
    return done


def _one_run(tree: Path, settings_env: dict[str, str], settings: Settings, batches: int) -> dict[str, float]:
    name = f"bench_uow_{uuid.uuid4().hex[:8]}"
    db_url = procs.fresh_database(settings, name)
    try:
        out = _child(tree, settings_env, db_url, ["--batches", str(batches), "--warmup", str(WARMUP)], [])
    finally:
        procs.drop_database(settings, name)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _instructions(tree: Path, settings_env: dict[str, str], settings: Settings) -> float:
    """Instructions per event of the hot path under cachegrind (a run minus a make-only run)."""
    counts = []
    for extra in (["--make-only"], []):
        name = f"bench_uow_vg_{uuid.uuid4().hex[:8]}"
        db_url = procs.fresh_database(settings, name)
        prefix = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
        try:
            argv = ["--batches", str(VALGRIND_BATCHES), "--warmup", "1", *extra]
            out = _child(tree, settings_env, db_url, argv, prefix)
        finally:
            procs.drop_database(settings, name)
        found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count in valgrind's output: {out.stderr[-1000:]}")
        counts.append(int(found.group(1).replace(",", "")))
    return (counts[1] - counts[0]) / ((VALGRIND_BATCHES + 1) * 500)


def rows_of(runs: dict[str, list[dict[str, float]]], batches: int, baseline: str | None) -> list[Measurement]:
    """The table's rows from each tree's runs (what :mod:`bench.uow_child` printed): medians."""
    rows: list[Measurement] = []
    medians = {label: statistics.median(r["process_us"] for r in done) for label, done in runs.items()}
    for label, done in runs.items():
        spread = ", ".join(f"{r['process_us']:.1f}" for r in sorted(done, key=lambda r: r["process_us"]))
        rows.append(
            Measurement(
                BENCH, label, "CPU per event", medians[label], "µs",
                notes=f"median of {len(done)} runs of {batches * 500:,} events (process CPU): {spread}",
            )
        )  # fmt: skip
        for step in STEPS:
            rows.append(
                Measurement(
                    BENCH, label, f"{step} CPU", statistics.median(r[f"{step}_us"] for r in done), "µs",
                    notes="per event, on the event loop's thread",
                )
            )  # fmt: skip
    if baseline:
        rows.append(
            Measurement(
                BENCH, THIS, "CPU per event vs baseline", medians[THIS], "µs", ratio_to=BASELINE,
                ratio=medians[THIS] / medians[BASELINE],
                notes=f"medians of interleaved runs; baseline {baseline}",
            )
        )  # fmt: skip
    return rows


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings()
    settings_env = {
        "VIGIL_HOME": str(settings.home),
        "VIGIL_KAFKA_BOOTSTRAP": settings.require_bootstrap(),
        "VIGIL_BUILTIN_AGENTS": "false",
    }
    trees = {THIS: procs.ROOT}
    baseline = os.environ.get("VIGIL_BENCH_BASELINE_TREE")
    if baseline:
        trees[BASELINE] = Path(baseline)
    batches = max(4, round(BATCHES * ctx.scale))
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    for round_ in range(ROUNDS):
        for label, tree in trees.items():
            runs[label].append(_one_run(tree, settings_env, settings, batches))
            print(
                f"  round {round_ + 1}/{ROUNDS}, {label}: {runs[label][-1]['process_us']:.1f} µs/event",
                flush=True,
            )
    rows = rows_of(runs, batches, baseline)
    if os.environ.get("VIGIL_BENCH_VALGRIND") == "1":
        if shutil.which("valgrind") is None:
            print("  VIGIL_BENCH_VALGRIND=1 but valgrind is not installed: no instruction counts", flush=True)
        else:
            counted = {label: _instructions(tree, settings_env, settings) for label, tree in trees.items()}
            for label, per_event in counted.items():
                ratio = per_event / counted[BASELINE] if baseline and label == THIS else None
                rows.append(
                    Measurement(
                        BENCH, label, "instructions per event", per_event, "instr",
                        ratio_to=BASELINE if ratio is not None else None, ratio=ratio,
                        notes=f"cachegrind: {VALGRIND_BATCHES + 1} batches run minus a make-only run",
                    )
                )  # fmt: skip
    return rows
