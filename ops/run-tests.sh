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
echo "== pytest"
set +e
"$VENV/bin/python" -m pytest --durations=15 "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit $rc
