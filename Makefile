# pipa-edge: the two commands of the README.
#   make demo  — set up (.venv, GStreamer when missing) and run train → export → run on synthetic data
#   make test  — set up and run the unit suite
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo

.PHONY: demo test setup setup-dev clean bench-camvid

setup:
	@scripts/setup.sh

setup-dev:
	@scripts/setup.sh dev

demo: setup
	@$(PY) -m pipa_edge.cli.main demo --out $(DEMO_OUT)

test: setup-dev
	@$(PY) -m pytest -q tests

clean:
	rm -rf runs .pytest_cache
