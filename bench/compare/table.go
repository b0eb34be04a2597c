package compare

// This file owns the comparison table: the figures picked out of each run,
// their medians and synod's ratio to each peer, the cost of TLS, the aims
// set for synod, and the Markdown and JSON it is written as. Pure: the
// caller's goroutine (benchcompare's main, after Execute has run every
// bench).

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"synod/bench"
)

// Row is one line of the comparison: a figure of one case on every system.
type Row struct {
	Case     string `json:"case"`
	Workload string `json:"workload"`
	Metric   string `json:"metric"`
	// Stats holds the figure of each system, in Table.Systems order.
	Stats []Stat `json:"stats"`
	// Ratios[j] is the first system's median over system j+1's; NaN
	// (null in JSON) when undefined.
	Ratios []float64 `json:"-"`
	// ServerUsPerOp and LoadgenPercent are filled on a case's first row,
	// one per system: the servers' CPU µs per operation and the load
	// generator's CPU as a percentage of one core.
	ServerUsPerOp  []Stat `json:"server_us_per_op,omitempty"`
	LoadgenPercent []Stat `json:"loadgen_percent,omitempty"`
	// Skipped holds, per system, why it did not run the case ("" if it
	// did); nil when every system ran it. Refused marks those that did
	// not because they refuse the case's requests.
	Skipped []string `json:"skipped,omitempty"`
	Refused []bool   `json:"refused,omitempty"`
}

// FileRow is a file case beside the disk's own figure.
type FileRow struct {
	Case     string `json:"case"`
	Workload string `json:"workload"`
	FileSize int64  `json:"file_size"`
	// MBPerSec is the first system's; Disk the disk's for three copies;
	// Ratio the first over the disk (NaN when either is missing).
	MBPerSec Stat    `json:"mb_per_s"`
	Disk     Stat    `json:"disk_mb_per_s"`
	Ratio    float64 `json:"-"`
	// NsPerByte is every system's server CPU per byte, in Table.Systems
	// order (zero Stat for one that did not run).
	NsPerByte []Stat `json:"server_ns_per_byte"`
}

// MarshalJSON writes the ratios with an undefined one as null.
func (r Row) MarshalJSON() ([]byte, error) {
	type plain Row
	ratios := make([]*float64, len(r.Ratios))
	for i := range r.Ratios {
		if !math.IsNaN(r.Ratios[i]) && !math.IsInf(r.Ratios[i], 0) {
			ratios[i] = &r.Ratios[i]
		}
	}
	return json.Marshal(struct {
		plain
		Ratios []*float64 `json:"ratios"`
	}{plain(r), ratios})
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
	Systems  []string      `json:"systems"`
	Machine  bench.Machine `json:"machine"`
	Command  string        `json:"command"`
	Runs     int           `json:"runs_per_case"`
	Nodes    int           `json:"nodes"`
	Duration string        `json:"duration"`
	Warmup   string        `json:"warmup"`
	Rows     []Row         `json:"rows"`
	TLSCost  []string      `json:"tls_cost,omitempty"`
	// MetricsCost is what metrics scraped every second cost, per system.
	MetricsCost []string `json:"metrics_cost,omitempty"`
	Aims        []Aim    `json:"aims"`
	// FileRows and FileAims are the file cases against the disk, and
	// issue 22's aims for them.
	FileRows []FileRow `json:"file_rows,omitempty"`
	FileAims []Aim     `json:"file_aims,omitempty"`
	Failed   []string  `json:"failed,omitempty"`
	Files    []Run     `json:"runs"`
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
	mbPerSec  = metric{"MB/s", "%.1f", func(r *bench.Result) (float64, bool) {
		return r.Total.PerSec * float64(r.Workload.WriteBytes()) / 1e6, true
	}}
	// filesPerSec is ops/s of a file case, to two places: 64 MB files go
	// at a few a second.
	filesPerSec = metric{"files/s", "%.2f", func(r *bench.Result) (float64, bool) { return r.Total.PerSec, true }}
	nsPerByte   = metric{"server CPU ns/byte", "%.2f", func(r *bench.Result) (float64, bool) {
		return r.CPU.ServerNsPerByte, r.CPU.ServerNsPerByte > 0
	}}
	p50 = metric{"p50 ms", "%.2f", func(r *bench.Result) (float64, bool) { return r.Total.P50Ms, r.Total.Count > 0 }}
	p99 = metric{"p99 ms", "%.2f", func(r *bench.Result) (float64, bool) { return r.Total.P99Ms, r.Total.Count > 0 }}
	// unavail, firstWrite and killErrors keep issue 8's names, which
	// earlier tables and tools use.
	unavail = metric{"unavailable s", "%.3f", func(r *bench.Result) (float64, bool) {
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

// higherIsBetter reports whether a larger figure of m is better for synod.
func higherIsBetter(m string) bool {
	return m == opsPerSec.name || m == mbPerSec.name || m == filesPerSec.name
}

func failover(r *bench.Result, f func(*bench.Failover) float64) (float64, bool) {
	if r.Failover == nil {
		return 0, false
	}
	return f(r.Failover), true
}

// metricsOf lists the figures a case's rows show.
func metricsOf(c Case) []metric {
	switch {
	case c.Kill:
		return []metric{unavail, firstWrite, killErrors}
	case c.FileSize > 0:
		return []metric{filesPerSec, mbPerSec, nsPerByte, p99}
	case c.valueSize() > 100:
		return []metric{opsPerSec, mbPerSec, p99}
	case c.Name == "write-1":
		return []metric{opsPerSec, p50, p99}
	}
	return []metric{opsPerSec, p99}
}

// Build puts the runs of a comparison into a Table.
func Build(o Options, runs []Run, command string) *Table {
	t := &Table{Command: command, Runs: o.Runs, Nodes: o.Nodes, Duration: o.Duration.String(), Warmup: o.Warmup.String(),
		Machine: bench.ThisMachine(), Files: runs}
	for _, s := range o.Systems {
		t.Systems = append(t.Systems, s.Name)
	}
	byKey := map[[2]string][]*bench.Result{}
	disk := map[string][]float64{}
	for _, r := range runs {
		if r.System == Disk && r.Disk != nil {
			disk[r.Case] = append(disk[r.Case], r.Disk.MBPerSec)
			continue
		}
		if r.Result == nil {
			t.Failed = append(t.Failed, fmt.Sprintf("%s %s run %d: %s", r.System, r.Case, r.Index, r.Err))
			continue
		}
		k := [2]string{r.System, r.Case}
		byKey[k] = append(byKey[k], r.Result)
		t.Machine = r.Result.Machine
	}
	stats := func(c Case, m metric) []Stat {
		s := make([]Stat, len(t.Systems))
		for i, sys := range t.Systems {
			if c.Skips(sys) {
				continue // a result for it would come from elsewhere
			}
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
		var skipped []string
		var refused []bool
		for i, sys := range t.Systems {
			if why, ref := c.whySkipped(sys); why != "" {
				if skipped == nil {
					skipped, refused = make([]string, len(t.Systems)), make([]bool, len(t.Systems))
				}
				skipped[i], refused[i] = why, ref
			}
		}
		for i, m := range metricsOf(c) {
			row := Row{Case: c.Name, Workload: c.Title, Metric: m.name, Stats: stats(c, m), Skipped: skipped, Refused: refused}
			row.Ratios = ratios(row.Stats)
			if i == 0 {
				row.ServerUsPerOp, row.LoadgenPercent = stats(c, serverCPU), stats(c, loadgen)
			}
			t.Rows = append(t.Rows, row)
		}
	}
	t.TLSCost = t.tlsCost()
	t.MetricsCost = t.metricsCost()
	t.Aims = t.judge()
	for _, c := range o.Cases {
		if c.FileSize <= 0 {
			continue
		}
		fr := FileRow{Case: c.Name, Workload: c.Title, FileSize: c.FileSize, Disk: Summarize(disk[c.Name]), Ratio: math.NaN()}
		if r, ok := t.row(c.Name, mbPerSec.name); ok {
			fr.MBPerSec = r.Stats[0]
		}
		if r, ok := t.row(c.Name, nsPerByte.name); ok {
			fr.NsPerByte = r.Stats
		}
		if fr.MBPerSec.N > 0 && fr.Disk.N > 0 && fr.Disk.Median > 0 {
			fr.Ratio = fr.MBPerSec.Median / fr.Disk.Median
		}
		t.FileRows = append(t.FileRows, fr)
	}
	t.FileAims = t.judgeFiles()
	return t
}

// Issue 22's aims for files: server CPU per byte written, and throughput
// for 1 MB and larger files against what the disk allows for three copies.
const (
	aimNsPerByte = 2.0
	aimOfDisk    = 0.7
	aimDiskFrom  = 1_000_000 // the throughput aim is for files this large and larger
)

// judgeFiles checks issue 22's aims on the file rows of the first system:
// at most aimNsPerByte on every row, and at least aimOfDisk of the disk's
// figure on every row of files of aimDiskFrom bytes or more.
func (t *Table) judgeFiles() []Aim {
	if len(t.FileRows) == 0 {
		return nil
	}
	a := t.Systems[0]
	cpu := Aim{Text: fmt.Sprintf("files: %s's servers spend ≤ %.0f ns of CPU per byte written, every file row", a, aimNsPerByte)}
	disk := Aim{Text: fmt.Sprintf("files of 1 MB and larger: %s's MB/s ≥ %.0f%% of the disk's for three copies", a, 100*aimOfDisk)}
	var cpuParts, diskParts []string
	cpu.Met, disk.Met = true, true
	for _, fr := range t.FileRows {
		if len(fr.NsPerByte) > 0 && fr.NsPerByte[0].N > 0 {
			v := fr.NsPerByte[0].Median
			cpu.Measured = true
			cpu.Met = cpu.Met && v <= aimNsPerByte
			cpuParts = append(cpuParts, fmt.Sprintf("%s %.2f", fr.Workload, v))
		}
		if fr.FileSize >= aimDiskFrom && !math.IsNaN(fr.Ratio) {
			disk.Measured = true
			disk.Met = disk.Met && fr.Ratio >= aimOfDisk
			diskParts = append(diskParts, fmt.Sprintf("%s %.0f%%", fr.Workload, 100*fr.Ratio))
		}
	}
	cpu.Met, disk.Met = cpu.Met && cpu.Measured, disk.Met && disk.Measured
	cpu.Detail, disk.Detail = strings.Join(cpuParts, "; "), strings.Join(diskParts, "; ")
	return []Aim{cpu, disk}
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// ratios returns the first system's median over each other's.
func ratios(s []Stat) []float64 {
	out := make([]float64, 0, max(len(s)-1, 0))
	for _, o := range s[1:] {
		r := math.NaN()
		if s[0].N > 0 && o.N > 0 && o.Median != 0 {
			r = s[0].Median / o.Median
		}
		out = append(out, r)
	}
	return out
}

func (t *Table) row(caseName, metricName string) (Row, bool) {
	for _, r := range t.Rows {
		if r.Case == caseName && r.Metric == metricName {
			return r, true
		}
	}
	return Row{}, false
}

// ratioTo returns r's ratio of the first system to peer, if measured.
func (t *Table) ratioTo(r Row, peer string) (float64, bool) {
	j := indexOf(t.Systems, peer)
	if j < 1 || j-1 >= len(r.Ratios) || math.IsNaN(r.Ratios[j-1]) || math.IsInf(r.Ratios[j-1], 0) {
		return 0, false
	}
	return r.Ratios[j-1], true
}

// tlsCost says, for each system that ran writes at 64 clients both
// without and with TLS, what TLS cost it in throughput and server CPU:
// against the plaintext twin run beside the TLS case where the system ran
// it, else against the core case.
func (t *Table) tlsCost() []string { return t.twinCost("tls-write-64", "plain-write-64", "plaintext") }

// metricsCost says what serving metrics and having them scraped every
// second cost synod: against its twin run just before without them.
func (t *Table) metricsCost() []string {
	return t.twinCost("metrics-write-64", "nometrics-write-64", "without metrics")
}

// twinCost compares each system's run of the case named with against its
// run of twinName beside it (else the core write-64 case, run apart, which
// the line says, calling it baseline).
func (t *Table) twinCost(with, twinName, baseline string) []string {
	secure, ok := t.row(with, opsPerSec.name)
	if !ok {
		return nil
	}
	twin, hasTwin := t.row(twinName, opsPerSec.name)
	core, hasCore := t.row("write-64", opsPerSec.name)
	var out []string
	for i, sys := range t.Systems {
		var plain Row
		switch {
		case hasTwin && twin.Stats[i].N > 0:
			plain = twin
		case hasCore && core.Stats[i].N > 0:
			plain = core
		default:
			continue
		}
		a, b := plain.Stats[i], secure.Stats[i]
		if b.N == 0 || a.Median == 0 {
			continue
		}
		s := fmt.Sprintf("%s: %.0f → %.0f ops/s (%+.0f%%)", sys, a.Median, b.Median, 100*(b.Median/a.Median-1))
		if ca, cb := plain.ServerUsPerOp[i], secure.ServerUsPerOp[i]; ca.N > 0 && cb.N > 0 {
			s += fmt.Sprintf(", server CPU %.0f → %.0f µs per write (%+.0f µs)", ca.Median, cb.Median, cb.Median-ca.Median)
		}
		if plain.Case != twinName {
			s += " (" + baseline + " from " + plain.Workload + ", run apart)"
		}
		out = append(out, s)
	}
	return out
}

// judge checks issue 19's aims for the first system against etcd and,
// where it says so, ZooKeeper. An aim whose rows were not run is "not
// measured".
func (t *Table) judge() []Aim {
	a := t.Systems[0]
	var aims []Aim
	notMeasured := func(text string) { aims = append(aims, Aim{Text: text}) }
	// ratio aims: the median ratio to etcd at least (or at most) want.
	ratioAim := func(text, caseName, metricName string, want float64, atLeast bool) {
		r, ok := t.row(caseName, metricName)
		if !ok {
			notMeasured(text)
			return
		}
		v, ok := t.ratioTo(r, Etcd)
		if !ok {
			notMeasured(text)
			return
		}
		met := v >= want
		if !atLeast {
			met = v <= want
		}
		d := fmt.Sprintf("%.2f×", v)
		if !met {
			d += fmt.Sprintf(": missed (aim %s %.2f×)", map[bool]string{true: "≥", false: "≤"}[atLeast], want)
		}
		aims = append(aims, Aim{Text: text, Measured: true, Met: met, Detail: d})
	}
	// cpu aims: the first system's median server CPU per operation.
	cpuAim := func(text, caseName string, limit float64) {
		r, ok := t.row(caseName, opsPerSec.name)
		if !ok || r.ServerUsPerOp == nil || r.ServerUsPerOp[0].N == 0 {
			notMeasured(text)
			return
		}
		v := r.ServerUsPerOp[0].Median
		d := fmt.Sprintf("%.0f µs", v)
		if v > limit {
			d += fmt.Sprintf(": missed by %.0f µs", v-limit)
		}
		aims = append(aims, Aim{Text: text, Measured: true, Met: v <= limit, Detail: d})
	}
	ratioAim(fmt.Sprintf("writes at 64 clients: %s ≥ 6× etcd's throughput", a), "write-64", opsPerSec.name, 6, true)
	cpuAim("writes at 64 clients: server CPU ≤ 35 µs per write", "write-64", 35)
	ratioAim(fmt.Sprintf("linearizable reads at 64 clients: %s ≥ 7× etcd's throughput", a), "linread-64", opsPerSec.name, 7, true)
	cpuAim("linearizable reads at 64 clients: server CPU ≤ 20 µs per read", "linread-64", 20)
	ratioAim("writes, 1 client: p50 ≤ ⅓ of etcd's", "write-1", p50.name, 1.0/3, false)
	ratioAim("failover: unavailability ≤ 0.3× etcd's", "kill-16", unavail.name, 0.3, false)
	if r, ok := t.row("kill-16", killErrors.name); ok && r.Stats[0].N > 0 {
		aims = append(aims, Aim{Text: fmt.Sprintf("failover: zero client errors on %s", a), Measured: true, Met: r.Stats[0].Max == 0,
			Detail: fmt.Sprintf("%.0f at most over %d runs", r.Stats[0].Max, r.Stats[0].N)})
	} else {
		notMeasured("failover: zero client errors")
	}
	aims = append(aims, t.everyRow("p99 below etcd's on every row", func(r Row) (bool, bool) {
		if r.Metric != p99.name {
			return false, false
		}
		v, ok := t.ratioTo(r, Etcd)
		return v < 1, ok
	}))
	aims = append(aims, t.everyRow(fmt.Sprintf("%s ahead of both peers on every row", a), func(r Row) (bool, bool) {
		if r.Metric == firstWrite.name || r.Metric == killErrors.name {
			return false, false // judged by the failover aims
		}
		measured, ahead := false, true
		for _, peer := range t.Systems[1:] {
			v, ok := t.ratioTo(r, peer)
			if !ok {
				continue
			}
			measured = true
			if higherIsBetter(r.Metric) {
				ahead = ahead && v > 1
			} else {
				ahead = ahead && v < 1
			}
		}
		return ahead, measured
	}))
	aims = append(aims, t.holds())
	return aims
}

// everyRow is an aim met when check holds on every row it applies to (ok);
// the detail names the rows that missed.
func (t *Table) everyRow(text string, check func(Row) (met, ok bool)) Aim {
	n := 0
	var missed []string
	for _, r := range t.Rows {
		met, ok := check(r)
		if !ok {
			continue
		}
		n++
		if !met {
			missed = append(missed, r.Workload+" "+r.Metric)
		}
	}
	if n == 0 {
		return Aim{Text: text}
	}
	d := fmt.Sprintf("%d of %d rows", n-len(missed), n)
	if len(missed) > 0 {
		d += "; missed: " + strings.Join(missed, "; ")
	}
	return Aim{Text: text, Measured: true, Met: len(missed) == 0, Detail: d}
}

// holds is the aim that throughput does not collapse with many clients:
// the first system's writes at 256 and 1,024 clients keep at least 90% of
// its writes at 64.
func (t *Table) holds() Aim {
	text := "writes at 256 and 1,024 clients keep ≥ 90% of the throughput at 64 (no collapse)"
	base, ok := t.row("write-64", opsPerSec.name)
	if !ok || base.Stats[0].N == 0 || base.Stats[0].Median == 0 {
		return Aim{Text: text}
	}
	var parts []string
	met, measured := true, false
	for _, name := range []string{"write-256", "write-1024"} {
		r, ok := t.row(name, opsPerSec.name)
		if !ok || r.Stats[0].N == 0 {
			continue
		}
		measured = true
		f := r.Stats[0].Median / base.Stats[0].Median
		met = met && f >= 0.9
		parts = append(parts, fmt.Sprintf("%s %.0f%%", name, 100*f))
	}
	if !measured {
		return Aim{Text: text}
	}
	return Aim{Text: text, Measured: true, Met: met, Detail: strings.Join(parts, ", ")}
}

// WriteMarkdown writes the table as Markdown, cells "median (min–max)",
// followed by what was not run and why, the cost of TLS, the aims and any
// failed runs.
func (t *Table) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	a := t.Systems[0]
	cols := []string{"workload", "metric"}
	cols = append(cols, t.Systems...)
	for _, p := range t.Systems[1:] {
		cols = append(cols, a+"/"+p)
	}
	joined := strings.Join(t.Systems, " / ")
	cols = append(cols, "server CPU µs/op ("+joined+")", "load-gen CPU % of a core ("+joined+")")
	fmt.Fprintf(&b, "| %s |\n|---|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---:|", len(cols)-2))
	formats := map[string]string{}
	for _, m := range []metric{opsPerSec, filesPerSec, mbPerSec, nsPerByte, p50, p99, unavail, firstWrite, killErrors} {
		formats[m.name] = m.format
	}
	last := ""
	var notRun []string
	for _, r := range t.Rows {
		workload := r.Workload
		if workload == last {
			workload = ""
		}
		f := formats[r.Metric]
		cells := []string{workload, r.Metric}
		for i, s := range r.Stats {
			switch {
			case r.Skipped != nil && r.Skipped[i] != "":
				if r.Refused[i] {
					cells = append(cells, "refused")
				} else {
					cells = append(cells, "n/a")
				}
				if r.Workload != last {
					notRun = append(notRun, fmt.Sprintf("%s, %s: %s", t.Systems[i], r.Workload, r.Skipped[i]))
				}
			default:
				cells = append(cells, cell(s, f, true))
			}
		}
		last = r.Workload
		for _, v := range r.Ratios {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				cells = append(cells, "–")
			} else {
				cells = append(cells, fmt.Sprintf("%.2f×", v))
			}
		}
		cpu, lg := "", ""
		if r.ServerUsPerOp != nil {
			cpu, lg = joinCells(r.ServerUsPerOp, r.Skipped), joinCells(r.LoadgenPercent, r.Skipped)
		}
		cells = append(cells, cpu, lg)
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintf(&b, "\nMedian (min–max) of %d run(s) per system and workload, %s measured after %s of warm-up each, alternating %s on a fresh %d-member cluster per run.\n",
		t.Runs, t.Duration, t.Warmup, strings.Join(t.Systems, ", "), t.Nodes)
	fmt.Fprintf(&b, "Machine: %s.\n", t.Machine)
	if t.Command != "" {
		fmt.Fprintf(&b, "Command: `%s`.\n", t.Command)
	}
	if len(notRun) > 0 {
		b.WriteString("\nNot run (n/a, refused):\n")
		for _, n := range notRun {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(t.TLSCost) > 0 {
		b.WriteString("\nCost of TLS on every link (writes, 64 clients, medians):\n")
		for _, c := range t.TLSCost {
			fmt.Fprintf(&b, "- %s\n", c)
		}
	}
	if len(t.MetricsCost) > 0 {
		b.WriteString("\nCost of metrics, every endpoint scraped each second (writes, 64 clients, medians):\n")
		for _, c := range t.MetricsCost {
			fmt.Fprintf(&b, "- %s\n", c)
		}
	}
	if len(t.FileRows) > 0 {
		t.writeFiles(&b)
	}
	writeAims(&b, "Aims (issue 19)", t.Aims)
	writeAims(&b, "Aims (issue 22)", t.FileAims)
	if len(t.Failed) > 0 {
		b.WriteString("\nFailed runs:\n")
		for _, f := range t.Failed {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFiles writes the file rows beside the disk's figure.
func (t *Table) writeFiles(b *strings.Builder) {
	a := t.Systems[0]
	fmt.Fprintf(b, "\nFiles against the disk: the disk's figure is %d copies of the same bytes written side by side on the filesystem of the benches' data, an fsync per MiB, in MB/s of one copy (client data), measured beside each run:\n\n", DiskCopies)
	fmt.Fprintf(b, "| workload | %s MB/s | disk MB/s (%d copies) | %s/disk | server CPU ns/byte (%s) |\n|---|---:|---:|---:|---:|\n",
		a, DiskCopies, a, strings.Join(t.Systems, " / "))
	for _, fr := range t.FileRows {
		ratio := "–"
		if !math.IsNaN(fr.Ratio) {
			ratio = fmt.Sprintf("%.0f%%", 100*fr.Ratio)
		}
		per := make([]string, len(t.Systems))
		for i := range t.Systems {
			why, refused := "", false
			for _, c := range t.Rows {
				if c.Case == fr.Case && c.Skipped != nil {
					why, refused = c.Skipped[i], c.Refused[i]
					break
				}
			}
			switch {
			case refused:
				per[i] = "refused"
			case why != "":
				per[i] = "n/a"
			case i < len(fr.NsPerByte):
				per[i] = cell(fr.NsPerByte[i], "%.2f", false)
			default:
				per[i] = "–"
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", fr.Workload, cell(fr.MBPerSec, "%.1f", true), cell(fr.Disk, "%.0f", true), ratio, strings.Join(per, " / "))
	}
}

// writeAims writes a list of aims under head, met or not.
func writeAims(b *strings.Builder, head string, aims []Aim) {
	if len(aims) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n", head)
	for _, aim := range aims {
		mark := "missed"
		switch {
		case !aim.Measured:
			mark = "not measured"
		case aim.Met:
			mark = "met"
		}
		fmt.Fprintf(b, "- %s: **%s**", aim.Text, mark)
		if aim.Detail != "" {
			fmt.Fprintf(b, " (%s)", aim.Detail)
		}
		b.WriteString("\n")
	}
}

// joinCells writes one median per system, "a / b / c", "n/a" for a system
// that skipped the case.
func joinCells(s []Stat, skipped []string) string {
	parts := make([]string, len(s))
	for i := range s {
		if skipped != nil && skipped[i] != "" {
			parts[i] = "n/a"
		} else {
			parts[i] = cell(s[i], "%.0f", false)
		}
	}
	return strings.Join(parts, " / ")
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
