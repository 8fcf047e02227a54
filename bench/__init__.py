"""Benchmarks: each ``bench/bench_*.py`` module is a benchmark, run by ``make bench``."""
