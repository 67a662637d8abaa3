# Two entry points, each doing all of its own set-up on a fresh clone:
#   make main   — the study's main job on the embedded default (the procedural phantom)
#   make test   — the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test,bench]"
	@if $(PY) -m pip list 2>/dev/null | grep -qiE '^nvidia|cuda'; then \
		echo "error: a CUDA package was installed; torch must stay on its CPU build" >&2; exit 1; fi
	touch $(STAMP)

.PHONY: setup main test test-all
setup: $(STAMP)

main: $(STAMP)
	$(VENV)/bin/spineseg main

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"
