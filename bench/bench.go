// Package bench is synod's load generator: closed-loop clients that each keep
// one request in flight against a system under test, with the workload (read
// fraction, value size, key count and distribution), latency in HDR
// histograms, a per-100 ms timeline, an optional master kill with the
// unavailability it caused, and the CPU the servers and the generator itself
// spent. The system under test is reached through a Target, so the same runner
// and the same report serve synod (package bench/target) and the systems it is
// compared with (the etcd and ZooKeeper peers under bench/peers).
package bench

// This file owns the workload (its shape, defaults, checks and JSON form)
// and the interfaces the runner works through: Target, Conn (and FileConn,
// AsyncConn), Cluster and Profiler. Plain values: the caller's goroutine;
// each Conn is used by one client goroutine at a time (run.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Key distributions.
const (
	DistUniform = "uniform"
	DistZipf    = "zipf"
)

// Limits on a Workload, so a typo cannot ask for a million connections or a
// value no server takes.
const (
	MaxClients   = 10000
	MaxValueSize = 1 << 20
	MaxKeys      = 10_000_000
	MaxDuration  = 24 * time.Hour
	MaxPipeline  = 1024
	// MaxFileSize bounds FileSize: every client keeps one file in memory.
	MaxFileSize = 1 << 30
)

// ErrWorkload is returned by Workload.Validate and Run for a workload that
// cannot run.
var ErrWorkload = errors.New("bench: bad workload")

// ErrNoCluster is returned by Run when the workload asks for a fault but no
// Cluster was given to inflict it on.
var ErrNoCluster = errors.New("bench: a master kill needs a cluster the bench started")

// Workload is what the closed-loop clients do.
type Workload struct {
	// Clients is the number of closed-loop clients, each with its own
	// connection and one request in flight.
	Clients int
	// Duration is the measured window; Warmup runs before it, unmeasured.
	Duration time.Duration
	Warmup   time.Duration
	// Reads is the fraction of operations that are reads, 0 to 1; the rest
	// are writes (PUT).
	Reads float64
	// ValueSize is the size of every written value in bytes.
	ValueSize int
	// Keys is the number of distinct keys; Dist how they are picked
	// (DistUniform or DistZipf with skew Theta).
	Keys  int
	Dist  string
	Theta float64
	// Consistency names the read level; the Target interprets it.
	Consistency string
	// OpTimeout bounds every operation; one that takes longer is an error.
	OpTimeout time.Duration
	// Seed makes key and operation choices reproducible.
	Seed uint64
	// KillMasterAt, if positive, SIGKILLs the master this long into the
	// measured window.
	KillMasterAt time.Duration
	// Pipeline is how many operations each client keeps in flight on its
	// one connection; 0 or 1 means one at a time. Above 1 the Target's
	// connections must be AsyncConns.
	Pipeline int
	// Watchers, if positive, watch every key from the start of the run,
	// each on its own connection, reading every event (watch.go);
	// StalledWatchers watch every key and never read one, as a watcher
	// that hangs would. The Target must be a WatchTarget.
	Watchers        int
	StalledWatchers int
	// FileSize, if positive, makes every write a file of FileSize bytes
	// and every read a read of a whole file: through a FileConn its own
	// way (synod: PUTFILE and GET RANGE above its value limit), else as a
	// value (Put and Get). ValueSize is then unused. Each write's bytes
	// differ from every other's in every 4 KiB block (StampFile), so no
	// store can keep a file by reference to one it already has.
	FileSize int64
}

// WriteBytes is the size of every write: FileSize if set, else ValueSize.
func (w Workload) WriteBytes() int64 {
	if w.FileSize > 0 {
		return w.FileSize
	}
	return int64(w.ValueSize)
}

// DefaultWorkload returns the design's defaults: 64 clients, 20 s measured
// after a 2 s warm-up, 90% reads, 100-byte values over 1,000 uniform keys,
// linearizable reads, 5 s per operation.
func DefaultWorkload() Workload {
	return Workload{
		Clients:     64,
		Duration:    20 * time.Second,
		Warmup:      2 * time.Second,
		Reads:       0.9,
		ValueSize:   100,
		Keys:        1000,
		Dist:        DistUniform,
		Theta:       0.99,
		Consistency: "linearizable",
		OpTimeout:   5 * time.Second,
		Seed:        1,
	}
}

// Validate reports what makes w unable to run, wrapping ErrWorkload.
func (w Workload) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrWorkload, fmt.Sprintf(format, args...))
	}
	switch {
	case w.Clients < 1 || w.Clients > MaxClients:
		return bad("clients %d not in [1, %d]", w.Clients, MaxClients)
	case w.Duration <= 0 || w.Duration > MaxDuration:
		return bad("duration %v not in (0, %v]", w.Duration, MaxDuration)
	case w.Warmup < 0 || w.Warmup > MaxDuration:
		return bad("warm-up %v not in [0, %v]", w.Warmup, MaxDuration)
	case !(w.Reads >= 0 && w.Reads <= 1):
		return bad("reads %v not in [0, 1]", w.Reads)
	case w.ValueSize < 0 || w.ValueSize > MaxValueSize:
		return bad("value size %d not in [0, %d]", w.ValueSize, MaxValueSize)
	case w.Keys < 1 || w.Keys > MaxKeys:
		return bad("keys %d not in [1, %d]", w.Keys, MaxKeys)
	case w.Dist != DistUniform && w.Dist != DistZipf:
		return bad("distribution %q: want %s or %s", w.Dist, DistUniform, DistZipf)
	case w.Dist == DistZipf && !(w.Theta > 0 && w.Theta < 1):
		return bad("zipf theta %v not in (0, 1)", w.Theta)
	case w.Consistency == "":
		return bad("no read consistency")
	case w.OpTimeout <= 0 || w.OpTimeout > time.Hour:
		return bad("operation timeout %v not in (0, 1h]", w.OpTimeout)
	case w.Pipeline < 0 || w.Pipeline > MaxPipeline:
		return bad("pipeline %d not in [0, %d]", w.Pipeline, MaxPipeline)
	case w.Watchers < 0 || w.StalledWatchers < 0 || w.Watchers+w.StalledWatchers > MaxClients:
		return bad("watchers %d and stalled watchers %d: want at most %d in all", w.Watchers, w.StalledWatchers, MaxClients)
	case w.FileSize < 0 || w.FileSize > MaxFileSize:
		return bad("file size %d not in [0, %d]", w.FileSize, MaxFileSize)
	case w.FileSize > 0 && w.Pipeline > 1:
		return bad("file size %d with pipeline %d: a file goes one at a time on its connection", w.FileSize, w.Pipeline)
	case w.KillMasterAt < 0 || w.KillMasterAt >= w.Duration && w.KillMasterAt > 0:
		return bad("kill-master-at %v must lie inside the %v measured", w.KillMasterAt, w.Duration)
	}
	return nil
}

// workloadJSON is Workload with durations as Go duration strings ("10s").
type workloadJSON struct {
	Clients      int     `json:"clients"`
	Duration     string  `json:"duration"`
	Warmup       string  `json:"warmup"`
	Reads        float64 `json:"reads"`
	ValueSize    int     `json:"value_size"`
	Keys         int     `json:"keys"`
	Dist         string  `json:"dist"`
	Theta        float64 `json:"theta"`
	Consistency  string  `json:"consistency"`
	OpTimeout    string  `json:"op_timeout"`
	Seed         uint64  `json:"seed"`
	KillMasterAt string  `json:"kill_master_at,omitempty"`
	Pipeline     int     `json:"pipeline,omitempty"`
	Watchers     int     `json:"watchers,omitempty"`
	Stalled      int     `json:"stalled_watchers,omitempty"`
	FileSize     int64   `json:"file_size,omitempty"`
}

// MarshalJSON writes durations as strings such as "10s".
func (w Workload) MarshalJSON() ([]byte, error) {
	j := workloadJSON{
		Clients: w.Clients, Duration: w.Duration.String(), Warmup: w.Warmup.String(),
		Reads: w.Reads, ValueSize: w.ValueSize, Keys: w.Keys, Dist: w.Dist,
		Theta: w.Theta, Consistency: w.Consistency, OpTimeout: w.OpTimeout.String(), Seed: w.Seed,
		Pipeline: w.Pipeline,
		Watchers: w.Watchers, Stalled: w.StalledWatchers, FileSize: w.FileSize,
	}
	if w.KillMasterAt > 0 {
		j.KillMasterAt = w.KillMasterAt.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (w *Workload) UnmarshalJSON(b []byte) error {
	var j workloadJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	out := Workload{Clients: j.Clients, Reads: j.Reads, ValueSize: j.ValueSize, Keys: j.Keys,
		Dist: j.Dist, Theta: j.Theta, Consistency: j.Consistency, Seed: j.Seed, Pipeline: j.Pipeline,
		Watchers: j.Watchers, StalledWatchers: j.Stalled, FileSize: j.FileSize}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{j.Duration, &out.Duration}, {j.Warmup, &out.Warmup}, {j.OpTimeout, &out.OpTimeout}, {j.KillMasterAt, &out.KillMasterAt}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("bench: workload: %w", err)
		}
		*d.dst = v
	}
	*w = out
	return nil
}

// Target is the system under test as the clients see it.
type Target interface {
	// Connect opens client i's own connection.
	Connect(ctx context.Context, i int) (Conn, error)
}

// Conn is one client's connection. The runner uses it from one goroutine at
// a time. After an error that broke the connection, the Conn reconnects by
// itself on a later call, so a failover costs errors, not clients.
type Conn interface {
	Put(ctx context.Context, key string, value []byte) error
	// Get reads key; a key that does not exist is a success.
	Get(ctx context.Context, key string) error
	Close() error
}

// FileConn is a Conn that stores files its own way, for a workload with
// FileSize set; a Conn that is not one gets files as values.
type FileConn interface {
	Conn
	// PutFile stores data under key. data is the caller's until PutFile
	// returns.
	PutFile(ctx context.Context, key string, data []byte) error
	// GetFile reads the whole file under key, which PutFile wrote with
	// size bytes; a key that does not exist is a success.
	GetFile(ctx context.Context, key string, size int64) error
}

// Op is one operation of a pipelined client: a write (Put) of Value, or a
// read (Get).
type Op struct {
	Write bool
	Key   string
	Value []byte
}

// AsyncConn is a Conn that keeps many operations in flight on its one
// connection, for a workload with Pipeline above 1. The runner calls Start
// from one goroutine at a time, as it calls a Conn's methods.
type AsyncConn interface {
	Conn
	// Start begins op and returns without waiting for it. done is called
	// exactly once with the outcome (nil, or an error as Put and Get
	// return), from any goroutine, possibly before Start returns.
	Start(ctx context.Context, op Op, done func(error))
}

// StartOnGoroutine runs op on c on a goroutine of its own and hands the
// outcome to done: Start for a Conn that is safe for concurrent use and
// multiplexes its callers onto one connection (gRPC, ZooKeeper's client).
func StartOnGoroutine(ctx context.Context, c Conn, op Op, done func(error)) {
	go func() {
		if op.Write {
			done(c.Put(ctx, op.Key, op.Value))
		} else {
			done(c.Get(ctx, op.Key))
		}
	}()
}

// OpError is an operation's failure with a short kind for the report:
// "timeout", "conn", "unavailable", "not_master", a server's error code.
type OpError struct {
	Kind string
	Err  error
}

// Error returns the kind and the underlying error.
func (e *OpError) Error() string { return e.Kind + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }

// errorKind names err for the error table.
func errorKind(err error) string {
	var oe *OpError
	switch {
	case errors.As(err, &oe):
		return oe.Kind
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "error"
	}
}

// Proc is one server process of a cluster the bench started.
type Proc struct {
	Name string
	PID  int
}

// Cluster is a cluster the bench started itself, so it can read its servers'
// CPU time and kill its master.
type Cluster interface {
	// Procs lists the server processes (replicas, proxy, members).
	Procs() []Proc
	// KillMaster SIGKILLs the current master (leader) and returns it.
	KillMaster(ctx context.Context) (Proc, error)
}

// Profiler is a Cluster that can CPU-profile its servers: Run starts the
// profiles when the measured window opens and stops them when it closes.
type Profiler interface {
	StartProfiles() error
	// StopProfiles returns once the profiles are written.
	StopProfiles() error
}
