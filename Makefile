# ChronoTracer platform: the targets CI runs (`.ci/run` calls `make lint` and `make test`).
#
#   make demo       run the product locally (no AWS account needed)
#   make test       build, run every test, check templates are fresh, lint templates
#   make lint       rustfmt check + clippy with warnings as errors
#   make templates  re-synthesize templates/ from customers/
#   make bench      benchmarks (release mode)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO      ?= cargo
VENV       := .venv
PY         := $(VENV)/bin/python
# Pinned tools from PyPI, installed into .venv.
MOTO_VERSION    := 5.2.5
CFNLINT_VERSION := 1.58.0
CHRONOCTL  = $(CARGO) run --quiet -p chrono-provisioner --bin chronoctl --

.PHONY: help venv postgres-bin build test lint templates bench demo clean

help:
	@sed -n 's/^#   //p' Makefile

$(VENV)/.stamp-$(MOTO_VERSION)-$(CFNLINT_VERSION):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check \
	  "moto[server]==$(MOTO_VERSION)" "cfn-lint==$(CFNLINT_VERSION)"
	touch $@

venv: $(VENV)/.stamp-$(MOTO_VERSION)-$(CFNLINT_VERSION)

# PostgreSQL server binaries (initdb, pg_ctl) for the private test/demo clusters.
postgres-bin:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif [ -n "$${DATABASE_URL:-}" ]; then :; \
	else \
	  echo "installing PostgreSQL server binaries (apt-get install postgresql)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

build:
	$(CARGO) build --workspace --all-targets

test: venv postgres-bin
	$(CARGO) build --workspace --all-targets
	tests/with-postgres.sh $(CARGO) test --workspace --no-fail-fast
	$(CHRONOCTL) synth --check
	$(VENV)/bin/cfn-lint --non-zero-exit-code informational -- templates/*/*.yaml

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

templates:
	$(CHRONOCTL) synth

bench: venv postgres-bin
	$(CARGO) bench -p chrono-provisioner
	tests/with-postgres.sh $(CARGO) bench -p chrono-runtime --bench search
	$(CARGO) bench -p chrono-runtime --bench ai_intent_cache

demo: venv postgres-bin
	@echo "make demo: not yet available (see issue: chronoctl local)"; exit 1

clean:
	rm -rf $(VENV) .chrono
	$(CARGO) clean
