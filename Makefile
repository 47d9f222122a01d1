# cronfleet developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The integration tests mostly wait (for fire times, Jobs, pods): each worker
# starts a control plane of its own, so three run side by side on two cores.
# TEST_WORKERS=0 runs them in this process, one after the other, as does a run
# against another cluster (CRONFLEET_TEST_KUBECONFIG), which the workers would share.
TEST_WORKERS ?= 3
PARALLEL := $(if $(filter 0,$(TEST_WORKERS))$(CRONFLEET_TEST_KUBECONFIG),,-n $(TEST_WORKERS) --dist load) --durations=15

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

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
	$(call run_pytest,tests/integration $(PARALLEL))

.PHONY: test
test: lint typecheck binaries ## Everything: lint, types, unit and integration tests
	$(call run_pytest,tests --ignore=tests/images $(PARALLEL))

.PHONY: demo
demo: binaries ## The main job: local control plane, CRD, operator, examples/, `kubectl get schedules`
	$(BIN)/cronfleet-devcluster demo

.PHONY: bench
bench: binaries ## Benchmarks on a fresh local control plane; prints a table with ratios to a floor
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: binaries ## 10,000 Schedules on one operator: creation, requests, RSS, CPU, idle, restart, runs (~11 min)
	$(BIN)/python -m tests.bench.run --scale $(BENCH_ARGS)

.PHONY: e2e-kind
e2e-kind: $(STAMP) ## With Docker and kind: build images, helm install, run the integration suite on kind
	hack/e2e/kind.sh $(PYTEST_ARGS)

.PHONY: e2e-node
e2e-node: $(STAMP) ## The real node (kubelet, containerd, CNI) in a network namespace of its own: tests/e2e
	$(BIN)/cronfleet-devcluster build --with-kubelet
	$(BIN)/python -m cronfleet_devcluster.netns -- env CRONFLEET_NODE=kubelet \
		$(BIN)/pytest tests/e2e/test_node.py --durations=0 $(PYTEST_ARGS)

# `images` first: the real node imports their archives, and the chart installs them.
.PHONY: e2e
e2e: images ## The chart with the built images on the real node (netns); Schedule, run and chain tests against it
	$(BIN)/cronfleet-devcluster build --with-kubelet
	$(BIN)/python -m cronfleet_devcluster.netns -- env CRONFLEET_NODE=kubelet \
		$(BIN)/python -m cronfleet_devcluster.e2e $(PYTEST_ARGS)

.PHONY: images
images: $(STAMP) ## Build the operator and runner images with podman (Debian base here); print their sizes
	$(BIN)/python -m cronfleet_devcluster.containerimages build $(IMAGES_ARGS)

.PHONY: images-test
images-test: images ## Run the built images as a restricted pod would: the runner contract, the operator's start
	$(call run_pytest,tests/images)

# The images install exactly these pins, by hash. Resolved with Python 3.11, the
# images' interpreter, from the index alone (no local find-links), so every hash
# is of a file the index serves. LOCK_ARGS=--upgrade moves every pin forward.
LOCK_TOOLS := $(VENV)/lock-tools
PIP_COMPILE = env -u PIP_FIND_LINKS CUSTOM_COMPILE_COMMAND='make lock' \
	$(LOCK_TOOLS)/bin/pip-compile --quiet --generate-hashes --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

.PHONY: lock
lock: ## Regenerate the images' hashed lock files (runner-image/ and operator/requirements.lock)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"the lock files are for the images\x27 Python 3.11; $(PYTHON) is {sys.version.split()[0]}"'
	@test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet 'pip-tools==7.6.2'; }
	$(PIP_COMPILE) --output-file runner-image/requirements.lock runner-image/pyproject.toml
	$(PIP_COMPILE) --output-file operator/requirements.lock pyproject.toml runner-image/pyproject.toml

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
