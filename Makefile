# The two set-up commands of README.md. Each creates (or reuses) the virtualenv .venv, installed with the
# exact versions of constraints.txt, then runs.
#   make demo   the offline demo pipeline end to end (synthetic data, 2 CPU cores, a few minutes) -> demo/
#   make test   the whole test suite, slow end-to-end tests included
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lock

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --workflow-profile profiles/demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Re-pin every package after changing pyproject.toml's dependencies (torch and torchvision stay fixed).
lock: $(STAMP)
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
