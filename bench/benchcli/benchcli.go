// Package benchcli is the command line shared by every bench binary: `synod
// bench` and the peers under bench/peers (etcd, ZooKeeper) take the same flags, run
// the same workload through bench.Run and print, save and plot the same
// report, so their figures can be put side by side.
package benchcli

// This file owns the shared flags, the workload they describe, and the
// action that runs it and writes the report, the JSON and the plot. The
// command's goroutine runs it all; bench.Run starts the clients'.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"synod/bench"
	"synod/bench/plot"
)

// MaxSpawn bounds --spawn: one machine, a handful of servers.
const MaxSpawn = 9

// ErrUsage is returned for flags that make no sense together.
var ErrUsage = errors.New("bench: usage")

// System is a kind of cluster a bench binary measures.
type System struct {
	// Name is the system's name in reports ("synod", "etcd").
	Name string
	// DefaultAddr is --addr's default.
	DefaultAddr string
	// AddrUsage explains --addr for this system.
	AddrUsage string
	// Flags are the system's own flags, added to the shared ones.
	Flags []cli.Flag
	// Spawn starts a fresh cluster of n members for w.
	Spawn func(ctx context.Context, c *cli.Context, n int, w bench.Workload) (*Spawned, error)
	// Connect returns a Target for a running cluster at addr, and how it is
	// reached, for the report.
	Connect func(ctx context.Context, c *cli.Context, addr string, w bench.Workload) (bench.Target, string, error)
}

// Spawned is a cluster a System started for one run.
type Spawned struct {
	Target  bench.Target
	Via     string
	Cluster bench.Cluster
	// Where says where its data and logs are, for the user.
	Where string
	Close func() error
}

// Flags returns the shared flags followed by sys's own. Every flag also
// reads SYNOD_BENCH_<FLAG> from the environment.
func Flags(sys System) []cli.Flag {
	d := bench.DefaultWorkload()
	env := func(name string) []string { return []string{"SYNOD_BENCH_" + envName(name)} }
	addrUsage := sys.AddrUsage
	if addrUsage == "" {
		addrUsage = "address of a running cluster (ignored with --spawn)"
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "addr", Value: sys.DefaultAddr, Usage: addrUsage, EnvVars: env("addr")},
		&cli.IntFlag{Name: "clients", Value: d.Clients, Usage: "closed-loop clients, one connection and one request in flight each", EnvVars: env("clients")},
		&cli.DurationFlag{Name: "duration", Value: d.Duration, Usage: "measured window", EnvVars: env("duration")},
		&cli.DurationFlag{Name: "warmup", Value: d.Warmup, Usage: "unmeasured run before the window", EnvVars: env("warmup")},
		&cli.Float64Flag{Name: "reads", Value: d.Reads, Usage: "fraction of operations that are reads (0 to 1); the rest are writes", EnvVars: env("reads")},
		&cli.IntFlag{Name: "value-size", Value: d.ValueSize, Usage: "bytes per written value", EnvVars: env("value-size")},
		&cli.Int64Flag{Name: "file-size", Usage: "make every write a file of this many bytes (its 4 KiB blocks unique to the write) and every read a read of a whole file; synod stores files above its value limit with PUTFILE and reads them with GET RANGE (--putfile-above), a peer takes them as values; --value-size is then unused", EnvVars: env("file-size")},
		&cli.IntFlag{Name: "keys", Value: d.Keys, Usage: "distinct keys", EnvVars: env("keys")},
		&cli.StringFlag{Name: "dist", Value: d.Dist, Usage: "key distribution: uniform or zipf", EnvVars: env("dist")},
		&cli.Float64Flag{Name: "zipf-theta", Value: d.Theta, Usage: "skew of --dist zipf, in (0, 1)", EnvVars: env("zipf-theta")},
		&cli.StringFlag{Name: "consistency", Value: d.Consistency, Usage: "read consistency", EnvVars: env("consistency")},
		&cli.DurationFlag{Name: "op-timeout", Value: d.OpTimeout, Usage: "an operation taking longer fails", EnvVars: env("op-timeout")},
		&cli.IntFlag{Name: "pipeline", Value: 1, Usage: "operations each client keeps in flight on its one connection", EnvVars: env("pipeline")},
		&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the key and operation choices", EnvVars: env("seed")},
		&cli.IntFlag{Name: "spawn", Usage: "start a fresh cluster of this many members for the run, and stop it after", EnvVars: env("spawn")},
		&cli.BoolFlag{Name: "keep", Usage: "with --spawn: keep the cluster's data and logs", EnvVars: env("keep")},
		&cli.DurationFlag{Name: "kill-master-at", Usage: "with --spawn: SIGKILL the master this far into the measured window", EnvVars: env("kill-master-at")},
		&cli.IntFlag{Name: "watchers", Usage: "watchers of every key, each on its own connection, reading every event through the run", EnvVars: env("watchers")},
		&cli.IntFlag{Name: "stalled-watchers", Usage: "watchers of every key that never read an event (the server should cut them, not slow down)", EnvVars: env("stalled-watchers")},
		&cli.StringFlag{Name: "json", Usage: "write every figure to this file as JSON", EnvVars: env("json")},
		&cli.StringFlag{Name: "timeline", Usage: "plot throughput and p99 per 100 ms to this SVG file", EnvVars: env("timeline")},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress bar and no report on stdout", EnvVars: env("quiet")},
	}
	return append(flags, sys.Flags...)
}

func envName(flag string) string {
	b := []byte(flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Workload reads the workload from the shared flags.
func Workload(c *cli.Context) (bench.Workload, error) {
	w := bench.Workload{
		Clients: c.Int("clients"), Duration: c.Duration("duration"), Warmup: c.Duration("warmup"),
		Reads: c.Float64("reads"), ValueSize: c.Int("value-size"), Keys: c.Int("keys"),
		Dist: c.String("dist"), Theta: c.Float64("zipf-theta"), Consistency: c.String("consistency"),
		OpTimeout: c.Duration("op-timeout"), Seed: c.Uint64("seed"), KillMasterAt: c.Duration("kill-master-at"),
		Pipeline: c.Int("pipeline"),
		Watchers: c.Int("watchers"), StalledWatchers: c.Int("stalled-watchers"),
		FileSize: c.Int64("file-size"),
	}
	if err := w.Validate(); err != nil {
		return w, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if n := c.Int("spawn"); n < 0 || n > MaxSpawn {
		return w, fmt.Errorf("%w: --spawn %d: want 0 to %d", ErrUsage, n, MaxSpawn)
	}
	if w.KillMasterAt > 0 && c.Int("spawn") == 0 {
		return w, fmt.Errorf("%w: --kill-master-at needs --spawn: the bench kills only a cluster it started", ErrUsage)
	}
	return w, nil
}

// Action returns the command's action: start or reach the cluster, run the
// workload, print the report and write the files asked for.
func Action(sys System) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("%w: unexpected argument %q", ErrUsage, c.Args().First())
		}
		w, err := Workload(c)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		opts := bench.Options{System: sys.Name}
		if n := c.Int("spawn"); n > 0 {
			sp, err := sys.Spawn(ctx, c, n, w)
			if err != nil {
				return err
			}
			defer func() {
				if cerr := sp.Close(); cerr != nil {
					fmt.Fprintf(c.App.ErrWriter, "%s bench: stopping the cluster: %v\n", sys.Name, cerr)
				}
			}()
			if sp.Where != "" && !c.Bool("quiet") {
				fmt.Fprintf(c.App.ErrWriter, "%s bench: started %s\n", sys.Name, sp.Where)
			}
			opts.Target, opts.Via, opts.Cluster = sp.Target, sp.Via, sp.Cluster
		} else {
			opts.Target, opts.Via, err = sys.Connect(ctx, c, c.String("addr"), w)
			if err != nil {
				return err
			}
		}
		var bar *progress
		if !c.Bool("quiet") && isTerminal(c.App.ErrWriter) {
			bar = newProgress(c.App.ErrWriter)
			opts.Progress = bar.update
		}
		res, err := bench.Run(ctx, w, opts)
		if bar != nil {
			bar.finish() // before the report, which would land on the bar's line
		}
		if err != nil {
			return err
		}
		return Output(c, res)
	}
}

// Output prints res's report (unless --quiet) and writes the --json and
// --timeline files.
func Output(c *cli.Context, res *bench.Result) error {
	if !c.Bool("quiet") {
		if err := res.WriteReport(c.App.Writer); err != nil {
			return err
		}
	}
	if path := c.String("json"); path != "" {
		if err := bench.WriteResultFile(path, res); err != nil {
			return err
		}
	}
	if path := c.String("timeline"); path != "" {
		if err := writeSVG(path, res); err != nil {
			return err
		}
	}
	return nil
}

func writeSVG(path string, res *bench.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: timeline: %w", err)
	}
	if err := plot.WriteSVG(f, TimelinePlot(res)); err != nil {
		f.Close()
		return fmt.Errorf("bench: timeline %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: timeline: %w", err)
	}
	return nil
}

// TimelinePlot turns a result's timeline into what package plot draws.
func TimelinePlot(res *bench.Result) plot.Timeline {
	step := time.Duration(res.Timeline.StepMs * float64(time.Millisecond))
	if step <= 0 {
		step = bench.TimelineStep
	}
	per := step.Seconds()
	t := plot.Timeline{
		Title:    fmt.Sprintf("%s via %s", res.System, res.Via),
		Subtitle: res.Workload.Describe(),
		Step:     step,
	}
	anyErr := false
	for _, b := range res.Timeline.Buckets {
		t.Throughput = append(t.Throughput, float64(b.Ops)/per)
		t.Errors = append(t.Errors, float64(b.Errors)/per)
		t.P99 = append(t.P99, b.P99Ms)
		anyErr = anyErr || b.Errors > 0
	}
	if !anyErr {
		t.Errors = nil
	}
	for _, e := range res.Events {
		t.Events = append(t.Events, plot.Event{At: time.Duration(e.T * float64(time.Second)), Label: e.What})
	}
	return t
}

// writerFd is an io.Writer backed by a file descriptor, such as *os.File.
type writerFd interface {
	io.Writer
	Fd() uintptr
}

// Main runs a peer's bench command, named name, as its process: the
// shared flags and sys's, Action, and commands besides; an error that is
// a usage error (ErrUsage, bench.ErrWorkload, or one of usage) exits 2,
// any other 1, each printed after the command's name.
func Main(name, usage string, sys System, commands []*cli.Command, usageErrs ...error) {
	isUsage := func(err error) bool {
		if errors.Is(err, ErrUsage) || errors.Is(err, bench.ErrWorkload) {
			return true
		}
		for _, u := range usageErrs {
			if errors.Is(err, u) {
				return true
			}
		}
		return false
	}
	app := &cli.App{
		Name:  name,
		Usage: usage,
		Flags: Flags(sys),
		Action: func(c *cli.Context) error {
			err := Action(sys)(c)
			if isUsage(err) {
				return cli.Exit(err.Error(), 2)
			}
			return err
		},
		Commands:        commands,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		if ec, ok := err.(cli.ExitCoder); ok {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}
