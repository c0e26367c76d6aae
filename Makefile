# The two commands: `make run` and `make test`. `make bench` prints the benchmark table;
# `make regions` (root, Linux) the Tokyo latency figure from network namespaces.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test bench regions lint install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	scripts/ensure-system-packages.sh
	$(VENV)/bin/edge up --demo

test: install
	scripts/test.sh

lint: install
	$(VENV)/bin/ruff check edge tests bench
	$(VENV)/bin/ruff format --check edge tests bench
	$(VENV)/bin/mypy

bench: install
	EDGE_WITH_BENCH=1 scripts/ensure-system-packages.sh
	$(PY) -m bench
	$(PY) -m bench.scale
	$(PY) -m bench.cpu

regions: install
	scripts/regions.sh

clean:
	rm -rf $(VENV) .edge
