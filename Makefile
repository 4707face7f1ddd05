# Tollgate — make help lists the targets.
SHELL := /bin/bash
GO ?= go
OPA := $(GO) tool opa
BIN := bin/tollgate
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FUZZTIME ?= 20s
GOTEST_FLAGS ?= -race -count=1 -timeout 15m

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: build ## start the gateway and the provider simulator with the embedded default config
	./$(BIN) serve --sim 127.0.0.1:8081

build: ## build bin/tollgate
	$(GO) build -o $(BIN) ./cmd/tollgate

deps: ## install what the tests need (redis-server, clickhouse-server, Go modules, opa)
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v clickhouse-server >/dev/null || missing="$$missing clickhouse-server"; \
	command -v clickhouse-client >/dev/null || missing="$$missing clickhouse-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(GO) mod download
	$(GO) build -o /dev/null github.com/open-policy-agent/opa

test: deps lint policy-check policy-test ## install what is missing, then lint, policy checks and every Go test with -race
	$(GO) test $(GOTEST_FLAGS) ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

POLICY_SETS := policies examples/startup examples/enterprise

policy-fmt: ## fail when opa fmt would change a policy
	@out=$$($(OPA) fmt --list $(POLICY_SETS)); \
	if [ -n "$$out" ]; then echo "opa fmt would change:"; echo "$$out"; exit 1; fi

policy-check: policy-fmt ## opa check --strict on the policy library and the examples
	@for d in $(POLICY_SETS); do echo "opa check --strict $$d"; $(OPA) check --strict $$d || exit 1; done

policy-test: ## opa test with coverage (at least 90%) for the library and each example
	@for d in $(POLICY_SETS); do \
	  echo "opa test --coverage --threshold 90 $$d"; \
	  $(OPA) test --timeout 120s --coverage --threshold 90 $$d > /dev/null || { $(OPA) test --timeout 120s $$d; exit 1; }; \
	  $(OPA) test --timeout 120s $$d | tail -n 1; \
	done

bundle: ## build the default policy library into bin/bundle.tar.gz
	mkdir -p bin && $(OPA) build -o bin/bundle.tar.gz policies

bench: ## benchmarks: hot paths and a load run through the gateway vs the simulator alone
	$(GO) test -run='^$$' -bench=. -benchmem ./...

fuzz: ## run each fuzz test for FUZZTIME
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$spec/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "== $$spec $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$spec || exit 1; \
	  done; \
	done

golden: ## regenerate golden files
	$(GO) test ./... -run Golden -update

tidy: ## go mod tidy
	$(GO) mod tidy

.PHONY: help run build deps test lint policy-fmt policy-check policy-test bundle bench fuzz golden tidy
