# The two set-up commands (see README): `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: setup demo demo-in-cluster test check unit integration bench chaos crds

setup:  ## Install uv (from PyPI) and the locked environment: nodesmith, both first-party providers, the price-overlay plugin.
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --quiet
	@echo "environment ready: $$($(UV) run --frozen nodesmith --version)"

demo: setup  ## Local control plane + nodesmith (kwok provider) scaling `inflate` 0 -> 4 -> 0.
	@$(UV) run --frozen nodesmith demo

demo-in-cluster: setup  ## As root: control plane + a real kubelet node, the image built from deploy/Dockerfile, the Helm chart (2 replicas) scaling kwok nodes for `inflate` 0 -> 5 -> 0. KEEP=1 leaves it running.
	$(UV) run --frozen nodesmith dev demo-in-cluster $(if $(KEEP),--keep)

check: setup  ## Lint, format, types and import layering.
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

test: check  ## Everything CI runs: checks, control-plane binaries, unit/integration/e2e tests, bench smoke.
	$(UV) run --frozen nodesmith dev build
	$(UV) run --frozen pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating that as a failure"; exit 1; fi; exit $$rc

unit: setup
	$(UV) run --frozen pytest tests/unit $(PYTEST_ARGS)

bench: setup  ## Every goal of the performance issue in one table next to Karpenter's (about an hour; BENCH_ARGS=--quick: minutes; BENCH_ARGS="--only cost,state": only those groups, see tests/bench/bench_all.py).
	$(UV) run --frozen nodesmith dev build
	$(UV) run --frozen python tests/bench/bench_all.py $(BENCH_ARGS)

chaos: setup  ## The crash-safety campaigns at full size (100 SIGKILLs with kwok, 100 with AWS on moto) and the API and cloud faults, with their tables.
	$(UV) run --frozen nodesmith dev build
	NODESMITH_CHAOS_ROUNDS=$${NODESMITH_CHAOS_ROUNDS:-100} NODESMITH_CHAOS_AWS_ROUNDS=$${NODESMITH_CHAOS_AWS_ROUNDS:-100} \
		$(UV) run --frozen pytest tests/chaos -s -p no:randomly $(PYTEST_ARGS)

crds: setup  ## Regenerate deploy/crds from the models (core and plugins) and copy them into the Helm chart.
	$(UV) run --frozen python -m nodesmith.api.crds deploy/crds
	$(UV) run --frozen python -m nodesmith_kwok.nodeclass deploy/crds
	$(UV) run --frozen python -m nodesmith_aws.crds deploy/crds
	cp deploy/crds/*.yaml deploy/charts/nodesmith/crds/
