# Two commands on a fresh Debian machine: `make demo` runs Vigil on the embedded stack,
# `make test` runs the whole suite. Both install what they need first, idempotently.
VENV ?= .venv

.PHONY: setup demo test bench lint clean

setup:
	@bash ops/setup.sh

demo: setup
	$(VENV)/bin/vigil up --demo

test: setup
	@bash ops/run-tests.sh

bench:
	@VIGIL_SETUP_JDK=1 bash ops/setup.sh
	$(VENV)/bin/python -m bench

lint: setup
	$(VENV)/bin/ruff check streams agents connectors schemas ops tests bench
	$(VENV)/bin/mypy

clean:
	-$(VENV)/bin/vigil services down
	-VIGIL_HOME=.vigil-bench $(VENV)/bin/vigil services down
	rm -rf .vigil .vigil-bench
