# The README's commands. Each target installs what it needs from the pinned locks first.
PYTHON ?= python3
VENV   := .venv
TOOLS  := .venv-tools
PY     := $(VENV)/bin/python

UV     := $(VENV)/bin/uv

.PHONY: demo up test test-fast lint iac-check sam-check clean browser

# The installer: uv (pinned and hash-checked in requirements/bootstrap.lock), installed with pip
# into the project's venv; it then installs the other locks, hash-checked, showing progress.
$(VENV)/.uv: requirements/bootstrap.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check --progress-bar on --require-hashes \
		-r requirements/bootstrap.lock
	touch $@

# ... and the project itself, editable and without dependencies (they are the lock's): the
# `s3-file-tracker` console command the docs use (.venv/bin/s3-file-tracker, or on PATH after
# `. .venv/bin/activate`); the same as `python -m pipeline`.
$(VENV)/.installed: requirements/dev.lock $(VENV)/.uv pyproject.toml setup.py
	$(UV) pip install --python $(PY) --require-hashes -r requirements/dev.lock
	$(UV) pip install --python $(PY) --no-deps --no-build-isolation --editable .
	touch $@

$(TOOLS)/.installed: requirements/tools.lock $(VENV)/.uv
	$(PYTHON) -m venv $(TOOLS)
	$(UV) pip install --python $(TOOLS)/bin/python --require-hashes -r requirements/tools.lock
	touch $@

## demo: start the local stack, upload sample files, list them, delete one, stop.
demo: $(VENV)/.installed
	$(PY) -m pipeline demo

## up: run the local stack until Ctrl-C.
up: $(VENV)/.installed
	$(PY) -m pipeline up

## browser: Debian's chromium and chromium-driver for the browse page's tests (headless):
## installed with apt-get when missing and run as root (CI); otherwise one line says what to do.
CHROMIUM     ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
browser:
	@if [ -x "$(CHROMIUM)" ] && [ -x "$(CHROMEDRIVER)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y chromium chromium-driver \
		|| { apt-get update && apt-get install -y chromium chromium-driver; }; \
	else echo "browser tests need chromium and chromium-driver: sudo apt-get install -y chromium chromium-driver"; fi

# Test processes (pytest-xdist): one per core by default, each with its own moto server and
# DynamoDB Local; a test file stays in one process (its module-scoped local stack starts once,
# and its tests run in order). Files are handed out in collection order, the end-to-end tier
# first (its files are the longest), not xdist's default of most tests first, which left the
# long one-test e2e files for last.
TEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## test: the whole test suite (unit, integration on moto and DynamoDB Local, end-to-end on the
## local stack) on every core; pytest prints the 15 slowest tests at the end.
test: $(VENV)/.installed $(TOOLS)/.installed browser sam-check
	SAM_BUILD_DIR=$(SAM_BUILD) $(PY) -m pytest $(PYTEST_PARALLEL)

## test-fast: the unit tier only (no servers, under a minute); its tests are independent, so
## they are handed out one by one (checkov and the cfn-lint runs land on both cores).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load tests/unit

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## iac-check: cfn-lint, SAM transform and checkov on template.yaml (offline).
iac-check: $(VENV)/.installed $(TOOLS)/.installed
	$(VENV)/bin/cfn-lint template.yaml
	$(TOOLS)/bin/checkov --quiet --compact --skip-download -f template.yaml --framework cloudformation
	$(PY) -m pytest -q tests/unit/test_template.py

## sam-check: the documented deploy commands, offline: `sam validate --lint`, then `sam build`
## (the build-* targets below) into .cache/sam-build, then a check of that artifact. Red when
## the template or the artifact breaks. `make test` runs it first.
SAM_BUILD := .cache/sam-build
SAM_ENV   := SAM_CLI_TELEMETRY=0
sam-check: $(VENV)/.installed $(TOOLS)/.installed
	$(SAM_ENV) $(TOOLS)/bin/sam validate --lint --template template.yaml
	rm -rf $(SAM_BUILD)
	$(SAM_ENV) PYTHON=$(abspath $(PY)) $(TOOLS)/bin/sam build --template template.yaml \
		--build-in-source --build-dir $(SAM_BUILD)
	SAM_BUILD_DIR=$(SAM_BUILD) $(PY) -m pytest -q tests/e2e/test_sam_artifact.py

clean:
	rm -rf $(VENV) $(TOOLS) .cache .pytest_cache .mypy_cache .ruff_cache

# ---------------------------------------------------------------------------------------------
# Lambda artifact, called by `sam build` (template.yaml: Metadata BuildMethod: makefile) with
# ARTIFACTS_DIR set. Every function gets the same artifact: pipeline/ and handlers/ (not tests/,
# load/ or the moto-based local stack) plus requirements/runtime.lock installed as wheels for
# Lambda's Python 3.13 on Linux. Wheels with compiled code (aiohttp, pydantic-core, ...) are
# per CPU: LAMBDA_ARCH must match the template's Architecture parameter, e.g.
#   LAMBDA_ARCH=arm64 sam build --parameter-overrides Architecture=arm64
LAMBDA_ARCH ?= x86_64
LAMBDA_PLATFORM = manylinux2014_$(if $(filter arm64,$(LAMBDA_ARCH)),aarch64,x86_64)

.PHONY: build-IngestFunction build-ApiFunction build-ReconcileFunction build-TotalsFunction
build-IngestFunction build-ApiFunction build-ReconcileFunction build-TotalsFunction:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: these targets are run by `sam build`))
	$(if $(filter x86_64 arm64,$(LAMBDA_ARCH)),,$(error LAMBDA_ARCH must be x86_64 or arm64, got '$(LAMBDA_ARCH)'))
	mkdir -p "$(ARTIFACTS_DIR)"
	cp -R pipeline handlers "$(ARTIFACTS_DIR)/"
	rm -rf "$(ARTIFACTS_DIR)/pipeline/local"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --no-warn-conflicts \
		--require-hashes -r requirements/runtime.lock --target "$(ARTIFACTS_DIR)" \
		--only-binary=:all: --implementation cp --python-version 3.13 \
		--platform $(LAMBDA_PLATFORM)
