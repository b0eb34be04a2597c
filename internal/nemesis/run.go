package nemesis

// This file owns a run: its Config and Result, starting the cluster behind
// the relay, the clients and the nemesis, the final reads and the check,
// and the artifacts a failed run leaves. Run runs on the test's goroutine
// and starts one goroutine per client, the nemesis goroutine and, with
// CheckEvery, a checker goroutine; it waits for them all before checking.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"synod/internal/cluster"
	"synod/wire"
	"synod/wire/line"
)

// Config shapes one nemesis run.
type Config struct {
	// Seed drives the workload's and the nemesis's choices. Real processes
	// on a real clock do not replay exactly, but the same seed makes the
	// same choices in the same order.
	Seed int64
	// Duration is how long the clients and the nemesis run.
	Duration time.Duration
	// Replicas and Proxies to start.
	Replicas, Proxies int
	// Clients run concurrently, spread over the proxies.
	Clients int
	// Keys are written every way; LogKeys only appended to; FileKeys
	// hold large files only, written with PUTFILE (with and without
	// VERSION) and read whole with GET RANGE by FileShare of the
	// sequential clients' operations, in files of three chunks of
	// ChunkSize bytes (the proxies' --chunk-size).
	Keys, LogKeys, FileKeys int
	FileShare               float64
	ChunkSize               int
	// Rate is the operations per second all clients aim at together.
	Rate float64
	// Faults the nemesis draws from; none means a run without faults.
	Faults []FaultKind
	// FirstFaults are injected first, in this order, before the draw from
	// Faults begins (a short run is then sure to see them).
	FirstFaults []FaultKind
	Timing      Timing
	// Lives shapes every start of a replica: its clock rate, its disk.
	Lives Lives
	// ProxyRelay routes the proxies' connections to the replicas through
	// the relay too, so the proxy faults can cut and slow them.
	ProxyRelay bool
	// PipelineClients of the Clients are pipelined: each keeps Pipeline
	// writes in flight on its connection (0: 8).
	PipelineClients, Pipeline int
	// SaveHistory writes the history to OutDir/seed-N before it is
	// checked, even if the run passes.
	SaveHistory bool
	// CheckOrder makes the per-connection order and session monotonicity
	// checks fail a run (the proxy's known bugs, issue 21); without it
	// their findings are reported as known.
	CheckOrder bool
	// NodeFlags and ProxyFlags are passed to every replica and proxy.
	NodeFlags, ProxyFlags []string
	// ProxyHolds are the proxies' hold windows, one each (a missing one
	// takes the proxy's default). A short one makes writes end refused or
	// with an unknown outcome while a fault lasts, so those paths are
	// checked too.
	ProxyHolds []time.Duration
	// Hot is the share of operations on HotKeys hot keys.
	Hot     float64
	HotKeys int
	// OpTimeout bounds one client operation (above the proxies' hold).
	OpTimeout time.Duration
	// CheckTimeout bounds porcupine; running out of time fails the run.
	CheckTimeout time.Duration
	// CheckEvery, if positive, checks the history so far this often while
	// the run goes on, and ends the run at the first violation found.
	CheckEvery time.Duration
	// OutDir receives a failed run's history, visualisation and logs, in
	// a subdirectory named after the seed ("": a new temporary directory).
	OutDir string
	// Watchers watch keys and prefixes through the proxies for the whole
	// run, half from index 1 and half from when they start, resuming
	// after every broken connection (watch.go); afterwards each must have
	// seen exactly the changes of its keys.
	Watchers int
}

// DefaultConfig is a run of every fault against 5 replicas and 2 proxies
// with fast timings (heartbeat 20 ms, election timeout 200 ms), small
// snapshots so a wiped replica gets one, logs that lose unsynced writes on
// kill -9, clocks drawn within ±5% of real time at every start and half
// the starts with a slow fsync (1–20 ms), proxies reaching the replicas
// through the relay and holding requests for 5 s and 1 s, and 16 clients
// (4 of them pipelining 8 writes) at 500 ops/s over 50 keys and 10
// append-only keys, 30% of them on 4 hot keys, and 5% of the sequential
// clients' operations on 4 keys of large files in 4 KiB chunks (the
// smallest chunk the proxy takes, so every file is three chunks and a run
// stays quick).
func DefaultConfig() Config {
	return Config{
		Duration: 30 * time.Second,
		Replicas: 5, Proxies: 2,
		Clients: 16, Keys: 50, LogKeys: 10,
		FileKeys: 4, FileShare: 0.05, ChunkSize: wire.MinChunkSize,
		Rate:   500,
		Faults: AllFaults,
		Timing: Timing{
			HoldMin: 600 * time.Millisecond, HoldMax: 2 * time.Second,
			GapMin: 500 * time.Millisecond, GapMax: 1500 * time.Millisecond,
			PauseMin: 700 * time.Millisecond,
			Settle:   10 * time.Second,
		},
		Lives: Lives{ClockSkew: 0.05, SlowFsync: 0.5, FsyncMin: time.Millisecond, FsyncMax: 20 * time.Millisecond},
		NodeFlags: []string{"--heartbeat=20ms", "--election-timeout=200ms",
			"--snapshot-every=3000", "--snapshot-window=1000", "--snapshot-chunk=65536", "--segment-bytes=262144",
			"--test-lossy-fsync"},
		ProxyRelay:      true,
		PipelineClients: 4, Pipeline: 8,
		ProxyFlags: []string{"--poll=50ms"},
		ProxyHolds: []time.Duration{5 * time.Second, time.Second},
		Hot:        0.3, HotKeys: 4,
		OpTimeout:    8 * time.Second,
		CheckTimeout: 5 * time.Minute,
		Watchers:     6,
	}
}

// Result is what a run did and what the checks found.
type Result struct {
	Seed    int64
	Elapsed time.Duration // how long the clients ran
	Report  Report
	// Faults counts the faults injected by kind: every single fault, also
	// those inside a combined one, and every combined one. Details counts
	// shapes worth telling apart (which file a replica lost).
	Faults  map[FaultKind]int
	Details map[string]int
	// Skipped counts faults the nemesis did not admit (they would have
	// left no connected majority) and did not replace.
	Skipped int
	// Kills counts SIGKILLs of replicas (each loses its unsynced log
	// writes when they run with --test-lossy-fsync).
	Kills int
	// PortClashes counts restarts of a replica that found its port taken
	// by another socket meanwhile, and were tried again.
	PortClashes int
	// Lives lists every start of a replica: clock rate, fsync delay.
	Lives []Life
	// Unsettled counts the times the cluster was not healthy again within
	// Timing.Settle after a fault (not a failure by itself).
	Unsettled int
	// Exited describes replicas that exited without being told to.
	Exited []string
	// Unnoticed describes replicas that lost a file they cannot do without
	// and came back voting (they must rejoin as learners).
	Unnoticed []string
	// MemberErrs describes membership changes that did not go as synod
	// promises: not done within their bound, a removed replica that did
	// not exit or ran again, a learner not promoted once caught up.
	MemberErrs []string
	// Members are the replicas at the end, Gone those removed on the way.
	Members, Gone []uint64
	// FilesChecked counts the (file, replica) pairs checkReplicaFiles
	// read straight from the replicas after the run; FileErrs describes
	// those that did not serve the file byte for byte.
	FilesChecked int
	FileErrs     []string
	// ConvergeErr is set if the replicas did not reach one digest after
	// the run healed.
	ConvergeErr error
	// FinalErr is set if the keys could not all be read after the run.
	FinalErr error
	// DetectedAfter is, with Config.CheckEvery, how long into the run the
	// first violation was found (0: none).
	DetectedAfter time.Duration
	// Seen counts what the replicas' logs say happened (logMarkers): the
	// evidence that the faults reached the code they are meant to reach.
	Seen map[string]int
	// Dir holds the artifacts of a failed run ("" if none were written).
	Dir     string
	History History
	// Watchers are what the watchers saw.
	Watchers []*WatcherLog
}

// OpsPerSec is the rate of operations the clients completed.
func (r *Result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Report.Ops) / r.Elapsed.Seconds()
}

// Failures lists why the run failed, empty if it passed.
func (r *Result) Failures() []string {
	var out []string
	if r.Report.Linearizable != porcupine.Ok {
		out = append(out, fmt.Sprintf("linearizability: porcupine says %s for keys %v", r.Report.Linearizable, r.Report.BadKeys))
	}
	if r.Report.ViolationCount > 0 {
		out = append(out, fmt.Sprintf("%d violations, first: %s", r.Report.ViolationCount, strings.Join(r.Report.Violations, "\n  ")))
	}
	out = append(out, r.Exited...)
	out = append(out, r.Unnoticed...)
	out = append(out, r.MemberErrs...)
	out = append(out, r.FileErrs...)
	if r.ConvergeErr != nil {
		out = append(out, r.ConvergeErr.Error())
	}
	if r.FinalErr != nil {
		out = append(out, r.FinalErr.Error())
	}
	return out
}

// Summary is a short account of the run.
func (r *Result) Summary() string {
	kinds := make([]string, 0, len(r.Faults))
	for k, n := range r.Faults {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(kinds)
	var details []string
	for k, n := range r.Details {
		details = append(details, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(details)
	var seen []string
	for _, m := range logMarkers {
		seen = append(seen, fmt.Sprintf("%s×%d", m.name, r.Seen[m.name]))
	}
	var events, resumes, compacted int
	for _, w := range r.Watchers {
		for _, seg := range w.Segments {
			events += len(seg.Events)
		}
		resumes += w.Resumes
		compacted += w.Compacted
	}
	return fmt.Sprintf("seed %d: %v, %.0f ops/s; %s; faults: %s (%s); %d skipped, %d kill -9, %d port clashes, unsettled %d; members at the end %v, removed %v; %s; %d watchers saw %d events, resumed %d times (%d refused COMPACTED), %d reads held against their replay; %d final files read back from the replicas, %d wrong; replicas logged: %s",
		r.Seed, r.Elapsed.Round(time.Millisecond), r.OpsPerSec(), r.Report.Summary(), strings.Join(kinds, " "), strings.Join(details, " "),
		r.Skipped, r.Kills, r.PortClashes, r.Unsettled, r.Members, r.Gone, summarizeLives(r.Lives), len(r.Watchers), events, resumes, compacted, r.Report.WatchReads,
		r.FilesChecked, len(r.FileErrs), strings.Join(seen, " "))
}

// Run starts a cluster whose peer links go through a fault relay, runs the
// clients and the nemesis for cfg.Duration, heals everything, reads every
// key, waits for the replicas to converge and checks the history. A failed
// run's artifacts are written under cfg.OutDir and named in the log.
func Run(t testing.TB, cfg Config) *Result {
	t.Helper()
	res := &Result{Seed: cfg.Seed}
	rec := NewRecorder()
	t.Logf("nemesis: seed %d, %v, %d clients at %.0f ops/s, faults %v", cfg.Seed, cfg.Duration, cfg.Clients, cfg.Rate, cfg.Faults)

	relay := NewRelay()
	t.Cleanup(func() { relay.Close() }) // after the cluster's teardown (cleanups run last first)
	via := func(l Link, addr string) string {
		a, err := relay.Add(l, addr)
		if err != nil {
			t.Fatalf("nemesis: %v", err)
		}
		return a
	}
	lv := newLives(cfg.Lives, cfg.Seed^0x5eed)
	c := cluster.New(t, cluster.Options{Nodes: cfg.Replicas, NodeFlags: cfg.NodeFlags,
		// Every replica is named at its member listener, in every
		// --peers list and so in the configuration: peers reach each
		// other over a link per direction, told apart by their hellos.
		MemberAddr: func(id uint64, addr string) string {
			a, err := relay.AddMember(id, addr)
			if err != nil {
				t.Fatalf("nemesis: %v", err)
			}
			return a
		},
		NodeFlagsFor: func(id uint64) []string {
			l := lv.draw(id, 0, -1)
			t.Logf("nemesis: %s", l)
			return l.Flags()
		}})
	for _, l := range lv.list() {
		rec.Note(l.String())
	}
	var proxies []string
	for i := 0; i < cfg.Proxies; i++ {
		flags := append([]string(nil), cfg.ProxyFlags...)
		if cfg.FileKeys > 0 && cfg.ChunkSize > 0 {
			flags = append(flags, fmt.Sprintf("--chunk-size=%d", cfg.ChunkSize))
		}
		if i < len(cfg.ProxyHolds) {
			flags = append(flags, fmt.Sprintf("--hold=%v", cfg.ProxyHolds[i]))
		}
		var viaProxy func(uint64, string) string
		if cfg.ProxyRelay {
			viaProxy = func(to uint64, addr string) string { return via(ProxyLink(i, to), addr) }
		}
		proxies = append(proxies, c.StartProxyVia(t, viaProxy, flags...).Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if _, err := c.WaitMaster(ctx); err != nil {
		cancel()
		t.Fatalf("nemesis: %v", err)
	}
	cancel()

	w := workload{Rate: cfg.Rate / float64(cfg.Clients), Timeout: cfg.OpTimeout, Hot: cfg.Hot, HotKeys: cfg.HotKeys, Pipeline: cfg.Pipeline}
	for i := 0; i < cfg.Keys; i++ {
		w.Keys = append(w.Keys, fmt.Sprintf("k/%02d", i))
	}
	for i := 0; i < cfg.LogKeys; i++ {
		w.LogKeys = append(w.LogKeys, fmt.Sprintf("log/%02d", i))
	}
	chunk := cfg.ChunkSize
	if chunk <= 0 {
		chunk = wire.DefaultChunkSize
	}
	w.Files, w.FileShare = newFileRegistry(chunk), cfg.FileShare
	for i := 0; i < cfg.FileKeys; i++ {
		w.FileKeys = append(w.FileKeys, fmt.Sprintf("%s%02d", FilePrefix, i))
	}
	proxyLinks := 0
	if cfg.ProxyRelay {
		proxyLinks = cfg.Proxies
	} else {
		cfg.Faults = withoutProxyFaults(cfg.Faults)
		cfg.FirstFaults = withoutProxyFaults(cfg.FirstFaults)
	}
	nem := newNemesis(c, relay, rec, lv, cfg, proxyLinks, t.Logf)
	nem.proxyAddrs = proxies

	watchCtx, stopWatchers := context.WithCancel(context.Background())
	defer stopWatchers()
	var watchWG sync.WaitGroup
	for i := range cfg.Watchers {
		p := watchPatterns[i%len(watchPatterns)]
		wl := &WatcherLog{Name: fmt.Sprintf("watcher %d", i), Key: p.key, Prefix: p.prefix}
		res.Watchers = append(res.Watchers, wl)
		watchWG.Add(1)
		go func() {
			defer watchWG.Done()
			runWatcher(watchCtx, proxies, i, wl, i%2 == 0, cfg.Seed)
		}()
	}

	runCtx, stop := context.WithTimeout(context.Background(), cfg.Duration)
	defer stop()
	began := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Clients; i++ {
		cl := newClient(i, proxies, w, rec, cfg.Seed*1000003+int64(i), i < cfg.PipelineClients)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.run(runCtx)
		}()
	}
	var nemWG sync.WaitGroup
	nemWG.Add(1)
	go func() {
		defer nemWG.Done()
		nem.run(runCtx)
	}()
	if cfg.CheckEvery > 0 {
		nemWG.Add(1)
		go func() {
			defer nemWG.Done()
			for sleep(runCtx, cfg.CheckEvery) {
				at := time.Since(began)
				h := rec.History(cfg.Seed)
				// A short bound: a search that runs out of time finds
				// nothing yet, and the next round looks again.
				verdict, _ := CheckLinearizable(h.Ops, min(cfg.CheckTimeout, 10*time.Second))
				rep := Report{order: cfg.CheckOrder}
				checkReads(&rep, h.Ops)
				checkConnections(&rep, h.Ops)
				if verdict == porcupine.Illegal || rep.ViolationCount > 0 {
					res.DetectedAfter = at
					t.Logf("nemesis: violation found in the first %v (porcupine %s, %d other)", at.Round(time.Millisecond), verdict, rep.ViolationCount)
					stop()
					return
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(began)
	stop()
	nemWG.Wait()

	finalCtx, cancelFinal := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelFinal()
	res.FinalErr = finalReads(finalCtx, proxies[0], append(append(append([]string(nil), w.Keys...), w.LogKeys...), w.FileKeys...), cfg.Clients, rec, w.Files)
	h := rec.History(cfg.Seed)
	var maxIndex uint64
	for _, op := range h.Ops {
		if op.Kind.IsWrite() && op.Outcome == OK {
			maxIndex = max(maxIndex, op.Index)
		}
	}
	convCtx, cancelConv := finalCtx, func() {}
	if res.DetectedAfter > 0 {
		// A run stopped at a violation may well not converge: do not wait
		// the full two minutes to be told.
		convCtx, cancelConv = context.WithTimeout(finalCtx, 15*time.Second)
	}
	defer cancelConv()
	if _, err := c.WaitConverged(convCtx, maxIndex); err != nil {
		res.ConvergeErr = fmt.Errorf("replicas did not converge after healing: %w", err)
	}
	watchErr := waitWatchers(convCtx, res.Watchers, maxIndex)
	stopWatchers()
	watchWG.Wait()
	if watchErr != nil {
		t.Logf("nemesis: %v", watchErr)
	}
	nem.checkAlive()
	for _, id := range nem.ids() {
		nem.stillLearning(id) // a replica that lost state at the very end came back as it must
	}
	if res.ConvergeErr == nil {
		// A bound of its own: waiting for the watchers may have used
		// finalCtx up.
		fileCtx, cancelFiles := context.WithTimeout(context.Background(), 2*time.Minute)
		res.FilesChecked, res.FileErrs = checkReplicaFiles(fileCtx, c.Dial, nem.ids(), rec.History(cfg.Seed).Ops, w.Files)
		cancelFiles()
	}

	nem.mu.Lock()
	res.Faults, res.Unsettled, res.Exited = nem.counts, nem.unsettled, nem.exited
	res.Details, res.Skipped, res.Kills, res.PortClashes = nem.details, nem.skipped, nem.kills, nem.clashes
	res.Unnoticed, res.MemberErrs = nem.unnoticed, nem.memberErrs
	for id := range nem.gone {
		res.Gone = append(res.Gone, id)
	}
	sort.Slice(res.Gone, func(i, j int) bool { return res.Gone[i] < res.Gone[j] })
	res.Members = nem.ids()
	nem.mu.Unlock()
	res.Lives = lv.list()
	res.History = h
	res.Seen = countMarkers(c, nem.gone)
	if cfg.SaveHistory && cfg.OutDir != "" {
		dir := filepath.Join(cfg.OutDir, fmt.Sprintf("seed-%d", res.Seed))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			h.Save(filepath.Join(dir, "history.json"))
		}
	}
	res.Report = Check(h, CheckOptions{Timeout: cfg.CheckTimeout, Order: cfg.CheckOrder})
	checkWatchers(&res.Report, h.Ops, res.Watchers, maxIndex)
	t.Logf("nemesis: %s", res.Summary())
	if len(res.Failures()) > 0 {
		res.Dir = saveArtifacts(t, cfg, c, res)
	}
	return res
}

// logMarkers are log lines of the replicas worth counting, each found by
// all of its substrings.
var logMarkers = []struct {
	name string
	subs []string
}{
	{"elected", []string{`"role changed"`, `"role":"master"`}},
	{"handover", []string{`"handing mastership over"`}},
	{"learner", []string{`rejoining as a learner`}},
	{"state-missing", []string{`durable state is missing`}},
	{"votes", []string{`"this replica votes"`}},
	{"snapshot-installed", []string{`"installed a snapshot from a peer"`}},
	{"torn-tail-cut", []string{`"cut an unacknowledged torn batch off the log"`}},
	{"config-in-force", []string{`"configuration in force"`}},
	{"promoted", []string{`"promoted a learner that caught up"`}},
	{"removed-exit", []string{`"this replica was removed from the cluster`}},
}

// withoutProxyFaults drops the faults on proxy links from kinds.
func withoutProxyFaults(kinds []FaultKind) []FaultKind {
	var out []FaultKind
	for _, k := range kinds {
		if !proxyFaults[k] {
			out = append(out, k)
		}
	}
	return out
}

// countMarkers counts logMarkers in the logs of the replicas, those in
// the cluster and those removed from it.
func countMarkers(c *cluster.Cluster, gone map[uint64]*cluster.Proc) map[string]int {
	seen := map[string]int{}
	procs := make([]*cluster.Proc, 0, len(c.Nodes)+len(gone))
	for _, p := range c.Nodes {
		procs = append(procs, p)
	}
	for _, p := range gone {
		procs = append(procs, p)
	}
	for _, p := range procs {
		for _, l := range strings.Split(p.Output(), "\n") {
			for _, m := range logMarkers {
				all := true
				for _, sub := range m.subs {
					all = all && strings.Contains(l, sub)
				}
				if all {
					seen[m.name]++
				}
			}
		}
	}
	return seen
}

// finalReads reads every key linearizably after the run, retrying until it
// gets an answer (a file key whole, with GET RANGE: files.go); the reads
// join the history as Final operations.
func finalReads(ctx context.Context, proxy string, keys []string, clientID int, rec *Recorder, files *fileRegistry) error {
	var conn *line.Client
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for _, key := range keys {
		for {
			if ctx.Err() != nil {
				return fmt.Errorf("final read of %s: %w", key, ctx.Err())
			}
			if conn == nil {
				var err error
				if conn, err = line.Dial(ctx, proxy, line.Options{}); err != nil {
					conn = nil
					time.Sleep(100 * time.Millisecond)
					continue
				}
			}
			op := rec.Begin(Op{Client: clientID, Kind: KindGet, Level: line.LevelLinearizable, Key: key, Final: true, File: isFileKey(key)})
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			val, ver, err := getValue(octx, conn, rec, files, op, 0)
			cancel()
			switch {
			case err == nil:
				rec.End(op, OK, ver, string(val), nil)
			case errors.Is(err, line.ErrNotFound):
				rec.End(op, NotFound, 0, "", nil)
			default:
				rec.End(op, Failed, 0, "", err)
				var se *line.ServerError
				if !errors.As(err, &se) {
					conn.Close()
					conn = nil
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			break
		}
	}
	return nil
}

// saveArtifacts writes the history, the visualisation of the keys at fault
// and every process's log, and returns the directory.
func saveArtifacts(t testing.TB, cfg Config, c *cluster.Cluster, res *Result) string {
	base := cfg.OutDir
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "synod-nemesis-"); err != nil {
			t.Logf("nemesis: no directory for the artifacts: %v", err)
			return ""
		}
	}
	dir := filepath.Join(base, fmt.Sprintf("seed-%d", res.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("nemesis: no directory for the artifacts: %v", err)
		return ""
	}
	if err := res.History.Save(filepath.Join(dir, "history.json")); err != nil {
		t.Logf("%v", err)
	}
	if len(res.Report.BadKeys) > 0 {
		if err := Visualize(res.History, res.Report.BadKeys, cfg.CheckTimeout, filepath.Join(dir, "linearizability.html")); err != nil {
			t.Logf("%v", err)
		}
	}
	report := fmt.Sprintf("%s\n\n%s\n", res.Summary(), strings.Join(res.Failures(), "\n\n"))
	os.WriteFile(filepath.Join(dir, "report.txt"), []byte(report), 0o644)
	logs, _ := filepath.Glob(filepath.Join(c.Dir, "*.log"))
	for _, l := range logs {
		copyFile(l, filepath.Join(dir, filepath.Base(l)))
	}
	t.Logf("nemesis: seed %d failed; history, visualisation and logs in %s", res.Seed, dir)
	return dir
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
