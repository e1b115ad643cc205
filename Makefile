# Targets: build (the p2pd binary), install (build, then copy it to
# $(DESTDIR)$(PREFIX)/bin), test (the whole suite, as CI runs it), bench
# (the side-by-side benchmark; see BENCHMARKS.md). BENCHFLAGS passes flags
# to the harness, e.g. make bench BENCHFLAGS=-quick.
#
# The binary records the git commit it was built from (`p2pd version`);
# VERSION=x.y.z overrides the release version compiled in.

GO ?= go
PREFIX ?= /usr/local
BENCHFLAGS ?=
VERSION ?=
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
DIRTY ?= $(shell git diff --quiet HEAD 2>/dev/null || echo true)

PKG := github.com/p2pd/p2pd/version
LDFLAGS := $(if $(COMMIT),-X $(PKG).Commit=$(COMMIT)) $(if $(DIRTY),-X $(PKG).Dirty=$(DIRTY)) \
	$(if $(VERSION),-X $(PKG).Version=$(VERSION))

.PHONY: build install test bench bench-quick

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o p2pd ./cmd/p2pd

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 p2pd $(DESTDIR)$(PREFIX)/bin/p2pd

test:
	$(GO) test -race -count=1 -timeout 30m ./...

bench:
	$(GO) run ./bench $(BENCHFLAGS)

bench-quick:
	$(GO) run ./bench -quick $(BENCHFLAGS)
