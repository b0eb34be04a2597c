# synod — build, run, test. Every tool the targets need is installed by them.
GO        ?= go
BIN       := bin/synod
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
SEEDS     ?= 10000
SEED      ?=
FUZZTIME  ?= 30s
PKGS      := ./...
# The benchmark's peers, etcd and ZooKeeper, are Go modules of their own (so
# neither etcd nor the ZooKeeper client ever enters synod's go.mod), outside
# ./...: the peer-* targets check and test each from its directory.
PEERS     := bench/peers/etcd bench/peers/zookeeper

.PHONY: all build run test check fmt-check vet staticcheck purity unit sim sim-ci fuzz bench tools clean redis-tools zookeeper
.PHONY: peer-check peer-vet peer-staticcheck peer-test

all: build

build:
	$(GO) build -o $(BIN) ./cmd/synod

## run: a local 3-replica cluster and its proxy (Ctrl-C stops it)
run: build
	./$(BIN) up

## test: what CI runs: format, vet, staticcheck, the paxos purity check, the alert rules,
## every test under -race, the peer modules' tests (etcd, ZooKeeper), the simulator's seeds and a nemesis run
test: check rules-check unit peer-test sim-ci nemesis-ci

## check: format, vet, staticcheck (both modules) and the paxos purity check
check: fmt-check vet staticcheck purity peer-check

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools: $(STATICCHECK) redis-tools zookeeper

## redis-tools: redis-cli and redis-benchmark (Debian's redis-tools), which the
## proxy's RESP tests drive as clients nobody here wrote; skipped when present.
redis-tools:
	@command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools; }

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)

## zookeeper: Debian's zookeeper package (3.8) and a java to run it, which the
## ZooKeeper peer of the benchmark starts as a three-server ensemble; skipped
## when present.
ZK_JAR := /usr/share/java/zookeeper.jar
zookeeper:
	@test -f $(ZK_JAR) && command -v java >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper; }

# purity: the paxos core must stay pure (DESIGN.md): standard library only,
# and none of it that touches the network, the disk or the process. It reads
# `go list -deps`, so an import through a subpackage or a library counts as
# much as a direct one:
#  - every package paxos depends on is the standard library or paxos's own;
#  - no package of paxos's own imports net, os or syscall (or below them);
#  - nothing it depends on is the network or process control (net/...,
#    os/exec, os/signal, os/user, plugin), through whichever package.
# A failure names each offending package where it enters: who imports it.
# The standard library's own use of os and syscall (fmt and time reach them)
# is not the core's: those are checked only where paxos imports them.
PURE := synod/paxos
purity:
	@deps=$$($(GO) list -deps -f '{{.Standard}} {{.ImportPath}} {{join .Imports " "}}' $(PURE)) || exit 1; \
	printf "%s\n" "$$deps" | awk -v pure=$(PURE) ' \
	  { for (i = 3; i <= NF; i++) by[$$i] = by[$$i] " " $$2 } \
	  $$1 == "false" && $$2 != pure && index($$2, pure "/") != 1 { bad[$$2] = "is outside the standard library" } \
	  $$1 == "false" && ($$2 == pure || index($$2, pure "/") == 1) { \
	    for (i = 3; i <= NF; i++) if ($$i ~ /^(net|os|syscall)(\/|$$)/) { n++; printf "  %s imports %s\n", $$2, $$i } } \
	  $$1 == "true" && $$2 ~ /^(net|os\/exec|os\/signal|os\/user|plugin)(\/|$$)/ { bad[$$2] = "is the network or the process" } \
	  END { \
	    for (p in bad) { n++; entry = 0; k = split(by[p], q, " "); \
	      for (i = 1; i <= k; i++) if (!(q[i] in bad)) entry = 1; \
	      if (entry) printf "  %s %s; imported by%s\n", p, bad[p], by[p] } \
	    if (n) { print "paxos must stay pure, but see above"; exit 1 } \
	    print "paxos is pure" }'

# One test binary at a time: the end-to-end tests start real clusters, and on
# two cores several at once starve each other (a read-balance test then sees
# one follower twice as slow as the other). Builds still run in parallel.
unit: redis-tools
	$(GO) test -race -count=1 -timeout 20m -p 1 $(PKGS)

# peer-check and peer-test: vet, staticcheck and the tests of each peer
# module. Their tests run without -race: a race build of etcd costs about
# 45 s more on two cores with a cold cache, and the synod packages the peers
# use (bench, bench/benchcli, internal/proc) are race-tested by unit. The
# ZooKeeper peer's test starts a real ensemble, so it needs the package.
peer-check: peer-vet peer-staticcheck

peer-vet:
	@set -e; for p in $(PEERS); do echo "== vet $$p"; (cd $$p && $(GO) vet ./...); done

peer-staticcheck: $(STATICCHECK)
	@set -e; for p in $(PEERS); do echo "== staticcheck $$p"; (cd $$p && $(STATICCHECK) ./...); done

peer-test: zookeeper
	@set -e; for p in $(PEERS); do echo "== test $$p"; (cd $$p && $(GO) test -count=1 -p 1 -timeout 5m ./...); done

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
	$(GO) test ./paxos -run 'TestSimulation$$|TestSimulationRegressions|TestPlanted' -count=1 -timeout 20m -sim.seeds=2000

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

## rules-check: promtool checks the shipped alert rules (monitoring/alerts.yml),
## runs their unit tests (monitoring/alerts_test.yml) and checks the example
## Prometheus configuration. promtool comes with Debian's prometheus package,
## installed here when it is missing.
PROMTOOL ?= promtool
.PHONY: rules-check promtool
promtool:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

rules-check: promtool
	$(PROMTOOL) check rules monitoring/alerts.yml
	$(PROMTOOL) test rules monitoring/alerts_test.yml
	$(PROMTOOL) check config monitoring/prometheus.yml

## bench-compare: synod, etcd and ZooKeeper through the same workloads on this
## machine, alternating on a fresh cluster each run, in one table (not part of
## test). BENCH_CASES picks the workloads: all (the default: every group once,
## about 15 minutes), or groups (core, reads, sizes, clients, pipeline, tls,
## metrics, files: 64 KiB, 1 MB and 64 MB files beside the disk's own figure,
## about 2 minutes) or
## workload names; BENCH_RUNS runs each that many times for medians (core with
## BENCH_RUNS=3 took 14 minutes). The peers are modules of their own so neither
## etcd nor the ZooKeeper client enters synod's go.mod; ZooKeeper is Debian's
## package (the zookeeper target installs it). redis-benchmark's figures
## against synod's RESP front door follow the table (bench-redis), in the same
## bin/bench-compare/compare.md and alone in redis.md. BENCH_COMPARE_FLAGS
## passes more flags, e.g. -duration 10s, -peers etcd or -direct.
BENCH_CASES ?= all
BENCH_RUNS  ?= 1
BENCH_COMPARE = ./bin/benchcompare -synod $(BIN) -etcd bin/etcdbench -zookeeper bin/zkbench -cases $(BENCH_CASES) -runs $(BENCH_RUNS)
.PHONY: bench-compare bench-compare-full bench-peers
bench-peers: build zookeeper
	cd bench/peers/etcd && $(GO) build -o ../../../bin/etcdbench .
	cd bench/peers/zookeeper && $(GO) build -o ../../../bin/zkbench .
	$(GO) build -o bin/benchcompare ./bench/cmd/benchcompare

bench-compare: bench-peers redis-tools
	$(BENCH_COMPARE) -out bin/bench-compare $(BENCH_COMPARE_FLAGS)
	$(GO) build -o bin/redisbench ./bench/cmd/redisbench
	mkdir -p bin/bench-compare && ./bin/redisbench -synod $(BIN) $(REDIS_BENCH_FLAGS) > bin/bench-compare/redis.md
	printf '\n' >> bin/bench-compare/compare.md && cat bin/bench-compare/redis.md >> bin/bench-compare/compare.md
	@echo; cat bin/bench-compare/redis.md

## bench-compare-full: bench-compare's table alone, without redis-benchmark,
## into bin/bench-compare-full (not part of test).
bench-compare-full: bench-peers
	$(BENCH_COMPARE) -out bin/bench-compare-full $(BENCH_COMPARE_FLAGS)

## bench-redis: Redis's own redis-benchmark (-t set,get -c 64, without and with
## -P 16) against a fresh local cluster through the proxy's RESP front door;
## prints a table (about a minute; not part of test). REDIS_BENCH_FLAGS passes
## more, e.g. -n 200000 or -P 1,4,16.
.PHONY: bench-redis
bench-redis: build redis-tools
	$(GO) build -o bin/redisbench ./bench/cmd/redisbench
	./bin/redisbench -synod $(BIN) $(REDIS_BENCH_FLAGS)

## largefile-e2e: TestLargeFileCp (proxy/largefile_cp_e2e_test.go) with 1 GiB
## files instead of CI's 10 MB, without -race: synod cp up and down, reads
## from each replica alone, a master killed mid-upload, a replica wiped and
## rebuilt from chunks, every process's RSS per phase (not part of test;
## about 2 GiB in TMPDIR and 3 in each of three data directories).
## LARGEFILE_SIZE=n bytes changes the size.
LARGEFILE_SIZE ?= 1073741824
.PHONY: largefile-e2e
largefile-e2e:
	$(GO) test ./proxy -run 'TestLargeFileCp$$' -count=1 -v -timeout 60m -largefile.size=$(LARGEFILE_SIZE)

## nemesis: a Jepsen-style fault run of a real cluster (5 replicas, 2 proxies,
## every peer and proxy link through a fault relay; kills, power cuts, pauses,
## partitions, overlapping faults, skewed clocks, lossy and slow disks, lost
## files, proxy-link cuts, members replaced, added and removed) checked with porcupine, for lost writes, and for
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
# begins with a pause during a partition, a power cut and a replaced
# member, then the two planted bugs (stale follower reads; votes before
# fsync), which the checks must catch.
nemesis-ci:
	$(GO) test ./internal/nemesis -run 'TestNemesis$$|TestPlanted' -count=1 -timeout 15m \
	  -nemesis.duration=45s -nemesis.minops=5000 -nemesis.planted -nemesis.first=pause-in-partition,power-cut,replace-member \
	  -nemesis.out=$(abspath $(NEMESIS_OUT))
