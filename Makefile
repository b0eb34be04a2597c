# synod — build, run, test. Every tool the targets need is installed by them.
GO        ?= go
BIN       := bin/synod
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
SEEDS     ?= 10000
SEED      ?=
FUZZTIME  ?= 30s
PKGS      := ./...

.PHONY: all build run test check fmt-check vet staticcheck purity unit sim sim-ci fuzz bench tools clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/synod

## run: a local 3-replica cluster and its proxy (Ctrl-C stops it)
run: build
	./$(BIN) up

## test: what CI runs: format, vet, staticcheck, the paxos purity check, every test under -race
test: check unit sim-ci nemesis-ci

check: fmt-check vet staticcheck purity

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools: $(STATICCHECK)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)

# The paxos core must stay pure: standard library only, and none of it that
# touches the network, the disk or the process.
purity:
	@bad=$$($(GO) list -f '{{join .Imports "\n"}}' ./paxos | grep -E '^(net|os|syscall)(/|$$)|\.'); \
	if [ -n "$$bad" ]; then echo "paxos must stay pure, but imports:"; echo "$$bad"; exit 1; fi; \
	echo "paxos is pure"

# One test binary at a time: the end-to-end tests start real clusters, and on
# two cores several at once starve each other (a read-balance test then sees
# one follower twice as slow as the other). Builds still run in parallel.
unit:
	$(GO) test -race -count=1 -timeout 20m -p 1 $(PKGS)

## sim: the seeded simulator. SEEDS=n runs n seeds; SEED=n replays one seed.
sim:
ifneq ($(SEED),)
	$(GO) test ./paxos -run 'TestSimulation$$' -count=1 -v -sim.seed=$(SEED)
else
	$(GO) test ./paxos -run 'TestSimulation$$' -count=1 -v -timeout 60m -sim.seeds=$(SEEDS)
endif

# sim-ci: 2,000 seeds and the planted-bug sweeps, without -race (unit runs a
# few hundred seeds under -race).
sim-ci:
	$(GO) test ./paxos -run 'TestSimulation$$|TestPlanted' -count=1 -timeout 20m -sim.seeds=2000

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test $$pkg -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME); \
	  done; done

## bench: the Go benchmarks of every package
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin

## bench-compare: synod and etcd through the same workloads on this machine,
## alternating on a fresh cluster each run (about 10 minutes; not part of test).
## The etcd peer is a module of its own so etcd never enters synod's go.mod.
## BENCH_COMPARE_FLAGS passes more flags, e.g. -runs 1 or -direct.
.PHONY: bench-compare
bench-compare: build
	cd bench/peers/etcd && $(GO) build -o ../../../bin/etcdbench .
	$(GO) build -o bin/benchcompare ./bench/cmd/benchcompare
	./bin/benchcompare -synod $(BIN) -etcd bin/etcdbench -out bin/bench-compare $(BENCH_COMPARE_FLAGS)

## nemesis: a Jepsen-style fault run of a real cluster (5 replicas, 2 proxies,
## every peer and proxy link through a fault relay; kills, power cuts, pauses,
## partitions, overlapping faults, skewed clocks, lossy and slow disks, lost
## files, proxy-link cuts) checked with porcupine, for lost writes, and for
## the order of pipelined writes. DURATION=120s long; RUNS=n runs in a row
## (stops at the first failure); SEED=n replays a run's choices; a failed
## run's history, HTML view and logs go to NEMESIS_OUT/seed-<n>.
## NEMESIS_FLAGS passes more (-nemesis.order makes the per-connection order
## and session monotonicity checks fail a run, -nemesis.faults=kill-master,...,
## -nemesis.first=pause-in-partition, -nemesis.rate=, -nemesis.clients=).
DURATION    ?= 120s
RUNS        ?= 1
NEMESIS_OUT ?= bin/nemesis
.PHONY: nemesis nemesis-ci
nemesis:
	$(GO) test ./internal/nemesis -run 'TestNemesis$$' -count=$(RUNS) -failfast -v -timeout 0 \
	  -nemesis.duration=$(DURATION) -nemesis.out=$(abspath $(NEMESIS_OUT)) $(if $(SEED),-nemesis.seed=$(SEED)) $(NEMESIS_FLAGS)

# nemesis-ci: a 45 s run of every fault (at least 5,000 operations) that
# begins with a pause during a partition and a power cut, then the two
# planted bugs (stale follower reads; votes before fsync), which the checks
# must catch.
nemesis-ci:
	$(GO) test ./internal/nemesis -run 'TestNemesis$$|TestPlanted' -count=1 -timeout 15m \
	  -nemesis.duration=45s -nemesis.minops=5000 -nemesis.planted -nemesis.first=pause-in-partition,power-cut \
	  -nemesis.out=$(abspath $(NEMESIS_OUT))
