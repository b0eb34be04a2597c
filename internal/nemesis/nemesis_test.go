package nemesis

import (
	"flag"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var (
	flagDuration = flag.Duration("nemesis.duration", 0, "run TestNemesis for this long (0: skip it; make nemesis sets it)")
	flagSeed     = flag.Int64("nemesis.seed", 0, "seed of the run (0: a random one, printed)")
	flagRate     = flag.Float64("nemesis.rate", 0, "operations per second of all clients together (0: the default)")
	flagClients  = flag.Int("nemesis.clients", 0, "concurrent clients (0: the default)")
	flagFaults   = flag.String("nemesis.faults", "all", "comma-separated faults to inject: all, none, or some of "+faultNames())
	flagOut      = flag.String("nemesis.out", "", "directory for a failed run's history, visualisation and logs (default: a new temporary directory)")
	flagMinOps   = flag.Int("nemesis.minops", 0, "fail a run that completed fewer operations")
	flagPlanted  = flag.Bool("nemesis.planted", false, "run the planted-bug tests (TestPlantedFollowerReads, TestPlantedAckBeforeFsync)")
	flagHistory  = flag.String("nemesis.history", "", "TestCheckHistory: re-check this saved history.json")
	flagFirst    = flag.String("nemesis.first", "", "comma-separated faults to inject first, in order, e.g. pause-in-partition")
	flagOrder    = flag.Bool("nemesis.order", false, "fail on per-connection order and session monotonicity violations (the proxy's known bugs, issue 21); off, they are only reported")
	flagPipeline = flag.Int("nemesis.pipelined", -1, "how many of the clients pipeline 8 writes (-1: the default, 4)")
	flagDepth    = flag.Int("nemesis.depth", 0, "writes a pipelined client keeps in flight (0: the default, 8)")
	flagSkew     = flag.Float64("nemesis.skew", -1, "clock rates drawn within 1±skew at every replica start (-1: the default, 0.05; 0: real time)")
	flagSave     = flag.Bool("nemesis.save", false, "save every run's history to -nemesis.out, before it is checked")
	flagLossy    = flag.Bool("nemesis.lossy", true, "replicas' logs lose unsynced writes on kill -9 (--test-lossy-fsync)")
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
	if *flagFirst != "" {
		first, err := ParseFaults(*flagFirst)
		if err != nil {
			t.Fatal(err)
		}
		cfg.FirstFaults = first
	}
	cfg.CheckOrder = *flagOrder
	cfg.SaveHistory = *flagSave
	if *flagPipeline >= 0 {
		cfg.PipelineClients = *flagPipeline
	}
	if *flagDepth > 0 {
		cfg.Pipeline = *flagDepth
	}
	if *flagSkew >= 0 {
		cfg.Lives.ClockSkew = *flagSkew
	}
	if !*flagLossy {
		cfg.NodeFlags = slices.DeleteFunc(cfg.NodeFlags, func(f string) bool { return f == "--test-lossy-fsync" })
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
	// Stale linearizable reads are still prefixes of the log: it is
	// porcupine that must see them.
	if res.Report.Linearizable != porcupine.Illegal {
		t.Errorf("seed %d: the planted stale reads were not caught by the linearizability check (porcupine %s): %s",
			res.Seed, res.Report.Linearizable, res.Summary())
	}
}

// TestPlantedAckBeforeFsync runs the nemesis against replicas started with
// the planted bug that followers vote before their batch is fsynced, with
// logs that lose unsynced writes on kill -9, and kills: power cuts while
// the followers' disks are slower than the master's (the old master
// restarting last), plain power cuts, kills of the master and followers.
// A power cut then loses writes a majority acknowledged, and the checks
// must say so through what the bug breaks: an acknowledged write lost or
// a history that is not linearizable.
func TestPlantedAckBeforeFsync(t *testing.T) {
	if !*flagPlanted {
		t.Skip("runs a cluster for up to a minute: -nemesis.planted (make nemesis-ci runs it)")
	}
	cfg := config(t)
	cfg.Duration = 60 * time.Second
	cfg.CheckEvery = 2 * time.Second
	if !slices.Contains(cfg.NodeFlags, "--test-lossy-fsync") {
		cfg.NodeFlags = append(cfg.NodeFlags, "--test-lossy-fsync")
	}
	cfg.NodeFlags = append(cfg.NodeFlags, "--test-ack-before-fsync")
	cfg.Lives.SlowFsync = 0 // power-cut-lagging slows the followers' disks itself
	cfg.Faults = []FaultKind{PowerCutLagging, PowerCut, KillMaster, KillFollowers}
	cfg.FirstFaults = []FaultKind{PowerCutLagging}
	if cfg.OutDir != "" {
		cfg.OutDir = filepath.Join(cfg.OutDir, "planted-ack") // the violation is expected: keep it apart
	}
	res := Run(t, cfg)
	lost := res.Report.ByKind[VLost]
	if res.Report.Linearizable != porcupine.Illegal && lost == 0 {
		t.Fatalf("seed %d: votes before fsync went unnoticed by the linearizability and lost-write checks over %v: %s",
			res.Seed, res.Elapsed.Round(time.Millisecond), res.Summary())
	}
	t.Logf("seed %d: votes before fsync caught (porcupine %s, %d lost acknowledged writes; online within %v)",
		res.Seed, res.Report.Linearizable, lost, res.DetectedAfter.Round(time.Millisecond))
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
	start := time.Now()
	rep := Check(h, CheckOptions{Timeout: 5 * time.Minute, Order: *flagOrder})
	t.Logf("seed %d: %s (checked in %v)", h.Seed, rep.Summary(), time.Since(start).Round(time.Millisecond))
	if !rep.OK() {
		t.Errorf("porcupine %s on keys %v; violations: %s", rep.Linearizable, rep.BadKeys, strings.Join(rep.Violations, "\n"))
	}
}
