package bench

// This file owns a run: Run connects the clients, preloads the keys and
// starts one goroutine per client (client.loop, or client.pipelined when
// each keeps several operations in flight; their outcomes come back to
// that goroutine over a channel), which share the timeline under
// runState.mu; Run's own goroutine then coordinates (CPU readings, the
// master kill, progress) until the window ends, waits for the clients and
// sums their figures.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"synod/bench/cpu"
	"synod/bench/zipf"
)

// TimelineStep is the width of one timeline bucket.
const TimelineStep = 100 * time.Millisecond

// connectParallel bounds how many clients dial at once, so 64 clients do not
// hit a server's accept queue in one burst.
const connectParallel = 16

// Options say what to run a workload against.
type Options struct {
	Target Target
	// Cluster, if not nil, is a cluster the bench started: its servers'
	// CPU time is measured and the master kill inflicted on it.
	Cluster Cluster
	// System and Via name the system and the path to it in the report.
	System string
	Via    string
	// Progress, if not nil, is called about every 100 ms from one
	// goroutine while the run goes on.
	Progress func(Progress)
}

// Progress is a run's state for a progress display.
type Progress struct {
	Phase   string        // "connect", "preload", "warmup", "measure"
	Elapsed time.Duration // into the phase
	Total   time.Duration // the phase's length; 0 if unknown
	Ops     int64         // operations completed in the measured window so far
}

// Run connects the workload's clients to opts.Target, preloads every key when
// the workload reads, runs the clients closed-loop through the warm-up and
// the measured window, and returns the figures of the measured window.
// Operations count by the time they complete: those of the warm-up, and those
// cut off at the window's end, are left out.
func Run(ctx context.Context, w Workload, opts Options) (*Result, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if w.KillMasterAt > 0 && opts.Cluster == nil {
		return nil, ErrNoCluster
	}
	if opts.Target == nil {
		return nil, errors.New("bench: no target")
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(Progress) {}
	}
	keys := KeyNames(w.Keys)
	value := Value(w.ValueSize, w.Seed)
	var zg *zipf.Generator
	if w.Dist == DistZipf {
		var err error
		if zg, err = zipf.New(rand.New(rand.NewPCG(w.Seed, 0)), uint64(w.Keys), w.Theta); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrWorkload, err)
		}
	}

	progress(Progress{Phase: "connect"})
	conns, err := connectAll(ctx, opts.Target, w)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if w.Pipeline > 1 {
		for _, c := range conns {
			if _, ok := c.(AsyncConn); !ok {
				return nil, fmt.Errorf("%w: pipeline %d: %s's connections keep one operation in flight", ErrWorkload, w.Pipeline, opts.System)
			}
		}
	}
	clients := make([]*client, len(conns))
	var file []byte
	if w.FileSize > 0 {
		file = Value(int(w.FileSize), w.Seed)
	}
	for i, conn := range conns {
		rng := rand.New(rand.NewPCG(w.Seed, uint64(i)+1))
		c := &client{id: uint64(i), conn: conn, rng: rng, keys: keys, value: value, w: w,
			reads: newHist(histSigFigs), writes: newHist(histSigFigs), errs: map[string]int64{}}
		if file != nil {
			c.file = append([]byte(nil), file...)
		}
		if zg != nil {
			c.zipf = zg.Clone(rng)
		}
		clients[i] = c
	}
	if w.Reads > 0 {
		progress(Progress{Phase: "preload"})
		if err := preload(ctx, clients, keys, w.OpTimeout); err != nil {
			return nil, err
		}
	}

	ws, err := startWatchers(ctx, opts.Target, w)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	r := newRunState(w, start.Add(w.Warmup))
	if ws != nil {
		ws.measure(r.t0)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, c := range clients {
		c.run = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ac, ok := c.conn.(AsyncConn); ok && w.Pipeline > 1 {
				c.pipelined(runCtx, ac)
				return
			}
			c.loop(runCtx)
		}()
	}

	res := &Result{System: opts.System, Via: opts.Via, Workload: w, Started: r.t0,
		Seconds: w.Duration.Seconds(), Machine: ThisMachine()}
	runErr := r.coordinate(ctx, opts, progress, res)
	stop()
	wg.Wait()
	if ws != nil {
		ws.stop(context.WithoutCancel(ctx), w, res)
	}
	if runErr != nil {
		return nil, runErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: interrupted: %w", err)
	}
	r.finish(res, clients)
	return res, nil
}

func connectAll(ctx context.Context, t Target, w Workload) ([]Conn, error) {
	conns := make([]Conn, w.Clients)
	errs := make([]error, w.Clients)
	sem := make(chan struct{}, connectParallel)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, w.OpTimeout+5*time.Second)
			defer cancel()
			conns[i], errs[i] = t.Connect(cctx, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, fmt.Errorf("bench: connect: %w", err)
	}
	return conns, nil
}

// preload writes every key once, the keys shared out over the clients, so
// that reads find values (or files) of the workload's size.
func preload(ctx context.Context, clients []*client, keys []string, timeout time.Duration) error {
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; k < len(keys); k += len(clients) {
				var err error
				for try := 0; try < 3; try++ { // a transient error is not a reason to give up
					octx, cancel := context.WithTimeout(ctx, timeout)
					err = c.put(octx, keys[k])
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
				}
				if err != nil {
					errs[i] = fmt.Errorf("bench: preload %s: %w", keys[k], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runState is what the clients share during a run.
type runState struct {
	w    Workload
	t0   time.Time // start of the measured window
	end  time.Time
	step time.Duration

	mu      sync.Mutex // guards buckets' contents
	buckets []bucket

	ops atomic.Int64 // measured operations so far, for progress

	// Writes: the latest successful completion (ns into the window; the
	// window's start counts as one) and the longest gap between two.
	lastWrite atomic.Int64
	gapMu     sync.Mutex
	maxGap    int64
	gapStart  int64

	// The kill, ns into the window: when SIGKILL was sent, and when the
	// process was known dead, after which a write cannot reach it. 0 before.
	killAt         atomic.Int64
	killDone       atomic.Int64
	firstAfterKill atomic.Int64 // completion of the first write issued after the kill; 0: none yet
	errsAfterKill  atomic.Int64
}

type bucket struct {
	ops, writes, reads, errs int64
	lat                      *hdrhistogram.Histogram
}

func newRunState(w Workload, t0 time.Time) *runState {
	n := int((w.Duration + TimelineStep - 1) / TimelineStep)
	return &runState{w: w, t0: t0, end: t0.Add(w.Duration), step: TimelineStep, buckets: make([]bucket, n)}
}

// record notes one operation that started at begin and completed at done,
// both inside the window.
func (r *runState) record(write bool, begin, done time.Time, err error) {
	at := done.Sub(r.t0)
	idx := min(int(at/r.step), len(r.buckets)-1)
	r.mu.Lock()
	b := &r.buckets[idx]
	if err != nil {
		b.errs++
	} else {
		b.ops++
		if write {
			b.writes++
		} else {
			b.reads++
		}
		if b.lat == nil {
			b.lat = newHist(timelineSigFigs)
		}
		recordLatency(b.lat, done.Sub(begin))
	}
	r.mu.Unlock()
	r.ops.Add(1)
	kill := r.killAt.Load()
	if err != nil {
		if kill > 0 && int64(at) >= kill {
			r.errsAfterKill.Add(1)
		}
		return
	}
	if !write {
		return
	}
	r.noteWrite(int64(at))
	if dead := r.killDone.Load(); dead > 0 && int64(begin.Sub(r.t0)) >= dead {
		for {
			first := r.firstAfterKill.Load()
			if first != 0 && first <= int64(at) || r.firstAfterKill.CompareAndSwap(first, int64(at)) {
				break
			}
		}
	}
}

// noteWrite advances the latest successful write to at and keeps the longest
// gap between consecutive ones.
func (r *runState) noteWrite(at int64) {
	for {
		prev := r.lastWrite.Load()
		if at <= prev {
			return // a later completion was noted first; its gap covers this one
		}
		if r.lastWrite.CompareAndSwap(prev, at) {
			r.noteGap(prev, at)
			return
		}
	}
}

func (r *runState) noteGap(from, to int64) {
	r.gapMu.Lock()
	if to-from > r.maxGap {
		r.maxGap, r.gapStart = to-from, from
	}
	r.gapMu.Unlock()
}

// client is one closed-loop client.
type client struct {
	id    uint64
	conn  Conn
	rng   *rand.Rand
	zipf  *zipf.Generator
	keys  []string
	value []byte
	// file is the client's own file in file mode (nil otherwise),
	// stamped afresh for each write: fileSeq counts them.
	file    []byte
	fileSeq uint64
	w       Workload
	run     *runState

	// Measured-window figures, owned by the client's goroutine until the
	// run ends.
	reads, writes       *hdrhistogram.Histogram
	readErrs, writeErrs int64
	errs                map[string]int64
}

func (c *client) key() string {
	if c.zipf != nil {
		return c.keys[c.zipf.Next()]
	}
	return c.keys[c.rng.IntN(len(c.keys))]
}

func (c *client) loop(ctx context.Context) {
	for ctx.Err() == nil {
		write := c.rng.Float64() >= c.w.Reads
		key := c.key()
		octx, cancel := context.WithTimeout(ctx, c.w.OpTimeout)
		begin := time.Now()
		var err error
		if write {
			err = c.put(octx, key)
		} else {
			err = c.get(octx, key)
		}
		done := time.Now()
		cancel()
		if !c.note(ctx, outcome{write: write, begin: begin, done: done, err: err}) {
			return
		}
	}
}

// put writes key: the workload's value or, in file mode, the client's file
// stamped afresh, through a FileConn's PutFile if the Conn is one.
func (c *client) put(ctx context.Context, key string) error {
	if c.file == nil {
		return c.conn.Put(ctx, key, c.value)
	}
	c.fileSeq++
	StampFile(c.file, c.id, c.fileSeq)
	if fc, ok := c.conn.(FileConn); ok {
		return fc.PutFile(ctx, key, c.file)
	}
	return c.conn.Put(ctx, key, c.file)
}

// get reads key, a whole file in file mode.
func (c *client) get(ctx context.Context, key string) error {
	if fc, ok := c.conn.(FileConn); ok && c.file != nil {
		return fc.GetFile(ctx, key, int64(len(c.file)))
	}
	return c.conn.Get(ctx, key)
}

// outcome is one finished operation.
type outcome struct {
	write       bool
	begin, done time.Time
	err         error
}

// pipelined is loop for a client that keeps w.Pipeline operations in
// flight on its connection: it starts operations until that many are
// outstanding, then one more for each that finishes. Outcomes come back
// over a channel with room for all of them, so a callback never blocks,
// even after the client has stopped listening at the window's end.
func (c *client) pipelined(ctx context.Context, ac AsyncConn) {
	results := make(chan outcome, c.w.Pipeline)
	inflight := 0
	for {
		for inflight < c.w.Pipeline && ctx.Err() == nil {
			op := Op{Write: c.rng.Float64() >= c.w.Reads, Key: c.key()}
			if op.Write {
				op.Value = c.value
			}
			octx, cancel := context.WithTimeout(ctx, c.w.OpTimeout)
			begin := time.Now()
			ac.Start(octx, op, func(err error) {
				cancel()
				results <- outcome{write: op.Write, begin: begin, done: time.Now(), err: err}
			})
			inflight++
		}
		select {
		case o := <-results:
			inflight--
			if !c.note(ctx, o) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// note records o unless it completed in the warm-up, and reports whether
// the client goes on: false once an operation completed after the window.
func (c *client) note(ctx context.Context, o outcome) bool {
	r := c.run
	if o.done.Before(r.t0) {
		return true // warm-up
	}
	if !o.done.Before(r.end) || ctx.Err() != nil {
		return false // cut off by the window's end
	}
	r.record(o.write, o.begin, o.done, o.err)
	switch {
	case o.err != nil && o.write:
		c.writeErrs++
	case o.err != nil:
		c.readErrs++
	case o.write:
		recordLatency(c.writes, o.done.Sub(o.begin))
	default:
		recordLatency(c.reads, o.done.Sub(o.begin))
	}
	if o.err != nil {
		c.errs[errorKind(o.err)]++
	}
	return true
}

// cpuSampler keeps the latest readable CPU time of each server process, so a
// process killed during the run still counts what it spent before.
type cpuSampler struct {
	first, last map[int]time.Duration
}

func (s *cpuSampler) sample(procs []Proc) {
	if s.first == nil {
		s.first, s.last = map[int]time.Duration{}, map[int]time.Duration{}
	}
	for _, p := range procs {
		d, err := cpu.Process(p.PID)
		if err != nil {
			continue // gone: keep its last reading
		}
		if _, ok := s.first[p.PID]; !ok {
			s.first[p.PID] = d
		}
		s.last[p.PID] = d
	}
}

// coordinate runs the clock of a run: CPU readings at the window's start and
// end, the kill, and progress reports. It returns when the window ends, or
// with an error if the kill failed.
func (r *runState) coordinate(ctx context.Context, opts Options, progress func(Progress), res *Result) error {
	var procs []Proc
	if opts.Cluster != nil {
		procs = opts.Cluster.Procs()
	}
	var servers cpuSampler
	var self0 time.Duration
	var mach0 cpu.Machine
	measuring := false
	killed := r.w.KillMasterAt <= 0
	timer := time.NewTimer(time.Hour) // Reset below; Go 1.23 timers need no draining
	defer timer.Stop()
	for {
		now := time.Now()
		if !measuring && !now.Before(r.t0) {
			measuring = true
			servers.sample(procs)
			self0, _ = cpu.Self()
			mach0, _ = cpu.ReadMachine()
			if p, ok := opts.Cluster.(Profiler); ok {
				if err := p.StartProfiles(); err != nil {
					return fmt.Errorf("bench: start profiles: %w", err)
				}
			}
		}
		if measuring && !killed && now.Sub(r.t0) >= r.w.KillMasterAt {
			killed = true
			servers.sample(procs)
			at := time.Since(r.t0)
			r.killAt.Store(int64(at))
			p, err := opts.Cluster.KillMaster(ctx)
			if err != nil {
				return fmt.Errorf("bench: kill master: %w", err)
			}
			r.killDone.Store(max(int64(time.Since(r.t0)), 1))
			res.Failover = &Failover{Killed: p.Name, KillAt: at.Seconds()}
			res.Events = append(res.Events, Event{T: at.Seconds(), What: "SIGKILL " + p.Name})
		}
		if !now.Before(r.end) {
			servers.sample(procs)
			self1, _ := cpu.Self()
			mach1, _ := cpu.ReadMachine()
			for _, p := range procs {
				d := (servers.last[p.PID] - servers.first[p.PID]).Seconds()
				res.CPU.Procs = append(res.CPU.Procs, ProcCPU{Name: p.Name, Seconds: d})
				res.CPU.ServerSeconds += d
			}
			res.CPU.LoadgenSeconds = (self1 - self0).Seconds()
			res.CPU.LoadgenPercent = 100 * res.CPU.LoadgenSeconds / r.w.Duration.Seconds()
			res.CPU.MachinePercent = mach1.Sub(mach0).Percent(res.Machine.NumCPU)
			if p, ok := opts.Cluster.(Profiler); ok {
				if err := p.StopProfiles(); err != nil {
					return fmt.Errorf("bench: stop profiles: %w", err)
				}
			}
			return nil
		}
		if measuring {
			progress(Progress{Phase: "measure", Elapsed: now.Sub(r.t0), Total: r.w.Duration, Ops: r.ops.Load()})
		} else {
			progress(Progress{Phase: "warmup", Elapsed: now.Sub(r.t0.Add(-r.w.Warmup)), Total: r.w.Warmup})
		}
		// Sleep until the next progress report or, if sooner, the next
		// moment something must happen, so the kill and the CPU readings
		// land on time.
		next := now.Add(100 * time.Millisecond)
		for _, t := range []time.Time{r.t0, r.t0.Add(r.w.KillMasterAt), r.end} {
			if t.After(now) && t.Before(next) {
				next = t
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return nil // Run reports the interruption
		case <-timer.C:
		}
	}
}

// finish merges the clients' figures into res.
func (r *runState) finish(res *Result, clients []*client) {
	reads, writes := newHist(histSigFigs), newHist(histSigFigs)
	res.Errors = map[string]int64{}
	for _, c := range clients {
		reads.Merge(c.reads)
		writes.Merge(c.writes)
		res.Reads.Errors += c.readErrs
		res.Writes.Errors += c.writeErrs
		for k, n := range c.errs {
			res.Errors[k] += n
		}
	}
	secs := r.w.Duration.Seconds()
	summarize(&res.Reads, reads, secs)
	summarize(&res.Writes, writes, secs)
	all := newHist(histSigFigs)
	all.Merge(reads)
	all.Merge(writes)
	summarize(&res.Total, all, secs)
	res.Total.Errors = res.Reads.Errors + res.Writes.Errors
	if ops := res.Total.Count; ops > 0 {
		res.CPU.ServerUsPerOp = res.CPU.ServerSeconds * 1e6 / float64(ops)
		if r.w.FileSize > 0 {
			res.CPU.ServerNsPerByte = res.CPU.ServerSeconds * 1e9 / (float64(ops) * float64(r.w.FileSize))
		}
	}

	// The gap still open at the window's end counts too: a system that
	// never recovered was unavailable until then.
	if r.w.Reads < 1 {
		r.noteGap(r.lastWrite.Load(), int64(r.w.Duration))
		res.LongestWriteGap = time.Duration(r.maxGap).Seconds()
	}
	if f := res.Failover; f != nil {
		f.Unavailable = res.LongestWriteGap
		f.GapStart = time.Duration(r.gapStart).Seconds()
		f.FirstWrite = -1
		if first := r.firstAfterKill.Load(); first > 0 {
			f.FirstWrite = time.Duration(first - r.killAt.Load()).Seconds()
			res.Events = append(res.Events, Event{T: time.Duration(first).Seconds(), What: "first write after the kill"})
		}
		f.Errors = r.errsAfterKill.Load()
	}
	sort.Slice(res.Events, func(i, j int) bool { return res.Events[i].T < res.Events[j].T })

	res.Timeline.StepMs = float64(r.step) / float64(time.Millisecond)
	for i, b := range r.buckets {
		tb := Bucket{T: (time.Duration(i) * r.step).Seconds(), Ops: b.ops, Writes: b.writes, Reads: b.reads, Errors: b.errs}
		if b.lat != nil {
			tb.P99Ms = float64(b.lat.ValueAtQuantile(99)) / 1000
		}
		res.Timeline.Buckets = append(res.Timeline.Buckets, tb)
	}
}
