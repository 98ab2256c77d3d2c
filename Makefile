# vmm: the mail stack in a box. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

COMPOSE := docker compose
VENV := .venv
PYTHON := $(VENV)/bin/python
export TESTCONTAINERS_RYUK_DISABLED := true

.PHONY: help docker images test-images up down test unit integration e2e swarm-test faults bench lint clean \
	swarm-up swarm-down

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

docker: ## Install and start Docker and provide debian:trixie-slim where missing
	@bash scripts/bootstrap-docker.sh

images: docker ## Build every image (vmm-base first: the others start FROM it)
	@$(COMPOSE) --profile build build --quiet base
	@$(COMPOSE) --profile monitoring build --quiet

up: images ## Build and start the stack; returns when every service is healthy
	@$(COMPOSE) up -d --wait --remove-orphans
	@$(COMPOSE) ps --format 'table {{.Service}}\t{{.Status}}\t{{.Ports}}'

down: ## Stop the stack (volumes and data stay)
	@$(COMPOSE) --profile monitoring down

$(VENV)/.installed: requirements-dev.txt
	@python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

test: images test-images $(VENV)/.installed ## Run the whole suite: lint, unit, integration, e2e
	@$(MAKE) --no-print-directory lint
	@$(PYTHON) -m pytest tests

unit: $(VENV)/.installed ## Only the unit tests (no Docker needed)
	@$(PYTHON) -m pytest tests/unit

integration: images $(VENV)/.installed ## Only the integration tests (the CLI against PostgreSQL)
	@$(PYTHON) -m pytest tests/integration

e2e: images test-images $(VENV)/.installed ## Only the end-to-end tests (whole stacks, faults included)
	@$(PYTHON) -m pytest tests/e2e

# The test stacks' own DNS (tests/e2e/dns.yaml), outbound mail's other side (remote.yaml),
# ACME's (acme.yaml), and the Swarm test's nodes (images/swarmnode).
test-images: docker
	@$(COMPOSE) -f compose.yaml -f tests/e2e/dns.yaml -f tests/e2e/remote.yaml -f tests/e2e/acme.yaml \
		build --quiet dns remote pebble
	@docker build --quiet --tag vmm-swarmnode images/swarmnode >/dev/null

swarm-test: images test-images $(VENV)/.installed ## Only the Swarm tests (three engines in containers)
	@$(PYTHON) -m pytest tests/swarm

# The stack on Docker Swarm (docs/scaling.md): scripts/swarm.sh, settings VMM_SWARM_*.
swarm-up: images ## Deploy the stack on a swarm (a single-node one where there is none)
	@bash scripts/swarm.sh up

swarm-down: ## Remove the stack from the swarm (volumes and secrets stay)
	@bash scripts/swarm.sh down

faults: images test-images $(VENV)/.installed ## Only the fault scenarios, with the message report
	@$(PYTHON) -m pytest -m faults tests/e2e

# The benchmark's own stack (project vmmbench, random loopback ports) with the test DNS:
# rspamd's lookups are answered on this machine, fast, and never leave it.
BENCH_ENV := COMPOSE_PROJECT_NAME=vmmbench COMPOSE_FILE=compose.yaml:tests/e2e/dns.yaml \
	$(foreach port,SMTP SUBMISSION SUBMISSIONS IMAP IMAPS POP3 POP3S SIEVE HTTP HTTPS,VMM_PORT_$(port)=)

bench: images test-images $(VENV)/.installed ## Benchmarks against same-run references (bench/results/)
	@$(BENCH_ENV) $(COMPOSE) up -d --wait --remove-orphans
	@$(BENCH_ENV) $(PYTHON) -m bench; rc=$$?; $(BENCH_ENV) $(COMPOSE) down -v >/dev/null 2>&1; exit $$rc

lint: $(VENV)/.installed ## ruff (lint and format), mypy --strict and shellcheck
	@$(VENV)/bin/ruff check vmm tests bench
	@$(VENV)/bin/ruff format --check --quiet vmm tests bench
	@$(VENV)/bin/mypy vmm tests bench
	@$(VENV)/bin/shellcheck --severity=warning images/*/entrypoint.sh images/base/vmm-health \
		images/base/vmm-render images/base/vmm-tls-reload images/postfix/vmm-maillog \
		images/rspamd/vmm-warm-up \
		images/testdns/publish scripts/*.sh .ci/run

clean: ## Stop the stack and remove its volumes, test leftovers and the venv
	@$(COMPOSE) --profile monitoring down -v --remove-orphans || true
	@$(BENCH_ENV) $(COMPOSE) --profile monitoring down -v || true
	@docker ps -aq --filter name=vmmtest | xargs -r docker rm -f >/dev/null
	@docker volume ls -q --filter name=vmmtest | xargs -r docker volume rm >/dev/null
	@rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
