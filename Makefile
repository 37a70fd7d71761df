# Task runner. `make demo` and `make test` are the README's two commands; each
# installs what it needs first. Everything built or downloaded is cached outside
# the repository (~/.cache/clientpipelines, keyed by version).

SHELL := /bin/bash
UV_VERSION ?= 0.13.8
export PATH := $(HOME)/.local/bin:$(PATH)
UV := uv
RUN := $(UV) run --frozen

.PHONY: help setup build demo test test-unit lint cluster-up cluster-down cluster-status \
	stack-up stack-down stack-status stack-logs seed operator demo-down app

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## install uv (if missing) and the locked Python environment
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet --user "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

build: setup ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm, argocd, tofu (cached)
	@$(RUN) devstack build

demo: build ## the whole product locally: onboard summit-health (18 CDM tables), change its data, publish
	@$(RUN) devstack demo

demo-down: setup ## stop what the demo started (data kept)
	@$(RUN) devstack demo --down

cluster-up: build ## start (or reuse) the local control plane; prints the KUBECONFIG to export
	@$(RUN) devstack cluster up

cluster-down: setup ## stop the local control plane (data kept; WIPE=1 deletes it)
	@$(RUN) devstack cluster down $(if $(WIPE),--wipe)

cluster-status: setup ## PIDs, logs and readiness of the local control plane
	@$(RUN) devstack cluster status

stack-up: setup ## start (or reuse) the platform services and wait until healthy
	@$(RUN) devstack stack up

stack-down: setup ## stop the platform services (data kept; WIPE=1 deletes it)
	@$(RUN) devstack stack down $(if $(WIPE),--wipe)

stack-status: setup ## each service: state, port, PID, memory, version, log
	@$(RUN) devstack stack status

stack-logs: setup ## where the logs are (SERVICE=trino shows its tail)
	@$(RUN) devstack stack logs $(SERVICE)

seed: setup ## sample OMOP data for CLIENT (default acme-health), ROWS persons, TABLES (or clinical)
	@$(RUN) devstack seed --client $(or $(CLIENT),acme-health) --rows $(or $(ROWS),2000) $(if $(TABLES),--tables $(TABLES))

app: build ## the onboarding app on :8501 (GITOPS_REMOTE=<git url> proposes branches; else direct apply)
	@$(RUN) devstack app $(if $(GITOPS_REMOTE),--gitops-remote $(GITOPS_REMOTE))

operator: setup ## run the operator (foreground) against the local control plane and stack
	@$(RUN) devstack operator

lint: setup ## ruff and mypy
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy

test-unit: setup ## the fast tier only
	@$(RUN) pytest -m unit -q

# All tiers that can run here. pytest's exit code 5 ("no tests collected") is a
# failure: a suite that runs nothing must not look green.
test: build lint ## lint, then every test tier that can run on this machine
	@$(RUN) pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; \
	  exit $$rc
