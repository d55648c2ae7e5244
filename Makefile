# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := bash
.SHELLFLAGS := -o errexit -o nounset -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
HOST ?= 127.0.0.1
PORT ?= 8000
METRICS_PORT ?= 9464
PIP_QUIET := --quiet --disable-pip-version-check
# make mutation
PATTERN ?=
# make chaos
CHAOS_SEEDS ?= 1 2 3 4 5
CHAOS_SECONDS ?= 60
# make new-key
NAME ?=
AIRLINES ?=
CAN ?=
# make load
URL ?=
API_KEY ?=
DURATION ?= 60
CONNECTIONS ?= 32
ROUTES ?= 1

APP_STAMP := $(VENV)/.app-installed
DEV_STAMP := $(VENV)/.dev-installed
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: help run test lint fmt typecheck pytest test-tools bench load local-aws local-aws-down \
	lock screenshot chaos mutation new-key clean

# $(call debian_package,COMMAND,PACKAGE,ELSE): unless COMMAND is on PATH, install PACKAGE with
# apt-get (through sudo when not root); where there is no apt-get, print ELSE and go on.
define debian_package
	@command -v $(1) >/dev/null || { \
		if ! command -v apt-get >/dev/null; then echo '$(1) not found, and no apt-get: $(3)' >&2; \
		else echo 'installing $(2) (Debian package)'; sudo=(); [[ "$$(id -u)" -eq 0 ]] || sudo=(sudo); \
			"$${sudo[@]}" apt-get update -qq \
			&& DEBIAN_FRONTEND=noninteractive "$${sudo[@]}" apt-get install -y -qq $(2) >/dev/null; fi; }
endef

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
		| sed -e 's|$$(HOST)|$(HOST)|g' -e 's|$$(PORT)|$(PORT)|g' \
		| awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The service from its lock, and beside it the official client (kiusys-client/), so that the
# walkthrough's Python and the `kiusys` command work next to `make run`.
$(APP_STAMP): kiusys-app/pyproject.toml kiusys-app/requirements.lock kiusys-client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -r kiusys-app/requirements.lock
	$(BIN)/pip install $(PIP_QUIET) --no-deps -e ./kiusys-app
	$(BIN)/pip install $(PIP_QUIET) -e ./kiusys-client
	touch $@

$(DEV_STAMP): $(APP_STAMP) pyproject.toml
	$(BIN)/pip install $(PIP_QUIET) -e '.[dev]'
	touch $@

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install $(PIP_QUIET) 'checkov==$(CHECKOV_VERSION)'
	touch $@

run: $(APP_STAMP) ## Serve the API on the embedded store at http://$(HOST):$(PORT) (metrics on METRICS_PORT, 9464)
	$(BIN)/kiusys-app --host '$(HOST)' --port '$(PORT)' --metrics-port '$(METRICS_PORT)'

test: lint typecheck pytest ## Lint, type-check and run every test suite

lint: $(DEV_STAMP) ## ruff check, ruff format --check, and the stores' import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

fmt: $(DEV_STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(DEV_STAMP) ## mypy --strict on the service and the client
	$(BIN)/mypy

pytest: $(DEV_STAMP) $(CHECKOV_STAMP) test-tools ## The whole pytest suite
	KIUSYS_CHECKOV='$(CURDIR)/$(CHECKOV_VENV)/bin/checkov' PATH='$(CURDIR)/$(BIN):'"$$PATH" \
		$(BIN)/pytest $(PYTEST_ARGS)

test-tools: ## Debian's chromium (Swagger UI tests) and prometheus (promtool, alert rule tests)
	$(call debian_package,chromium,chromium,the browser tests will be skipped)
	$(call debian_package,promtool,prometheus,the alert rule tests will fail)

screenshot: $(DEV_STAMP) test-tools ## Refresh docs/swagger-ui-try-it-out.png, the README's picture
	KIUSYS_SCREENSHOT='$(CURDIR)/docs/swagger-ui-try-it-out.png' PATH='$(CURDIR)/$(BIN):'"$$PATH" \
		$(BIN)/pytest tests/app/test_swagger_browser.py -k try_it_out

bench: $(DEV_STAMP) ## Throughput and latency of each case beside a bare FastAPI endpoint (needs wrk)
	$(call debian_package,wrk,wrk,install wrk by hand)
	@command -v wrk >/dev/null
	$(BIN)/python -m bench.run

load: $(DEV_STAMP) ## Drive a deployed endpoint: make load URL=https://… API_KEY=… [DURATION=60] [CONNECTIONS=32] [ROUTES=1]
	@[[ -n "$(URL)" ]] || { echo 'usage: make load URL=https://… API_KEY=… [DURATION=60] [CONNECTIONS=32] [ROUTES=1]' >&2; exit 2; }
	@command -v wrk >/dev/null || { echo 'wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk' >&2; exit 2; }
	@API_KEY='$(API_KEY)' $(BIN)/python -m bench.load '$(URL)' --duration '$(DURATION)' \
		--connections '$(CONNECTIONS)' --routes '$(ROUTES)'

chaos: $(DEV_STAMP) ## The fault campaign, CHAOS_SEEDS (1 2 3 4 5) of CHAOS_SECONDS (60) s each; make test runs one of 15 s
	KIUSYS_CHAOS_SEEDS='$(CHAOS_SEEDS)' KIUSYS_CHAOS_SECONDS='$(CHAOS_SECONDS)' \
		$(BIN)/pytest -p no:cacheprovider -q -s tests/app/test_chaos.py

mutation: $(DEV_STAMP) ## Mutation testing (mutmut) of stores, API, models, settings; PATTERN=stores/sqlite/store.py for one
	$(BIN)/python -m tests.support.mutation $(PATTERN)

new-key: $(APP_STAMP) ## A client's new API key (stderr, once) and its clients-file entry (stdout): make -s new-key NAME=… AIRLINES='AR LA' CAN='record check' >> clients.toml
	@$(BIN)/kiusys-app new-key '$(NAME)' $(foreach code,$(AIRLINES),--airline '$(code)') \
		$(foreach right,$(CAN),--can '$(right)')

local-aws: $(DEV_STAMP) ## Start moto and apply the four Terraform roots to it; prints the env for `make run`
	$(BIN)/python -m tests.support.local_aws up

local-aws-down: $(DEV_STAMP) ## Stop the emulator that `make local-aws` started and remove its files
	$(BIN)/python -m tests.support.local_aws down

lock: $(DEV_STAMP) ## Re-pin kiusys-app/requirements.lock, with every file's sha256, to the newest releases
	$(BIN)/uv pip compile kiusys-app/pyproject.toml --universal --generate-hashes --upgrade --quiet \
		--custom-compile-command 'make lock' -o kiusys-app/requirements.lock

clean: ## Remove virtualenvs, caches and local data
	rm -rf $(VENV) $(CHECKOV_VENV) data build .bench .hypothesis .pytest_cache .mypy_cache .ruff_cache
