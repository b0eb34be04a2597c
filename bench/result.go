package bench

// This file owns Result, every figure of one run, with its JSON form
// (written, and read back within limits), the machine it ran on, and the
// latency histograms' summaries. Plain values: the caller's goroutine;
// Run fills a Result only after its clients have stopped.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is every figure of one run; its JSON form is what --json writes and
// what the comparison reads back.
type Result struct {
	System   string    `json:"system"` // "synod", "etcd"
	Via      string    `json:"via"`    // how the clients reached it, e.g. "proxy 127.0.0.1:7000"
	Workload Workload  `json:"workload"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"` // the measured window
	Machine  Machine   `json:"machine"`

	Total  OpStats `json:"total"`
	Writes OpStats `json:"writes"`
	Reads  OpStats `json:"reads"`
	// Errors counts failed operations by kind.
	Errors map[string]int64 `json:"errors"`
	// LongestWriteGap is the longest stretch of the measured window without
	// a successful write, in seconds (0 without writes).
	LongestWriteGap float64 `json:"longest_write_gap_s"`

	CPU      CPUStats  `json:"cpu"`
	Failover *Failover `json:"failover,omitempty"`
	// Watch holds the watchers' figures, when the workload had any.
	Watch    *WatchStats `json:"watch,omitempty"`
	Timeline Timeline    `json:"timeline"`
	Events   []Event     `json:"events"`
}

// OpStats summarises one kind of operation over the measured window.
// Latencies are in milliseconds, of successful operations only.
type OpStats struct {
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	PerSec float64 `json:"ops_per_sec"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// CPUStats is who spent the machine's CPU during the measured window.
type CPUStats struct {
	// ServerSeconds is the servers' user+system CPU time, summed over Procs
	// (known only for a cluster the bench started); ServerUsPerOp divides it
	// by the successful operations.
	ServerSeconds float64 `json:"server_seconds"`
	ServerUsPerOp float64 `json:"server_us_per_op"`
	// ServerNsPerByte divides it by the bytes the successful operations
	// moved (each WriteBytes of the workload), in file mode.
	ServerNsPerByte float64   `json:"server_ns_per_byte,omitempty"`
	Procs           []ProcCPU `json:"procs,omitempty"`
	// LoadgenSeconds is this process's own CPU time; LoadgenPercent the
	// same as a share of one core over the window.
	LoadgenSeconds float64 `json:"loadgen_seconds"`
	LoadgenPercent float64 `json:"loadgen_percent"`
	// MachinePercent is the whole machine's busy time, 100 per busy core.
	MachinePercent float64 `json:"machine_percent"`
}

// ProcCPU is one server process's CPU time over the window.
type ProcCPU struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Failover describes the master kill of a run.
type Failover struct {
	Killed string  `json:"killed"`
	KillAt float64 `json:"kill_at_s"` // into the measured window
	// Unavailable is the longest gap without a successful write (the
	// gap that holds the kill, in every run seen so far), in seconds, and
	// when it began.
	Unavailable float64 `json:"unavailable_s"`
	GapStart    float64 `json:"gap_start_s"`
	// FirstWrite is the time from the kill until the first write issued
	// once the master was dead (reaped) succeeded, in seconds: the first
	// write the new master took. -1 if none did.
	FirstWrite float64 `json:"first_write_after_kill_s"`
	// Errors counts operations that failed after the kill.
	Errors int64 `json:"errors_after_kill"`
}

// Timeline is the measured window in fixed steps.
type Timeline struct {
	StepMs  float64  `json:"step_ms"`
	Buckets []Bucket `json:"buckets"`
}

// Bucket is one step of the timeline: operations completed in it and their
// 99th percentile latency (0 if none).
type Bucket struct {
	T      float64 `json:"t_s"` // start of the step, into the window
	Ops    int64   `json:"ops"`
	Writes int64   `json:"writes"`
	Reads  int64   `json:"reads"`
	Errors int64   `json:"errors"`
	P99Ms  float64 `json:"p99_ms"`
}

// Event is a fault or recovery marked on the timeline.
type Event struct {
	T    float64 `json:"t_s"`
	What string  `json:"what"`
}

// Machine names the machine a run was measured on.
type Machine struct {
	CPUModel   string `json:"cpu_model"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
}

// ThisMachine describes the machine the bench runs on.
func ThisMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// String is a one-line description such as "2 × Intel Xeon Processor, Linux 6.18, go1.26".
func (m Machine) String() string {
	model := m.CPUModel
	if model == "" {
		model = "CPU"
	}
	s := fmt.Sprintf("%d × %s, %s", m.NumCPU, model, m.OS)
	if m.Kernel != "" {
		s += " " + m.Kernel
	}
	return s + ", " + m.GoVersion
}

// Limits on a decoded Result, which may come from a file anyone wrote.
const (
	maxResultBytes  = 64 << 20
	maxBuckets      = 1_000_000
	maxEvents       = 10_000
	maxErrorKinds   = 1000
	maxResultProcs  = 1000
	maxResultString = 4096
)

// ErrResult is returned by DecodeResult for a document that is not a
// Result within limits.
var ErrResult = errors.New("bench: bad result")

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// DecodeResult parses a Result written by WriteJSON. It refuses documents
// over 64 MiB, unknown fields and lists beyond sane bounds.
func DecodeResult(r io.Reader) (*Result, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxResultBytes+1))
	if err != nil {
		return nil, fmt.Errorf("bench: read result: %w", err)
	}
	if len(b) > maxResultBytes {
		return nil, fmt.Errorf("%w: over %d bytes", ErrResult, maxResultBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var res Result
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResult, err)
	}
	switch {
	case len(res.Timeline.Buckets) > maxBuckets:
		return nil, fmt.Errorf("%w: %d timeline buckets", ErrResult, len(res.Timeline.Buckets))
	case len(res.Events) > maxEvents:
		return nil, fmt.Errorf("%w: %d events", ErrResult, len(res.Events))
	case len(res.Errors) > maxErrorKinds:
		return nil, fmt.Errorf("%w: %d error kinds", ErrResult, len(res.Errors))
	case len(res.CPU.Procs) > maxResultProcs:
		return nil, fmt.Errorf("%w: %d processes", ErrResult, len(res.CPU.Procs))
	case len(res.System) > maxResultString || len(res.Via) > maxResultString:
		return nil, fmt.Errorf("%w: overlong name", ErrResult)
	}
	return &res, nil
}

// ReadResultFile reads a Result from a JSON file.
func ReadResultFile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	r, err := DecodeResult(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// WriteResultFile writes r to path as JSON.
func WriteResultFile(path string, r *Result) error {
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		return fmt.Errorf("bench: encode result: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// Latency histograms record microseconds: 1 µs to an hour at 3 significant
// digits for the summary, 2 for each timeline step (they are many).
const (
	histMax         = int64(time.Hour / time.Microsecond)
	histSigFigs     = 3
	timelineSigFigs = 2
)

func newHist(sigfigs int) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, histMax, sigfigs)
}

func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := max(int64(d/time.Microsecond), 1)
	_ = h.RecordValue(min(us, histMax)) // clamped into range: cannot fail
}

// summarize fills the latency fields of s from h.
func summarize(s *OpStats, h *hdrhistogram.Histogram, seconds float64) {
	s.Count = h.TotalCount()
	if seconds > 0 {
		s.PerSec = float64(s.Count) / seconds
	}
	if s.Count == 0 {
		return
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	s.MeanMs = h.Mean() / 1000
	s.P50Ms = ms(h.ValueAtQuantile(50))
	s.P90Ms = ms(h.ValueAtQuantile(90))
	s.P99Ms = ms(h.ValueAtQuantile(99))
	s.P999Ms = ms(h.ValueAtQuantile(99.9))
	s.MaxMs = ms(h.Max())
}
