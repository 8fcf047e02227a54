#!/usr/bin/env bash
# The whole suite as CI runs it: lint, types, then unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PACKAGES=(streams agents connectors schemas ops)

echo "== ruff"
"$VENV/bin/ruff" check "${PACKAGES[@]}" tests bench
"$VENV/bin/ruff" format --check "${PACKAGES[@]}" tests bench
echo "== mypy --strict"
"$VENV/bin/mypy"
# Test files are spread over VIGIL_TEST_PROCESSES processes (default 2), each with its own
# embedded stack (tests/conftest.py); a file's tests stay together, in order. 0 runs one process.
# Files are handed out in collection order, which tests/conftest.py starts with the long files.
PROCESSES="${VIGIL_TEST_PROCESSES:-2}"
PARALLEL=()
if [ "$PROCESSES" != "0" ]; then PARALLEL=(-n "$PROCESSES" --dist loadfile --no-loadscope-reorder); fi
echo "== pytest (${PROCESSES} processes)"
set +e
"$VENV/bin/python" -m pytest "${PARALLEL[@]}" --durations=15 "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit $rc
