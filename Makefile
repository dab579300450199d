# Makefile — the project's commands. The two that matter:
#
#   make up     build, make sure PostgreSQL and NATS (JetStream) are there,
#               migrate, seed the demo programme, run every service
#   make test   make sure PostgreSQL and NATS are there, run every test
#
# `make help` lists the rest. PostgreSQL and NATS are found or started by
# scripts/stack.sh (it uses what already answers; otherwise it starts
# project-local instances under .stack/, installing the Debian packages when
# it can). Point everything elsewhere with PGHOST, PGPORT and NATS_URL:
#
#   make test PGPORT=5544 NATS_URL=nats://127.0.0.1:4333
#
# and every database URL below follows (set one explicitly to override it).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CARGO ?= cargo
STACK := scripts/stack.sh
# Extra flags for `stack.sh ensure`, e.g. STACK_FLAGS="--browser --smtp".
STACK_FLAGS ?=
# Extra arguments for cargo test, e.g. TEST_ARGS="-p catalog" or "-- --nocapture".
TEST_ARGS ?=
# Upper bound for the whole `cargo test` run, e.g. 60m (empty: none). CI sets
# it so a hung test fails the run with a message instead of eating CI's time.
TEST_TIMEOUT ?=

# --- where the services live (defaults are the binary's own defaults) -------
PGHOST ?= 127.0.0.1
PGPORT ?= 5432
NATS_URL ?= nats://127.0.0.1:4222
export PGHOST PGPORT NATS_URL

pg_url = postgres://postgres@$(PGHOST):$(PGPORT)/$(1)
export TEST_DATABASE_URL ?= $(call pg_url,postgres)
export CATALOG_DATABASE_URL ?= $(call pg_url,bookmyseat_catalog)
export GATEWAY_DATABASE_URL ?= $(call pg_url,bookmyseat_gateway)
export SEATING_DATABASE_URL ?= $(call pg_url,bookmyseat_seating)
export PAYMENTS_DATABASE_URL ?= $(call pg_url,bookmyseat_payments)
export NOTIFIER_DATABASE_URL ?= $(call pg_url,bookmyseat_notifier)
export ANALYTICS_DATABASE_URL ?= $(call pg_url,bookmyseat_analytics)

# The binary, wherever cargo puts it (CARGO_TARGET_DIR is honoured).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BIN := $(TARGET_DIR)/debug/bookmyseat
APP_URL := $(or $(PUBLIC_BASE_URL),http://127.0.0.1:8080)

say = @printf '\n==> %s\n' "$(1)"

.PHONY: help up test lint fmt bench bench-holds bench-webhooks bench-events bench-booking down stack status build image compose-check k8s-check manifest-checks require-cargo

help: ## Show this list
	@echo "BookMySeat — make targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z0-9-]*:.*## / { printf "  make %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: PGHOST PGPORT NATS_URL (where the services are), CARGO, STACK_FLAGS, TEST_ARGS, TEST_TIMEOUT."

require-cargo:
	@if ! command -v $(CARGO) >/dev/null 2>&1; then \
	    echo "make: '$(CARGO)' not found. Install the Rust toolchain: https://rustup.rs" >&2; \
	    echo "      (already installed? put ~/.cargo/bin on your PATH)" >&2; \
	    exit 1; \
	fi

stack: ## Make sure PostgreSQL and NATS (JetStream) answer; start local ones if not
	$(call say,PostgreSQL and NATS)
	@$(STACK) ensure $(STACK_FLAGS)

status: ## Say what answers and what this project started
	@$(STACK) status

down: ## Stop the PostgreSQL/NATS that `make up`/`make test` started (never the machine's own)
	@$(STACK) stop

build: require-cargo ## Build the bookmyseat binary (debug)
	$(call say,cargo build --bin bookmyseat)
	$(CARGO) build --bin bookmyseat

up: require-cargo ## Build, start PostgreSQL+NATS, migrate, seed, run every service
	@$(MAKE) stack
	@$(MAKE) build
	$(call say,bookmyseat migrate)
	"$(BIN)" migrate
	$(call say,bookmyseat seed)
	"$(BIN)" seed
	$(call say,bookmyseat all)
	@echo "BookMySeat is starting at $(APP_URL)   (Ctrl-C stops it; \`make down\` stops PostgreSQL/NATS if this started them)"
	@exec "$(BIN)" all

# cargo's output ends on the last crate's (often empty) doc-test summary, so
# the recipe closes with the total over every test binary.
# The manifest checks run first: they take seconds, need no database, and a
# broken docker-compose.yml or Kubernetes manifest fails the run before the
# long cargo build starts. The notifier's tests talk to a real SMTP server
# (aiosmtpd from PyPI), tests/e2e drives a real headless Chromium through
# chromedriver and fuzzes the JSON API with schemathesis (PyPI), so the stack
# step makes sure all three are installed.
test: require-cargo ## Run every test (manifest checks, unit, integration, e2e) against real PostgreSQL and NATS
	@$(MAKE) manifest-checks
	@$(MAKE) stack STACK_FLAGS="--browser --smtp --fuzz $(STACK_FLAGS)"
	@# --no-fail-fast: one failing test binary must not hide the others' results.
	$(call say,cargo test --workspace --no-fail-fast $(TEST_ARGS))
	@echo "$(CARGO) test --workspace --no-fail-fast $(TEST_ARGS)$(if $(TEST_TIMEOUT),   (time limit $(TEST_TIMEOUT)))"
	@rc=0; log=$$(mktemp); \
	$(if $(TEST_TIMEOUT),timeout --kill-after=30s $(TEST_TIMEOUT)) $(CARGO) test --workspace --no-fail-fast $(TEST_ARGS) 2>&1 | tee "$$log" || rc=$$?; \
	if [ $$rc -eq 124 ] && [ -n "$(TEST_TIMEOUT)" ]; then \
	    echo "make: the tests did not finish within $(TEST_TIMEOUT) (TEST_TIMEOUT): a test is probably hung — see the last 'has been running for over 60 seconds' line above" >&2; \
	fi; \
	awk '/^test result:/ { passed += $$4; failed += $$6; ignored += $$8 } \
	     END { printf "\ntests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$$log"; \
	rm -f "$$log"; \
	exit $$rc

lint: require-cargo ## rustfmt check and clippy (warnings are errors)
	$(call say,cargo fmt --check)
	$(CARGO) fmt --all -- --check
	$(call say,cargo clippy)
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: require-cargo ## Format the code
	$(CARGO) fmt --all

bench: ## Run the benchmarks (scripts/bench.sh)
	@if [ -x scripts/bench.sh ]; then exec scripts/bench.sh; \
	elif [ -f scripts/bench.sh ]; then exec bash scripts/bench.sh; \
	else echo "make: no benchmark yet (scripts/bench.sh is missing)" >&2; exit 1; fi

bench-holds: ## Run the seat-hold benchmark (scripts/bench-holds.sh)
	@exec bash scripts/bench-holds.sh

bench-webhooks: ## Run the payments webhook benchmark (scripts/bench-webhooks.sh)
	@exec bash scripts/bench-webhooks.sh

bench-events: ## Run the notifier and analytics consumer benchmark (scripts/bench-events.sh)
	@exec bash scripts/bench-events.sh

bench-booking: ## Run the rush and steady-booking scenarios with invariant checks (scripts/bench-booking.sh)
	@exec bash scripts/bench-booking.sh

compose-check: ## Validate docker-compose.yml (Compose spec schema) and lint the Dockerfile, without Docker
	@scripts/validate-compose.sh

k8s-check: ## Render every deploy/k8s overlay and validate it (Kubernetes schemas, cross-references), without a cluster
	@scripts/validate-k8s.sh

manifest-checks:
	$(call say,manifest checks: docker-compose.yml (scripts/validate-compose.sh))
	@scripts/validate-compose.sh
	$(call say,manifest checks: deploy/k8s overlays (scripts/validate-k8s.sh))
	@scripts/validate-k8s.sh

image: ## Build the container image bookmyseat:dev (needs a Docker engine)
	docker build -t bookmyseat:dev .
