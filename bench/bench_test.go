package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// memTarget is an in-memory key-value store with a switchable outage: enough
// to drive the runner through every path without a cluster. While down, a
// Put either waits for the outage to end (as synod's proxy holds writes) or
// fails at once.
type memTarget struct {
	mu       sync.Mutex
	data     map[string][]byte
	down     chan struct{} // closed when the outage ends; nil when up
	failFast bool
	delay    time.Duration
	getCalls int
	putCalls int
}

var errDown = errors.New("no master")

func newMem() *memTarget { return &memTarget{data: map[string][]byte{}} }

func (m *memTarget) Connect(ctx context.Context, i int) (Conn, error) { return &memConn{m}, nil }

type memConn struct{ m *memTarget }

func (c *memConn) Put(ctx context.Context, key string, value []byte) error {
	m := c.m
	m.mu.Lock()
	down := m.down
	m.putCalls++
	m.mu.Unlock()
	if down != nil {
		if m.failFast {
			time.Sleep(time.Millisecond)
			return &OpError{Kind: "unavailable", Err: errDown}
		}
		select {
		case <-down:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(m.delay)
	m.mu.Lock()
	m.data[key] = append([]byte(nil), value...)
	m.mu.Unlock()
	return nil
}

func (c *memConn) Get(ctx context.Context, key string) error {
	time.Sleep(c.m.delay)
	c.m.mu.Lock()
	c.m.getCalls++
	c.m.mu.Unlock()
	return nil
}

func (c *memConn) Close() error { return nil }

// Procs reports the test process itself as the "server", so CPU readings
// have something real to read.
func (m *memTarget) Procs() []Proc { return []Proc{{Name: "self", PID: os.Getpid()}} }

// KillMaster starts an outage that ends after outage.
func (m *memTarget) KillMaster(ctx context.Context) (Proc, error) {
	m.mu.Lock()
	ch := make(chan struct{})
	m.down = ch
	m.mu.Unlock()
	time.AfterFunc(outage, func() {
		m.mu.Lock()
		m.down = nil
		m.mu.Unlock()
		close(ch)
	})
	return Proc{Name: "master", PID: os.Getpid()}, nil
}

const outage = 200 * time.Millisecond

func quick() Workload {
	w := DefaultWorkload()
	w.Clients = 4
	w.Duration = 500 * time.Millisecond
	w.Warmup = 50 * time.Millisecond
	w.Keys = 50
	w.Reads = 0.5
	return w
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Workload)
		ok   bool
	}{
		{"default", func(*Workload) {}, true},
		{"zipf", func(w *Workload) { w.Dist = DistZipf }, true},
		{"write only", func(w *Workload) { w.Reads = 0 }, true},
		{"kill inside", func(w *Workload) { w.KillMasterAt = w.Duration / 2 }, true},
		{"no clients", func(w *Workload) { w.Clients = 0 }, false},
		{"too many clients", func(w *Workload) { w.Clients = MaxClients + 1 }, false},
		{"no duration", func(w *Workload) { w.Duration = 0 }, false},
		{"negative warm-up", func(w *Workload) { w.Warmup = -1 }, false},
		{"reads over 1", func(w *Workload) { w.Reads = 1.5 }, false},
		{"reads NaN", func(w *Workload) { w.Reads = math.NaN() }, false},
		{"value too large", func(w *Workload) { w.ValueSize = MaxValueSize + 1 }, false},
		{"no keys", func(w *Workload) { w.Keys = 0 }, false},
		{"bad dist", func(w *Workload) { w.Dist = "pareto" }, false},
		{"zipf theta 1", func(w *Workload) { w.Dist, w.Theta = DistZipf, 1 }, false},
		{"no consistency", func(w *Workload) { w.Consistency = "" }, false},
		{"no timeout", func(w *Workload) { w.OpTimeout = 0 }, false},
		{"kill after the end", func(w *Workload) { w.KillMasterAt = w.Duration }, false},
		{"negative kill", func(w *Workload) { w.KillMasterAt = -time.Second }, false},
		{"pipelined", func(w *Workload) { w.Pipeline = 16 }, true},
		{"pipeline too deep", func(w *Workload) { w.Pipeline = MaxPipeline + 1 }, false},
		{"negative pipeline", func(w *Workload) { w.Pipeline = -1 }, false},
		{"watchers", func(w *Workload) { w.Watchers, w.StalledWatchers = 100, 1 }, true},
		{"negative watchers", func(w *Workload) { w.Watchers = -1 }, false},
		{"too many watchers", func(w *Workload) { w.Watchers, w.StalledWatchers = MaxClients, 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := DefaultWorkload()
			tc.edit(&w)
			err := w.Validate()
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrWorkload) {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestKeysAndValue(t *testing.T) {
	keys := KeyNames(1000)
	if len(keys) != 1000 || keys[0] != "key-000000" || keys[999] != "key-000999" {
		t.Fatalf("keys %q … %q", keys[0], keys[len(keys)-1])
	}
	for n, want := range map[int]int{1: 6, 1_000_000: 6, 1_000_001: 7, MaxKeys: 7} {
		if got := keyWidth(n); got != want {
			t.Errorf("keyWidth(%d) = %d, want %d", n, got, want)
		}
	}
	v := Value(100, 1)
	if len(v) != 100 || !bytes.Equal(v, Value(100, 1)) || bytes.Equal(v, Value(100, 2)) {
		t.Fatalf("values not reproducible per seed: %q", v)
	}
	for _, c := range v {
		if c < 'a' || c > 'z' {
			t.Fatalf("value byte %q is not a letter", c)
		}
	}
}

func TestRun(t *testing.T) {
	for _, dist := range []string{DistUniform, DistZipf} {
		t.Run(dist, func(t *testing.T) {
			m := newMem()
			m.delay = 100 * time.Microsecond
			w := quick()
			w.Dist = dist
			res, err := Run(context.Background(), w, Options{Target: m, Cluster: m, System: "mem", Via: "memory"})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.data) != w.Keys {
				t.Fatalf("preload wrote %d keys, want %d", len(m.data), w.Keys)
			}
			if res.Total.Count == 0 || res.Reads.Count == 0 || res.Writes.Count == 0 || res.Total.Errors != 0 {
				t.Fatalf("counts: %+v", res.Total)
			}
			if res.Total.Count != res.Reads.Count+res.Writes.Count {
				t.Fatalf("total %d != reads %d + writes %d", res.Total.Count, res.Reads.Count, res.Writes.Count)
			}
			if f := float64(res.Reads.Count) / float64(res.Total.Count); f < 0.4 || f > 0.6 {
				t.Fatalf("read fraction %.2f, want about 0.5", f)
			}
			if n := len(res.Timeline.Buckets); n != 5 {
				t.Fatalf("%d timeline buckets, want 5", n)
			}
			var sum int64
			for _, b := range res.Timeline.Buckets {
				sum += b.Ops
				if b.Ops != b.Reads+b.Writes {
					t.Fatalf("bucket %+v: ops != reads + writes", b)
				}
			}
			if sum != res.Total.Count {
				t.Fatalf("timeline holds %d ops, total %d", sum, res.Total.Count)
			}
			if p := res.Total; !(p.P50Ms >= 0.1 && p.P50Ms <= p.P90Ms && p.P90Ms <= p.P99Ms && p.P99Ms <= p.P999Ms && p.P999Ms <= p.MaxMs) {
				t.Fatalf("percentiles out of order or below the 0.1 ms delay: %+v", p)
			}
			if len(res.CPU.Procs) != 1 || res.CPU.ServerSeconds < 0 || res.CPU.LoadgenSeconds <= 0 {
				t.Fatalf("cpu: %+v", res.CPU)
			}
			if res.Failover != nil {
				t.Fatalf("failover without a kill: %+v", res.Failover)
			}
		})
	}
}

// TestRunKillHeld: writes wait out the outage, as through synod's proxy: no
// errors, and the gap is at least the outage.
func TestRunKillHeld(t *testing.T) {
	m := newMem()
	w := quick()
	w.Reads = 0
	w.KillMasterAt = 100 * time.Millisecond
	res, err := Run(context.Background(), w, Options{Target: m, Cluster: m})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Failover
	if f == nil || f.Killed != "master" {
		t.Fatalf("failover %+v", f)
	}
	if f.Unavailable < outage.Seconds() || f.FirstWrite < outage.Seconds() || f.Errors != 0 || res.Total.Errors != 0 {
		t.Fatalf("failover %+v, errors %v; want a gap and first write of at least %v and no errors", f, res.Errors, outage)
	}
	// A write already inside the target when the kill lands may still
	// finish just after it (the memory target fails only the writes that
	// arrive during the outage), later still on a loaded machine: the gap
	// may start a little after the kill, never before the outage ends.
	if f.GapStart > f.KillAt+0.025 || f.GapStart+f.Unavailable < f.KillAt+outage.Seconds() {
		t.Fatalf("gap [%v, +%v] does not cover the outage from %v", f.GapStart, f.Unavailable, f.KillAt)
	}
	if res.LongestWriteGap != f.Unavailable {
		t.Fatalf("longest gap %v != unavailable %v", res.LongestWriteGap, f.Unavailable)
	}
	if len(res.Events) != 2 || !strings.HasPrefix(res.Events[0].What, "SIGKILL") {
		t.Fatalf("events %+v", res.Events)
	}
}

// TestRunKillFailing: writes fail during the outage, as etcd's do: errors
// after the kill are counted by kind.
func TestRunKillFailing(t *testing.T) {
	m := newMem()
	m.failFast = true
	w := quick()
	w.Reads = 0
	w.KillMasterAt = 100 * time.Millisecond
	res, err := Run(context.Background(), w, Options{Target: m, Cluster: m})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Failover
	if f.Errors == 0 || res.Errors["unavailable"] != f.Errors || res.Writes.Errors != f.Errors {
		t.Fatalf("failover %+v, errors %v, write errors %d", f, res.Errors, res.Writes.Errors)
	}
	if f.Unavailable < outage.Seconds() {
		t.Fatalf("unavailable %v, want at least %v", f.Unavailable, outage)
	}
	var errs int64
	for _, b := range res.Timeline.Buckets {
		errs += b.Errors
	}
	if errs != f.Errors {
		t.Fatalf("timeline counts %d errors, failover %d", errs, f.Errors)
	}
}

func TestRunRefuses(t *testing.T) {
	m := newMem()
	w := quick()
	w.KillMasterAt = 100 * time.Millisecond
	if _, err := Run(context.Background(), w, Options{Target: m}); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("kill without a cluster: %v", err)
	}
	w = quick()
	w.Watchers = 1
	if _, err := Run(context.Background(), w, Options{Target: m}); !errors.Is(err, ErrNoWatch) {
		t.Fatalf("watchers on a target without watches: %v", err)
	}
	w = quick()
	w.Clients = 0
	if _, err := Run(context.Background(), w, Options{Target: m}); !errors.Is(err, ErrWorkload) {
		t.Fatalf("bad workload: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, quick(), Options{Target: m}); err == nil {
		t.Fatal("cancelled run returned no error")
	}
}

func TestSummarize(t *testing.T) {
	h := newHist(histSigFigs)
	for i := 1; i <= 1000; i++ {
		recordLatency(h, time.Duration(i)*time.Millisecond)
	}
	recordLatency(h, 2*time.Hour) // clamped, not lost
	var s OpStats
	summarize(&s, h, 2)
	near := func(got, want float64) bool { return math.Abs(got-want) <= want*0.002 }
	if s.Count != 1001 || s.PerSec != 500.5 || !near(s.P50Ms, 501) || !near(s.P90Ms, 901) || !near(s.P99Ms, 991) ||
		!near(s.P999Ms, 1000) || !near(s.MaxMs, float64(time.Hour/time.Millisecond)) {
		t.Fatalf("%+v", s)
	}
	var empty OpStats
	summarize(&empty, newHist(histSigFigs), 1)
	if empty != (OpStats{}) {
		t.Fatalf("empty histogram: %+v", empty)
	}
}

func sampleResult() *Result {
	w := DefaultWorkload()
	w.KillMasterAt = 3 * time.Second
	w.Pipeline = 16
	w.Reads = 0
	return &Result{
		System: "synod", Via: "proxy 127.0.0.1:7000", Workload: w,
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Seconds: 20,
		Machine: Machine{CPUModel: "Test CPU", NumCPU: 2, GOMAXPROCS: 2, Kernel: "6.1", GoVersion: "go1.26", OS: "linux/amd64"},
		Total:   OpStats{Count: 1000, PerSec: 50, P50Ms: 1, P90Ms: 2, P99Ms: 3, P999Ms: 4, MaxMs: 5},
		Writes:  OpStats{Count: 1000, Errors: 2, PerSec: 50, P50Ms: 1, P90Ms: 2, P99Ms: 3, P999Ms: 4, MaxMs: 5},
		Errors:  map[string]int64{"timeout": 2}, LongestWriteGap: 0.8,
		CPU:      CPUStats{ServerSeconds: 1, ServerUsPerOp: 1000, Procs: []ProcCPU{{"node1", 0.5}, {"proxy", 0.5}}, LoadgenSeconds: 0.2, LoadgenPercent: 1, MachinePercent: 150},
		Failover: &Failover{Killed: "node1", KillAt: 3, Unavailable: 0.8, GapStart: 2.99, FirstWrite: 0.79, Errors: 2},
		Timeline: Timeline{StepMs: 100, Buckets: []Bucket{{T: 0, Ops: 5, Writes: 5, P99Ms: 1.5}, {T: 0.1, Errors: 2}}},
		Events:   []Event{{T: 3, What: "SIGKILL node1"}},
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	r := sampleResult()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"duration": "20s"`) || !strings.Contains(buf.String(), `"kill_master_at": "3s"`) ||
		!strings.Contains(buf.String(), `"pipeline": 16`) {
		t.Fatalf("durations not written as strings:\n%s", buf.String())
	}
	got, err := DecodeResult(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := got.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	r.WriteJSON(&first)
	if first.String() != again.String() {
		t.Fatalf("round trip changed the result:\n%s\nvs\n%s", first.String(), again.String())
	}
	path := t.TempDir() + "/r.json"
	if err := WriteResultFile(path, r); err != nil {
		t.Fatal(err)
	}
	if fr, err := ReadResultFile(path); err != nil || fr.Workload != r.Workload {
		t.Fatalf("file round trip: %v %+v", err, fr)
	}
}

func TestDecodeResultRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":       "{",
		"unknown field":  `{"system":"x","bogus":1}`,
		"bad duration":   `{"workload":{"duration":"ten seconds"}}`,
		"wrong type":     `{"total":{"count":"many"}}`,
		"too many procs": `{"cpu":{"procs":[` + strings.Repeat(`{},`, maxResultProcs) + `{}]}}`,
	} {
		if _, err := DecodeResult(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: decoded", name)
		} else if name != "bad duration" && !errors.Is(err, ErrResult) {
			t.Errorf("%s: %v, want ErrResult", name, err)
		}
	}
}

func TestReport(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleResult().WriteReport(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"synod via proxy 127.0.0.1:7000: 64 clients, 20s (+2s warm-up), 0% reads, 100-byte values, 1000 keys uniform, 16 in flight per connection, master killed at 3s",
		"machine: 2 × Test CPU, linux/amd64 6.1, go1.26",
		"p99.9 ms",
		"errors: timeout 2",
		"server CPU: 1.00 s = 1000.0 µs/op (node1 0.50, proxy 0.50)",
		"load generator CPU: 0.20 s (1% of a core); machine busy 150% of 200%",
		"failover: SIGKILL node1 at 3.000 s; unavailable 0.800 s (no successful write from 2.990 s); the first write issued after the kill succeeded 0.790 s after it; 2 operations failed after the kill",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nread ") || !strings.Contains(out, "write") {
		t.Errorf("report rows:\n%s", out)
	}
}

func FuzzDecodeResult(f *testing.F) {
	var buf bytes.Buffer
	sampleResult().WriteJSON(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte(`{"workload":{"duration":"1s"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := r.WriteJSON(&out); err != nil {
			return // NaN and such cannot be written back; decoding them is still fine
		}
		if _, err := DecodeResult(&out); err != nil {
			t.Fatalf("re-decoding what was written: %v", err)
		}
		var rep bytes.Buffer
		_ = r.WriteReport(&rep)
	})
}

// asyncMem is memTarget's connection as an AsyncConn that counts its
// operations in flight. Every operation waits until the connection has once
// had depth of them in flight, so a runner that kept fewer would see its
// operations time out instead of passing.
type asyncMem struct {
	memConn
	depth int

	mu       sync.Mutex
	inflight int
	max      int
	full     chan struct{} // closed when inflight first reaches depth
}

type asyncTarget struct {
	m     *memTarget
	depth int
	mu    sync.Mutex
	conns []*asyncMem
}

func (t *asyncTarget) Connect(ctx context.Context, i int) (Conn, error) {
	c := &asyncMem{memConn: memConn{t.m}, depth: t.depth, full: make(chan struct{})}
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
	return c, nil
}

func (c *asyncMem) Start(ctx context.Context, op Op, done func(error)) {
	c.mu.Lock()
	c.inflight++
	c.max = max(c.max, c.inflight)
	if c.inflight == c.depth && c.max == c.depth {
		select {
		case <-c.full:
		default:
			close(c.full)
		}
	}
	c.mu.Unlock()
	StartOnGoroutine(ctx, &c.memConn, op, func(err error) {
		if err == nil {
			select {
			case <-c.full:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		c.mu.Lock()
		c.inflight--
		c.mu.Unlock()
		done(err)
	})
}

func TestRunPipelined(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clients int
		depth   int
		reads   float64
	}{
		{"one client, 16 writes in flight", 1, 16, 0},
		{"three clients, 4 mixed in flight each", 3, 4, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMem()
			tg := &asyncTarget{m: m, depth: tc.depth}
			w := quick()
			w.Clients, w.Pipeline, w.Reads = tc.clients, tc.depth, tc.reads
			res, err := Run(context.Background(), w, Options{Target: tg, System: "mem"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total.Count == 0 || res.Total.Errors != 0 {
				t.Fatalf("total %+v, errors %v", res.Total, res.Errors)
			}
			if (tc.reads == 0) != (res.Reads.Count == 0) {
				t.Fatalf("reads %d with a read fraction of %v", res.Reads.Count, tc.reads)
			}
			if len(tg.conns) != tc.clients {
				t.Fatalf("%d connections, want %d", len(tg.conns), tc.clients)
			}
			for i, c := range tg.conns {
				c.mu.Lock()
				if c.max != tc.depth {
					t.Errorf("connection %d: at most %d in flight, want %d", i, c.max, tc.depth)
				}
				c.mu.Unlock()
			}
			if !strings.Contains(res.Workload.Describe(), fmt.Sprintf("%d in flight per connection", tc.depth)) {
				t.Errorf("description %q", res.Workload.Describe())
			}
		})
	}
}

// TestRunPipelineNeedsAsync: a target whose connections take one operation
// at a time cannot run a pipelined workload.
func TestRunPipelineNeedsAsync(t *testing.T) {
	w := quick()
	w.Pipeline = 4
	if _, err := Run(context.Background(), w, Options{Target: newMem(), System: "mem"}); !errors.Is(err, ErrWorkload) {
		t.Fatalf("pipelined run on a one-at-a-time target: %v", err)
	}
}
