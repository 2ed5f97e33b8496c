# ChronoTracer platform: the targets CI runs (`.ci/run` calls `make lint` and `make test`).
#
#   make demo       run the product locally (no AWS account needed)
#   make test       build, run every test, check templates are fresh, lint templates
#   make lint       rustfmt check + clippy with warnings as errors
#   make templates  re-synthesize templates/ from customers/
#   make bench      benchmarks (release mode)
#   make e2e-aws    onboard + destroy a preview stack in a real AWS account (CHRONO_E2E_AWS=1)

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

.PHONY: help venv postgres-bin build test lint templates bench e2e-aws demo clean

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
	@mkdir -p .chrono
	tests/with-postgres.sh $(CARGO) test --workspace --no-fail-fast 2>&1 | tee .chrono/test.log
	$(CHRONOCTL) synth --check
	$(VENV)/bin/cfn-lint --non-zero-exit-code informational -- templates/*/*.yaml
	@echo "cfn-lint: 0 findings in $$(ls templates/*/*.yaml | wc -l) templates"
	@awk '/^test result:/ {p+=$$4; f+=$$6} END {printf "summary: %d passed, %d failed\n", p, f}' .chrono/test.log

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

templates:
	$(CHRONOCTL) synth

bench: venv postgres-bin
	$(CARGO) bench -p chrono-provisioner
	$(CARGO) bench -p chrono-runtime --bench pipeline_evtx
	tests/with-postgres.sh $(CARGO) bench -p chrono-runtime --bench search
	tests/with-postgres.sh $(CARGO) bench -p chrono-runtime --bench pipeline_upload
	$(CARGO) bench -p chrono-runtime --bench ai_intent_cache
	$(CARGO) bench -p chrono-runtime --bench ai_translate

# Real AWS: runs only with CHRONO_E2E_AWS=1, credentials and CHRONO_E2E_CONFIG (a preview config).
e2e-aws:
	@if [ "$${CHRONO_E2E_AWS:-}" != 1 ]; then \
	  echo "e2e-aws: skipped (set CHRONO_E2E_AWS=1, AWS credentials and CHRONO_E2E_CONFIG=customers/<preview>.yaml)"; \
	else \
	  $(CARGO) test -p chrono-tests --test deploy_e2e_aws -- --nocapture; \
	fi

# The binaries `make demo` runs (cargo's target directory, CARGO_TARGET_DIR respected).
BIN_DIR = $${CARGO_TARGET_DIR:-target}/debug

demo: venv postgres-bin
	$(CARGO) build --quiet -p chrono-provisioner -p chrono-runtime --bins
	@start=$$(date +%s); rc=0; \
	$(BIN_DIR)/chronoctl local up && $(BIN_DIR)/chronoctl local demo || rc=$$?; \
	echo "make demo: $$(( $$(date +%s) - start ))s after the build (platform left running: chronoctl local status|down)"; \
	exit $$rc

clean:
	rm -rf $(VENV) .chrono
	$(CARGO) clean
