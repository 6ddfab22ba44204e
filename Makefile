# The README's commands. Each target installs what it needs from the pinned locks first.
PYTHON ?= python3
VENV   := .venv
TOOLS  := .venv-tools
PY     := $(VENV)/bin/python

.PHONY: demo up test lint iac-check clean

$(VENV)/.installed: requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.lock
	touch $@

$(TOOLS)/.installed: requirements/tools.lock
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/tools.lock
	touch $@

## demo: start the local stack, upload sample files, list them, delete one, stop.
demo: $(VENV)/.installed
	$(PY) -m pipeline demo

## up: run the local stack until Ctrl-C.
up: $(VENV)/.installed
	$(PY) -m pipeline up

## test: the whole test suite (unit, integration on moto server, end-to-end on the local stack).
test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## iac-check: cfn-lint, SAM transform and checkov on template.yaml (offline).
iac-check: $(VENV)/.installed $(TOOLS)/.installed
	$(VENV)/bin/cfn-lint template.yaml
	$(TOOLS)/bin/checkov --quiet --compact -f template.yaml --framework cloudformation

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
