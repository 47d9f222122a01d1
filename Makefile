# cronfleet developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml runner-image/pyproject.toml hack/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"Python >= 3.11 is needed, $(PYTHON) is {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e runner-image -e hack
	@touch $@

.PHONY: dev
dev: $(STAMP) ## Create the virtualenv (.venv): operator, runner, local control plane, dev tools

.PHONY: lint
lint: $(STAMP) ## ruff lint and format check; crds/ up to date with the models
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m cronfleet.crd --check

.PHONY: typecheck
typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

.PHONY: binaries
binaries: $(STAMP) ## Build (or reuse the cached) kube-apiserver, kube-controller-manager, kubectl, etcd, Helm, promtool and kstatus
	$(BIN)/cronfleet-devcluster build

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
define run_pytest
	@set +e; $(BIN)/pytest $(1) $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests in $(1): failing" >&2; exit 1; fi; \
	exit $$code
endef

.PHONY: unit
unit: $(STAMP) ## Unit tests only (no cluster)
	$(call run_pytest,tests/unit)

.PHONY: integration
integration: binaries ## Integration tests on the local control plane (or CRONFLEET_TEST_KUBECONFIG)
	$(call run_pytest,tests/integration)

.PHONY: test
test: lint typecheck binaries ## Everything: lint, types, unit and integration tests
	$(call run_pytest,tests)

.PHONY: demo
demo: binaries ## The main job: local control plane, CRD, operator, examples/, `kubectl get schedules`
	$(BIN)/cronfleet-devcluster demo

.PHONY: bench
bench: binaries ## Benchmarks on a fresh local control plane; prints a table with ratios to a floor
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

.PHONY: e2e-kind
e2e-kind: $(STAMP) ## With Docker and kind: build images, helm install, run the integration suite on kind
	hack/e2e/kind.sh $(PYTEST_ARGS)

.PHONY: crds
crds: $(STAMP) ## Regenerate crds/ (and the chart's copy) from the pydantic models
	$(BIN)/python -m cronfleet.crd

.PHONY: cluster
cluster: binaries ## Start the local control plane and node agent in the background (.cluster/)
	$(BIN)/cronfleet-devcluster up

.PHONY: cluster-down
cluster-down: $(STAMP) ## Stop the local control plane
	$(BIN)/cronfleet-devcluster down

.PHONY: cluster-status
cluster-status: $(STAMP) ## Show which parts of the local control plane run
	$(BIN)/cronfleet-devcluster status

.PHONY: clean
clean: ## Remove the virtualenv and caches (not the built Kubernetes programs)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
