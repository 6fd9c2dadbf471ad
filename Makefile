# drym — see README.md. `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
GO ?= go
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/drym-backup/drym/internal/version.Version=$(VERSION)
# backup_runner links libzstd through cgo. The checks never compress: they are
# built without cgo, static binaries that start without the dynamic loader
# (3-9 ms of every Nagios run on a small VM) and run on any amd64 host.
CHECKS := check_backup_age check_test_restore check_key_escrow check_backup_fleet
BIN := $(CURDIR)/bin
# Tools (staticcheck, versitygw, weed, govulncheck) live outside the repo.
TOOLS ?= $(HOME)/.cache/drym-tools/bin
export PATH := $(BIN):$(TOOLS):$(PATH)

.PHONY: all build test test-short demo lint vet fmtcheck staticcheck fuzz bench bench-quick bench-tools clean deb gallery

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/backup_runner
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CHECKS))

# The whole suite, with the race detector, against real servers (versitygw
# and SeaweedFS, gpg, zstd, tar, nagios4, icinga2, nrpe). In CI (CI=true)
# nothing may skip for lack of them: .ci/run installs them first.
# scripts/testsum prints the results and ends with one line naming every
# test that did not run, and why.
# The segment compressor has a pure-Go fallback for builds without cgo
# (internal/backup/segment_purego.go): its round trip runs here too.
test: build
	CGO_ENABLED=0 $(GO) test -count=1 -run 'TestParallelZstd' ./internal/backup
	$(GO) test -count=1 -tags purego -run 'TestSeal|TestSHA1State|TestSEIPD|TestCFB' ./internal/crypt
	@set -o pipefail; DRYM_BIN=$(BIN) $(GO) test -race -count=1 -timeout 40m -json ./... | $(GO) run ./scripts/testsum

test-short: build
	DRYM_BIN=$(BIN) $(GO) test -short -count=1 ./...

demo: build
	@bash scripts/demo.sh $(BIN)

vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./cmd/... ./internal/...
	$(GO) vet -tags purego ./internal/crypt
	GOARCH=arm64 $(GO) vet ./internal/crypt
	@# seal_amd64.s is what its generator writes
	t=$$(mktemp) && (cd internal/crypt && $(GO) run gen_sealasm.go $$t) && cmp internal/crypt/seal_amd64.s $$t; rc=$$?; rm -f $$t; exit $$rc

staticcheck:
	@command -v staticcheck >/dev/null || GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	staticcheck ./...

# gofmt: every Go file as gofmt writes it (lint fails and names the files).
fmtcheck:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt needed: $$files"; exit 1; fi

lint: vet fmtcheck staticcheck

# drym vs the stock tar | zstd | gpg pipeline and the peers restic 0.18.1 and
# borg 1.2, on every shape of data (server-like trees of ≈ 1 and 4 GiB,
# 168,000 small files, 1 GiB of large files; made once in $DRYM_BENCH_DIR or
# /var/tmp/drym-bench), each WARM (in tmpfs) and COLD (caches dropped before
# every run: run it as root); it prints its estimated time first (≈ 30-45 min
# on 2 cores) and writes BENCHMARKS.md. Not part of `make test`.
# `make bench-quick`: the same on small trees, one run, no S3 (a few
# minutes), written to $$TMPDIR/drym-bench-quick.md, not into the repo.
bench: build bench-tools
	$(GO) run ./scripts/bench -bin $(BIN) -out BENCHMARKS.md $(BENCHFLAGS)

bench-quick: build bench-tools
	$(GO) run ./scripts/bench -bin $(BIN) -quick $(BENCHFLAGS)

# The peers the bench measures drym against: restic (a Go tool, into the
# tools cache) and borg (Debian's borgbackup; needs root for apt-get).
RESTIC_VERSION := v0.18.1
bench-tools:
	@command -v restic >/dev/null || GOBIN=$(TOOLS) $(GO) install github.com/restic/restic/cmd/restic@$(RESTIC_VERSION)
	@command -v borg >/dev/null || { command -v apt-get >/dev/null && $$( [ $$(id -u) = 0 ] || echo sudo ) apt-get install -y borgbackup; } || \
	  { echo "bench-tools: borg is needed: apt-get install borgbackup" >&2; exit 1; }

# Every Go fuzz target, one at a time (go test fuzzes one target per run),
# each for $(FUZZTIME): 10s in CI, longer by hand (make fuzz FUZZTIME=10m).
# A finding is saved under the package's testdata/fuzz and fails the run. A
# failed target is run once more: a real finding fails again (it is in the
# corpus now), while go's fuzzer on a loaded machine sometimes ends a clean
# run with "context deadline exceeded" while stopping its workers.
FUZZTIME ?= 10s
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | sort -u); do \
	    echo "fuzz $$dir $$f for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$dir || \
	      { echo "fuzz $$dir $$f: failed; once more, to tell a finding from a shutdown hiccup"; \
	        $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$dir; }; \
	  done; \
	done

# Debian package dist/drym_<version>_amd64.deb (packaging/nfpm.yaml). nfpm
# runs as a Go tool from the tools cache, not a module dependency.
DIST ?= $(CURDIR)/dist
NFPM_VERSION := v2.45.2
deb: build
	@command -v nfpm >/dev/null || GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	@mkdir -p $(DIST)
	DRYM_BIN=$(BIN) DRYM_DEB_VERSION=$$(packaging/deb-version.sh '$(VERSION)') \
	  nfpm pkg --packager deb --config packaging/nfpm.yaml --target $(DIST)/

# docs/GALLERY.md: every check's output, from the checks' golden files
# (internal/gallery; its test fails when they drift apart).
gallery:
	$(GO) run ./internal/gallery/gen $(CURDIR)

clean:
	rm -rf $(BIN) dist
