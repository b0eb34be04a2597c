package nemesis

import (
	"flag"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	flagDuration = flag.Duration("nemesis.duration", 0, "run TestNemesis for this long (0: skip it; make nemesis sets it)")
	flagSeed     = flag.Int64("nemesis.seed", 0, "seed of the run (0: a random one, printed)")
	flagRate     = flag.Float64("nemesis.rate", 0, "operations per second of all clients together (0: the default)")
	flagClients  = flag.Int("nemesis.clients", 0, "concurrent clients (0: the default)")
	flagFaults   = flag.String("nemesis.faults", "all", "comma-separated faults to inject: all, none, or some of "+faultNames())
	flagOut      = flag.String("nemesis.out", "", "directory for a failed run's history, visualisation and logs (default: a new temporary directory)")
	flagMinOps   = flag.Int("nemesis.minops", 0, "fail a run that completed fewer operations")
	flagPlanted  = flag.Bool("nemesis.planted", false, "run TestPlantedFollowerReads")
	flagHistory  = flag.String("nemesis.history", "", "TestCheckHistory: re-check this saved history.json")
)

func faultNames() string {
	var names []string
	for _, f := range AllFaults {
		names = append(names, string(f))
	}
	return strings.Join(names, ",")
}

func seed(t *testing.T) int64 {
	if *flagSeed != 0 {
		return *flagSeed
	}
	s := rand.Int63()
	t.Logf("seed %d (rerun with -nemesis.seed=%d)", s, s)
	return s
}

func config(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed(t)
	cfg.OutDir = *flagOut
	if *flagRate > 0 {
		cfg.Rate = *flagRate
	}
	if *flagClients > 0 {
		cfg.Clients = *flagClients
	}
	if *flagFaults == "none" {
		cfg.Faults = nil
	} else {
		faults, err := ParseFaults(*flagFaults)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Faults = faults
	}
	return cfg
}

// TestNemesis is the long fault run: make nemesis DURATION=120s, or the
// shorter one CI runs (make nemesis-ci).
func TestNemesis(t *testing.T) {
	if *flagDuration == 0 {
		t.Skip("a nemesis run takes minutes: make nemesis DURATION=120s (or -nemesis.duration=120s)")
	}
	cfg := config(t)
	cfg.Duration = *flagDuration
	res := Run(t, cfg)
	for _, f := range res.Failures() {
		t.Errorf("seed %d: %s", res.Seed, f)
	}
	if res.Report.Ops < *flagMinOps {
		t.Errorf("seed %d: only %d operations completed, want at least %d", res.Seed, res.Report.Ops, *flagMinOps)
	}
	if t.Failed() {
		t.Errorf("seed %d failed; artifacts in %s; rerun with -nemesis.seed=%d", res.Seed, res.Dir, res.Seed)
	}
}

// TestPlantedFollowerReads runs the nemesis against replicas started with
// the planted bug (followers answer linearizable reads without a read
// index) and expects the checks to catch it within 60 s.
func TestPlantedFollowerReads(t *testing.T) {
	if !*flagPlanted {
		t.Skip("runs a cluster for up to a minute: -nemesis.planted (make nemesis-ci runs it)")
	}
	cfg := config(t)
	cfg.Duration = 60 * time.Second
	cfg.CheckEvery = 2 * time.Second
	cfg.NodeFlags = append(cfg.NodeFlags, "--test-unsafe-follower-reads")
	if cfg.OutDir != "" {
		cfg.OutDir = filepath.Join(cfg.OutDir, "planted") // the violation is expected: keep it apart
	}
	res := Run(t, cfg)
	if res.DetectedAfter == 0 {
		t.Fatalf("seed %d: the planted stale follower reads went unnoticed for %v", res.Seed, res.Elapsed.Round(time.Millisecond))
	}
	t.Logf("seed %d: planted bug caught within %v", res.Seed, res.DetectedAfter.Round(time.Millisecond))
	if res.Report.OK() {
		t.Errorf("seed %d: the online check saw a violation that the full check of the history does not", res.Seed)
	}
}

// TestCheckHistory re-checks a saved history, e.g. one a failed run left.
func TestCheckHistory(t *testing.T) {
	if *flagHistory == "" {
		t.Skip("needs -nemesis.history=path/to/history.json")
	}
	h, err := LoadHistory(*flagHistory)
	if err != nil {
		t.Fatal(err)
	}
	rep := Check(h, 5*time.Minute)
	t.Logf("seed %d: %s", h.Seed, rep.Summary())
	if !rep.OK() {
		t.Errorf("porcupine %s on keys %v; violations: %s", rep.Linearizable, rep.BadKeys, strings.Join(rep.Violations, "\n"))
	}
}
