package bench

// This file owns the report a person reads after a run: the workload in
// one line, then latency, throughput, CPU and failover figures. Pure: the
// caller's goroutine (benchcli's Output).

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Describe is a one-line description of the workload.
func (w Workload) Describe() string {
	size := fmt.Sprintf("%d-byte values", w.ValueSize)
	if w.FileSize > 0 {
		size = fmt.Sprintf("files of %d bytes", w.FileSize)
	}
	s := fmt.Sprintf("%d clients, %v (+%v warm-up), %.0f%% reads, %s, %d keys %s",
		w.Clients, w.Duration, w.Warmup, 100*w.Reads, size, w.Keys, w.Dist)
	if w.Dist == DistZipf {
		s += fmt.Sprintf(" (theta %.2f)", w.Theta)
	}
	if w.Reads > 0 {
		s += ", " + w.Consistency + " reads"
	}
	if w.Pipeline > 1 {
		s += fmt.Sprintf(", %d in flight per connection", w.Pipeline)
	}
	if w.KillMasterAt > 0 {
		s += fmt.Sprintf(", master killed at %v", w.KillMasterAt)
	}
	if w.Watchers > 0 || w.StalledWatchers > 0 {
		s += fmt.Sprintf(", %d watchers (%d stalled)", w.Watchers+w.StalledWatchers, w.StalledWatchers)
	}
	return s
}

// WriteReport writes the summary a person reads after a run: the latency
// table, errors, CPU and, if there was one, the failover.
func (r *Result) WriteReport(out io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s via %s: %s\n", r.System, r.Via, r.Workload.Describe())
	fmt.Fprintf(&b, "machine: %s\n\n", r.Machine)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tops\tops/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	for _, row := range []struct {
		name string
		s    OpStats
	}{{"write", r.Writes}, {"read", r.Reads}, {"total", r.Total}} {
		if row.s.Count == 0 && row.s.Errors == 0 && row.name != "total" {
			continue
		}
		s := row.s
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t\n",
			row.name, s.Count, s.PerSec, s.P50Ms, s.P90Ms, s.P99Ms, s.P999Ms, s.MaxMs, s.Errors)
	}
	tw.Flush()
	b.WriteString("\n")
	if n := r.Workload.FileSize; n > 0 {
		fmt.Fprintf(&b, "files: %.1f MB/s (%d bytes each)\n", r.Total.PerSec*float64(n)/1e6, n)
	}
	if len(r.Errors) > 0 {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
		}
		fmt.Fprintf(&b, "errors: %s\n", strings.Join(parts, ", "))
	}
	c := r.CPU
	if len(c.Procs) > 0 {
		parts := make([]string, len(c.Procs))
		for i, p := range c.Procs {
			parts[i] = fmt.Sprintf("%s %.2f", p.Name, p.Seconds)
		}
		perByte := ""
		if c.ServerNsPerByte > 0 {
			perByte = fmt.Sprintf(" = %.2f ns/byte", c.ServerNsPerByte)
		}
		fmt.Fprintf(&b, "server CPU: %.2f s = %.1f µs/op%s (%s)\n", c.ServerSeconds, c.ServerUsPerOp, perByte, strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "load generator CPU: %.2f s (%.0f%% of a core); machine busy %.0f%% of %d00%%\n",
		c.LoadgenSeconds, c.LoadgenPercent, c.MachinePercent, r.Machine.NumCPU)
	if r.Workload.Reads < 1 {
		fmt.Fprintf(&b, "longest gap without a successful write: %.3f s\n", r.LongestWriteGap)
	}
	if ws := r.Watch; ws != nil {
		fmt.Fprintf(&b, "watchers: %d reading, %d stalled; %d events in the window (%.0f/s), %d resumed after a cut; watches the server cut: %d\n",
			ws.Watchers, ws.Stalled, ws.Events, ws.PerSec, ws.Resumes, ws.Cuts)
	}
	if f := r.Failover; f != nil {
		first := "no write issued after the kill succeeded"
		if f.FirstWrite >= 0 {
			first = fmt.Sprintf("the first write issued after the kill succeeded %.3f s after it", f.FirstWrite)
		}
		fmt.Fprintf(&b, "failover: SIGKILL %s at %.3f s; unavailable %.3f s (no successful write from %.3f s); %s; %d operations failed after the kill\n",
			f.Killed, f.KillAt, f.Unavailable, f.GapStart, first, f.Errors)
	}
	_, err := io.WriteString(out, b.String())
	return err
}
