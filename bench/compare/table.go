package compare

// This file owns the comparison table: the figures picked out of each run,
// their medians and ratios, the aims set for synod, and the Markdown and
// JSON it is written as. Pure: the caller's goroutine (benchcompare's
// main, after Execute has run every bench).

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"synod/bench"
)

// Row is one line of the comparison: a figure of one case on both systems.
type Row struct {
	Case     string  `json:"case"`
	Workload string  `json:"workload"`
	Metric   string  `json:"metric"`
	Stats    [2]Stat `json:"stats"`
	// Ratio is the first system's median over the second's; NaN (null in
	// JSON) when undefined.
	Ratio float64 `json:"ratio"`
	// ServerUsPerOp and LoadgenPercent are filled on a case's first row:
	// the servers' CPU µs per operation and the load generator's CPU as a
	// percentage of one core.
	ServerUsPerOp  *[2]Stat `json:"server_us_per_op,omitempty"`
	LoadgenPercent *[2]Stat `json:"loadgen_percent,omitempty"`
}

// MarshalJSON writes a NaN ratio as null.
func (r Row) MarshalJSON() ([]byte, error) {
	type plain Row
	var ratio *float64
	if !math.IsNaN(r.Ratio) && !math.IsInf(r.Ratio, 0) {
		ratio = &r.Ratio
	}
	return json.Marshal(struct {
		plain
		Ratio *float64 `json:"ratio"`
	}{plain(r), ratio})
}

// Aim is one target set for the first system, and whether it was met.
type Aim struct {
	Text     string `json:"aim"`
	Measured bool   `json:"measured"`
	Met      bool   `json:"met"`
	Detail   string `json:"detail"`
}

// Table is the whole comparison.
type Table struct {
	Systems  [2]string     `json:"systems"`
	Machine  bench.Machine `json:"machine"`
	Command  string        `json:"command"`
	Runs     int           `json:"runs_per_case"`
	Nodes    int           `json:"nodes"`
	Duration string        `json:"duration"`
	Rows     []Row         `json:"rows"`
	Aims     []Aim         `json:"aims"`
	Failed   []string      `json:"failed,omitempty"`
	Files    []Run         `json:"runs"`
}

// metric picks one figure out of a result; ok is false when the result does
// not have it.
type metric struct {
	name   string
	format string
	get    func(r *bench.Result) (float64, bool)
}

var (
	opsPerSec = metric{"ops/s", "%.0f", func(r *bench.Result) (float64, bool) { return r.Total.PerSec, true }}
	p99       = metric{"p99 ms", "%.2f", func(r *bench.Result) (float64, bool) { return r.Total.P99Ms, r.Total.Count > 0 }}
	unavail   = metric{"unavailable s", "%.3f", func(r *bench.Result) (float64, bool) {
		return failover(r, func(f *bench.Failover) float64 { return f.Unavailable })
	}}
	firstWrite = metric{"first write after kill s", "%.3f", func(r *bench.Result) (float64, bool) {
		if r.Failover == nil || r.Failover.FirstWrite < 0 {
			return 0, false
		}
		return r.Failover.FirstWrite, true
	}}
	killErrors = metric{"client errors after kill", "%.0f", func(r *bench.Result) (float64, bool) {
		return failover(r, func(f *bench.Failover) float64 { return float64(f.Errors) })
	}}
	serverCPU = metric{"", "%.0f", func(r *bench.Result) (float64, bool) { return r.CPU.ServerUsPerOp, r.CPU.ServerUsPerOp > 0 }}
	loadgen   = metric{"", "%.0f", func(r *bench.Result) (float64, bool) { return r.CPU.LoadgenPercent, true }}
)

func failover(r *bench.Result, f func(*bench.Failover) float64) (float64, bool) {
	if r.Failover == nil {
		return 0, false
	}
	return f(r.Failover), true
}

// Build puts the runs of a comparison into a Table.
func Build(o Options, runs []Run, command string) *Table {
	t := &Table{Systems: [2]string{o.Systems[0].Name, o.Systems[1].Name}, Command: command,
		Runs: o.Runs, Nodes: o.Nodes, Duration: o.Duration.String(), Machine: bench.ThisMachine(), Files: runs}
	byKey := map[[2]string][]*bench.Result{}
	for _, r := range runs {
		if r.Result == nil {
			t.Failed = append(t.Failed, fmt.Sprintf("%s %s run %d: %s", r.System, r.Case, r.Index, r.Err))
			continue
		}
		k := [2]string{r.System, r.Case}
		byKey[k] = append(byKey[k], r.Result)
		t.Machine = r.Result.Machine
	}
	stats := func(c Case, m metric) [2]Stat {
		var s [2]Stat
		for i, sys := range t.Systems {
			var vs []float64
			for _, r := range byKey[[2]string{sys, c.Name}] {
				if v, ok := m.get(r); ok {
					vs = append(vs, v)
				}
			}
			s[i] = Summarize(vs)
		}
		return s
	}
	for _, c := range o.Cases {
		metrics := []metric{opsPerSec, p99}
		if c.Kill {
			metrics = []metric{unavail, firstWrite, killErrors}
		}
		for i, m := range metrics {
			row := Row{Case: c.Name, Workload: c.Title, Metric: m.name, Stats: stats(c, m)}
			row.Ratio = ratio(row.Stats)
			if i == 0 {
				cpu, lg := stats(c, serverCPU), stats(c, loadgen)
				row.ServerUsPerOp, row.LoadgenPercent = &cpu, &lg
			}
			t.Rows = append(t.Rows, row)
		}
	}
	t.Aims = t.judge()
	return t
}

func ratio(s [2]Stat) float64 {
	if s[0].N == 0 || s[1].N == 0 || s[1].Median == 0 {
		return math.NaN()
	}
	return s[0].Median / s[1].Median
}

func (t *Table) row(caseName, metricName string) (Row, bool) {
	for _, r := range t.Rows {
		if r.Case == caseName && r.Metric == metricName {
			return r, true
		}
	}
	return Row{}, false
}

// judge checks the aims of issue 8: writes at 64 clients at least twice the
// peer's throughput with a p99 no worse; linearizable reads at 64 clients at
// least twice; a failover window at most half the peer's, with no client
// errors.
func (t *Table) judge() []Aim {
	a, b := t.Systems[0], t.Systems[1]
	var aims []Aim
	atLeast := func(text string, r Row, ok bool, want float64) {
		if !ok || math.IsNaN(r.Ratio) {
			aims = append(aims, Aim{Text: text})
			return
		}
		d := fmt.Sprintf("%.2f×", r.Ratio)
		if r.Ratio < want {
			d += fmt.Sprintf(": missed, %.0f%% short of %.0f×", 100*(1-r.Ratio/want), want)
		}
		aims = append(aims, Aim{Text: text, Measured: true, Met: r.Ratio >= want, Detail: d})
	}
	r, ok := t.row("write-64", opsPerSec.name)
	atLeast(fmt.Sprintf("writes at 64 clients: %s ≥ 2× %s's throughput", a, b), r, ok, 2)
	if r, ok := t.row("write-64", p99.name); ok && !math.IsNaN(r.Ratio) {
		d := fmt.Sprintf("%.2f ms vs %.2f ms (%.2f×)", r.Stats[0].Median, r.Stats[1].Median, r.Ratio)
		if r.Ratio > 1 {
			d += fmt.Sprintf(": missed, %.0f%% worse", 100*(r.Ratio-1))
		}
		aims = append(aims, Aim{Text: fmt.Sprintf("writes at 64 clients: %s's p99 no worse than %s's", a, b), Measured: true, Met: r.Ratio <= 1, Detail: d})
	} else {
		aims = append(aims, Aim{Text: "writes at 64 clients: p99 no worse"})
	}
	r, ok = t.row("linread-64", opsPerSec.name)
	atLeast(fmt.Sprintf("linearizable reads at 64 clients: %s ≥ 2× %s's throughput", a, b), r, ok, 2)
	if r, ok := t.row("kill-16", unavail.name); ok && !math.IsNaN(r.Ratio) {
		d := fmt.Sprintf("%.3f s vs %.3f s (%.2f×)", r.Stats[0].Median, r.Stats[1].Median, r.Ratio)
		if r.Ratio > 0.5 {
			d += fmt.Sprintf(": missed, %.0f%% over ½", 100*(r.Ratio/0.5-1))
		}
		aims = append(aims, Aim{Text: fmt.Sprintf("failover: %s's unavailability ≤ ½ of %s's", a, b), Measured: true, Met: r.Ratio <= 0.5, Detail: d})
	} else {
		aims = append(aims, Aim{Text: "failover: unavailability ≤ ½"})
	}
	if r, ok := t.row("kill-16", killErrors.name); ok && r.Stats[0].N > 0 {
		aims = append(aims, Aim{Text: fmt.Sprintf("failover: zero client errors on %s", a), Measured: true, Met: r.Stats[0].Max == 0,
			Detail: fmt.Sprintf("%.0f at most over %d runs", r.Stats[0].Max, r.Stats[0].N)})
	} else {
		aims = append(aims, Aim{Text: "failover: zero client errors"})
	}
	return aims
}

// WriteMarkdown writes the table as Markdown, cells "median (min–max)",
// followed by the aims and any failed runs.
func (t *Table) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	a, o := t.Systems[0], t.Systems[1]
	fmt.Fprintf(&b, "| workload | metric | %s | %s | %s/%s | server CPU µs/op (%s / %s) | load-gen CPU %% of a core (%s / %s) |\n", a, o, a, o, a, o, a, o)
	b.WriteString("|---|---|---:|---:|---:|---:|---:|\n")
	formats := map[string]string{}
	for _, m := range []metric{opsPerSec, p99, unavail, firstWrite, killErrors} {
		formats[m.name] = m.format
	}
	last := ""
	for _, r := range t.Rows {
		workload := r.Workload
		if workload == last {
			workload = ""
		}
		last = r.Workload
		f := formats[r.Metric]
		ratio := "–"
		if !math.IsNaN(r.Ratio) && !math.IsInf(r.Ratio, 0) {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		cpu, lg := "", ""
		if r.ServerUsPerOp != nil {
			cpu = fmt.Sprintf("%s / %s", cell(r.ServerUsPerOp[0], "%.0f", false), cell(r.ServerUsPerOp[1], "%.0f", false))
			lg = fmt.Sprintf("%s / %s", cell(r.LoadgenPercent[0], "%.0f", false), cell(r.LoadgenPercent[1], "%.0f", false))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", workload, r.Metric,
			cell(r.Stats[0], f, true), cell(r.Stats[1], f, true), ratio, cpu, lg)
	}
	fmt.Fprintf(&b, "\nMedian (min–max) of %d run(s) per system and workload, %s measured each, alternating %s and %s on a fresh %d-member cluster per run.\n",
		t.Runs, t.Duration, a, o, t.Nodes)
	fmt.Fprintf(&b, "Machine: %s.\n", t.Machine)
	if t.Command != "" {
		fmt.Fprintf(&b, "Command: `%s`.\n", t.Command)
	}
	if len(t.Aims) > 0 {
		b.WriteString("\nAims:\n")
		for _, aim := range t.Aims {
			mark := "missed"
			switch {
			case !aim.Measured:
				mark = "not measured"
			case aim.Met:
				mark = "met"
			}
			fmt.Fprintf(&b, "- %s: **%s**", aim.Text, mark)
			if aim.Detail != "" {
				fmt.Fprintf(&b, " (%s)", aim.Detail)
			}
			b.WriteString("\n")
		}
	}
	if len(t.Failed) > 0 {
		b.WriteString("\nFailed runs:\n")
		for _, f := range t.Failed {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell formats a Stat: "median (min–max)", or the median alone when the
// runs agree or range is false; "–" without runs.
func cell(s Stat, format string, withRange bool) string {
	if s.N == 0 {
		return "–"
	}
	m := fmt.Sprintf(format, s.Median)
	if !withRange || s.N == 1 {
		return m
	}
	lo, hi := fmt.Sprintf(format, s.Min), fmt.Sprintf(format, s.Max)
	if lo == hi {
		return m
	}
	return fmt.Sprintf("%s (%s–%s)", m, lo, hi)
}

// WriteJSON writes the table, aims included, as indented JSON.
func (t *Table) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}
