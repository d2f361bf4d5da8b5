# pipa-edge: the two commands of the README.
#   make demo  — set up (.venv, GStreamer when missing) and run train → export → run on synthetic data
#   make test  — set up and run the unit suite
# Both use one workstation install (scripts/setup.sh: one .venv, one stamp).
#   make device-check — the device install (Python 3.10, pipa-edge[device], no torch) end to end
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo

.PHONY: demo test setup setup-dev device-check clean bench-camvid

setup:
	@scripts/setup.sh

setup-dev: setup

demo: setup
	@$(PY) -m pipa_edge.cli.main demo --out $(DEMO_OUT)

test: setup
	@$(PY) -m pytest -q tests

device-check: setup
	@scripts/device_check.sh

clean:
	rm -rf runs .pytest_cache
