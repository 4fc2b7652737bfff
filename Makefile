# Build, test and try trialcat. `make help` lists the targets.
GO       ?= go
BIN      ?= bin
WORKERS  ?= 4
# The build must not depend on this checkout's VCS state (a clone without git, a tarball).
export GOFLAGS ?= -buildvcs=false
# Binaries are built with cgo: the race detector needs it.
export CGO_ENABLED ?= 1
# The commit --version names; empty outside a git checkout (a tarball), where it says "unknown".
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS  := -X github.com/trialcat/trialcat/internal/buildinfo.commit=$(COMMIT)
# golangci-lint is installed into $(BIN) at this version by `make lint` when it is missing.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

.PHONY: help build static test test-slurm test-short lint demo smoke bench tidy-check clean

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

build: ## build coordinator, worker, fakeai and bench into ./bin
	$(GO) build -ldflags="$(LDFLAGS)" -o $(BIN)/ ./cmd/...

static: ## build static coordinator and worker (no cgo), as the Dockerfile does, into ./bin/static
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w $(LDFLAGS)" -o $(BIN)/static/ ./cmd/coordinator ./cmd/worker

test: build ## run every test with the race detector (what CI runs)
	$(GO) test -race -count=1 -timeout 15m ./...

test-slurm: build ## make test, with the Slurm test starting a one-node cluster here (root, Debian) and stopping it
	TRIALCAT_SLURM_TEST=start $(GO) test -race -count=1 -timeout 15m ./...

test-short: ## unit and in-process tests only: no test runs the built binaries
	$(GO) test -short -count=1 ./...

lint: $(GOLANGCI_LINT) ## gofmt, go vet and golangci-lint (.golangci.yml)
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(abspath $(BIN)) GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

demo: build ## categorize the bundled 100 real trials offline into ./demo-output (no API key needed)
	rm -rf demo-output
	env -u OPENAI_API_KEY $(BIN)/coordinator --workers $(WORKERS) --input testdata/trials.jsonl --out demo-output
	@echo; head -3 demo-output/final_results.csv

smoke: build ## run scripts/ci-categorize.sh the way CI does
	scripts/ci-categorize.sh

bench: build ## run the benchmarks written up in BENCHMARKS.md
	scripts/bench.sh

tidy-check: ## fail if go mod tidy would change go.mod or go.sum
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

clean: ## remove build and demo output
	rm -rf $(BIN) demo-output output
