# Two entry points, each doing all of its own set-up on a fresh clone:
#   make main   — the study's main job on the embedded default (the procedural phantom)
#   make test   — the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# torch's CPU build comes from PyTorch's CPU index when it answers (`make TORCH_INDEX=` skips
# it); otherwise from PyPI (on Linux the CUDA build: a notice, not a failure) or local wheels.
# SPINESEG_REQUIRE_CPU_TORCH=1 (CI) makes a CUDA build an error. See docs/install.md.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml constraints.txt scripts/torch_build.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt $$($(PY) scripts/torch_build.py source $(TORCH_INDEX)) torch
	$(PY) -m pip install -q -c constraints.txt -e ".[test,bench]"
	$(PY) scripts/torch_build.py check
	touch $(STAMP)

KERNEL_CONFIG := $(VENV)/etc/ipython/ipython_kernel_config.py

$(KERNEL_CONFIG): scripts/ipython_kernel_config.py $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

.PHONY: setup main test test-all
setup: $(STAMP) $(KERNEL_CONFIG)

main: setup
	$(VENV)/bin/spineseg main

test: setup
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m "slow or not slow"
