# Targets: build (the p2pd binary), test (the whole suite, as CI runs it),
# bench (the side-by-side benchmark; see BENCHMARKS.md). BENCHFLAGS passes
# flags to the harness, e.g. make bench BENCHFLAGS=-quick.

GO ?= go
BENCHFLAGS ?=

.PHONY: build test bench bench-quick

build:
	$(GO) build -o p2pd ./cmd/p2pd

test:
	$(GO) test -race -count=1 -timeout 30m ./...

bench:
	$(GO) run ./bench $(BENCHFLAGS)

bench-quick:
	$(GO) run ./bench -quick $(BENCHFLAGS)
