# The commands the README gives. Everything a target needs is installed or
# built by the project's own files (tools/consul/build.sh for the Consul
# agent the integration tests start).

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
BIN         := bin

.PHONY: all build test lint consul pebble demo image vulncheck clean fuzz soak

all: build

## build: static binaries of azimuth and azload in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=true -ldflags '$(LDFLAGS)' -o $(BIN)/azimuth ./cmd/azimuth
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=true -o $(BIN)/azload ./cmd/azload

## lint: formatting, vet, staticcheck (pinned) and module verification
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod verify

## consul: build the Consul agent the tests start (cached outside the repo)
consul:
	@tools/consul/build.sh >/dev/null

## pebble: build the ACME test CA the tests start (cached outside the repo)
pebble:
	@tools/pebble/build.sh >/dev/null

# ZONE_SUITE is the zone-failure suite: high load against real processes,
# run on its own after the rest so that no other package's tests share its
# cores and bend its latency numbers.
ZONE_SUITE := TestZoneFailures|TestSlowRequestInFastPool|TestEveryZoneSlow

## deps: the Debian packages whose commands the tests run (chromium for the
## admin status page, systemd for systemd-analyze), installed with apt-get
## only when a command is missing (tools/deps.sh)
.PHONY: deps
deps:
	@tools/deps.sh

## test: lint, then every test with the race detector (the zone-failure
## suite on its own, last), and internal/sockio without it (its system
## calls differ under the detector)
test: deps lint consul pebble
	AZIMUTH_CONSUL_BIN=$$(tools/consul/build.sh) AZIMUTH_PEBBLE_BIN=$$(tools/pebble/build.sh) \
		$(GO) test -race -timeout 20m -skip '$(ZONE_SUITE)' ./...
	$(GO) test -race -count=1 -timeout 20m -run '$(ZONE_SUITE)' ./cmd/azload
	$(GO) test -count=1 ./internal/sockio

## demo: a zone outage played against a real azimuth on loopback
demo: build
	$(BIN)/azload demo -azimuth $(BIN)/azimuth

## image: the container image azimuth:$(VERSION) from the Dockerfile (needs a
## Docker engine; packaging/ tests the Dockerfile without one)
image:
	docker build --build-arg VERSION=$(VERSION) -t azimuth:$(VERSION) .

## vulncheck: known vulnerabilities in dependencies (needs the Go vulnerability database)
vulncheck:
	$(GO) run golang.org/x/vuln/cmd/govulncheck@v1.1.4 ./...

clean:
	rm -rf $(BIN) azimuth-demo.html

# FUZZTIME is how long make fuzz runs each fuzz target; SOAK is how long
# make soak runs. Both targets are for scheduled runs, outside test.
FUZZTIME ?= 60s
SOAK     ?= 30m

## fuzz: every fuzz target of the module, one after the other, FUZZTIME
## (60s) each; a summary line per target; fails if any target fails
fuzz:
	FUZZTIME=$(FUZZTIME) tools/fuzz/run.sh

## soak: TestSoak for SOAK (30m): load through a real azimuth with reloads,
## a backend fault a minute and Consul agent restarts (builds the agent)
soak: consul
	SOAK=$(SOAK) tools/soak/run.sh
