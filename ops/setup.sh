#!/usr/bin/env bash
# Installs what Vigil needs on a Debian machine, idempotently: the PostgreSQL server, a Java 17
# JDK, Maven and Chromium (apt), a virtual environment in .venv, the package with its dev extras, and the
# embedded Kafka / Kafka Connect / Debezium jars pinned in ops/java/pom.xml (resolved once into
# ~/.cache/vigil/java, shared by checkouts). Each step is skipped when what it makes is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

need_apt=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then need_apt+=(postgresql); fi
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
# The JDK, not only the runtime: the cdc benchmark's peer (bench/java/EngineAlone.java) is compiled with javac.
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null || ! command -v javac >/dev/null 2>&1; then
  need_apt+=(openjdk-17-jdk-headless)
fi
if ! command -v mvn >/dev/null 2>&1; then need_apt+=(maven); fi
# Headless Chromium for the dashboard's browser test (driven by Playwright at /usr/bin/chromium).
if [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: need root to install ${need_apt[*]}: run 'apt-get install -y ${need_apt[*]}' as root" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  # The Debian package starts its own cluster; Vigil runs a private one and leaves that alone.
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.vigil-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! "$VENV/bin/python" -c "import ops, streams" >/dev/null 2>&1; then
  echo "setup: installing vigil and its dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi

# Offline once done: a marker in the cache folder says the resolution completed.
"$VENV/bin/python" -m ops.services.java >/dev/null
