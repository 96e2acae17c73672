# The two set-up commands of README.md. Each creates (or reuses) the virtualenv .venv, installed with the
# exact versions of constraints.txt, then runs.
#   make demo   the offline demo pipeline end to end (synthetic data, 2 CPU cores, a few minutes) -> demo/
#   make test   the whole test suite, slow end-to-end tests included
#   make slurm-profile   link profiles/slurm into Snakemake's profile folder: `snakemake --profile slurm` then works
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lock slurm-profile

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

# Snakemake looks profiles up by name in its user folder (~/.config/snakemake, or $XDG_CONFIG_HOME/snakemake).
# A link, so that edits to profiles/slurm take effect; an existing profile of that name is never replaced.
slurm-profile: $(STAMP)
	@folder="$$($(BIN)/python -c 'from snakemake.cli import get_appdirs; print(get_appdirs().user_config_dir)')"; \
	link="$$folder/slurm"; target="$(CURDIR)/profiles/slurm"; \
	if [ -e "$$link" ] && [ "$$(readlink -f "$$link")" != "$$(readlink -f "$$target")" ]; then \
		echo "error: $$link already exists and is not this checkout's profiles/slurm; move it away first" >&2; exit 1; \
	fi; \
	mkdir -p "$$folder" && ln -sfn "$$target" "$$link" && echo "$$link -> $$target"

# Re-pin every package after changing pyproject.toml's dependencies (torch and torchvision stay fixed).
lock: $(STAMP)
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
