package main

// This file owns `synod up`: a local cluster of replicas and a proxy as
// child processes of this one, supervised by internal/proc, their logs
// labelled on up's stderr, and a banner on stdout once a master serves.
// runUp and the stopping run on the command's goroutine, announce on one of
// its own; one goroutine per child waits for it to exit and reports it.
// Following the cluster's membership while up runs (starting members
// added, letting removed ones go) is upgrow.go's.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"synod/internal/proc"
	"synod/node"
)

// maxUpNodes bounds --nodes: `up` is for a cluster on one machine, and Paxos
// gains nothing from more than a handful of replicas.
const maxUpNodes = 9

// upConfig is what `synod up` starts.
type upConfig struct {
	Nodes     int
	Dir       string
	Listen    string // the proxy's address
	BasePort  int    // replica i listens on 127.0.0.1:BasePort+i
	Cluster   string
	Grace     time.Duration // how long a child may take to stop after SIGTERM
	LogLevel  string
	LogFormat string
	// Joined are the members beyond 1..Nodes found in Dir (n<i>
	// directories of replicas added while an earlier up ran): they start
	// with --join instead of --peers.
	Joined []int
	// Secure, when set, runs the cluster with TLS and users (up --secure,
	// upsecure.go).
	Secure *upSecure
	// MetricsBase: the proxy serves metrics on 127.0.0.1:MetricsBase,
	// replica i on MetricsBase+i; 0 is off (upmetrics.go).
	MetricsBase int
}

func (u upConfig) validate() error {
	if u.Nodes < 1 || u.Nodes > maxUpNodes {
		return usageError("--nodes %d: want 1 to %d", u.Nodes, maxUpNodes)
	}
	if u.BasePort < 1 || u.BasePort+u.Nodes > 65535 {
		return usageError("--base-port %d: replica ports %d..%d must lie in 1..65535", u.BasePort, u.BasePort+1, u.BasePort+u.Nodes)
	}
	if u.Dir == "" {
		return usageError("--dir must not be empty")
	}
	if _, port, err := net.SplitHostPort(u.Listen); err != nil || port == "" {
		return usageError("--listen %q: want host:port", u.Listen)
	}
	if u.Cluster == "" || strings.ContainsAny(u.Cluster, " \t\r\n") {
		return usageError("--cluster %q: want a non-empty id without spaces", u.Cluster)
	}
	if u.Grace <= 0 {
		return usageError("--grace %v: want a positive duration", u.Grace)
	}
	if err := u.validateMetrics(); err != nil {
		return err
	}
	for i := 1; i <= u.Nodes; i++ {
		if u.replicaAddr(i) == u.Listen {
			return usageError("--listen %s is also replica %d's address: choose another --listen or --base-port", u.Listen, i)
		}
	}
	return nil
}

// replicaAddr is replica i's address; replicas stay on loopback, only the
// proxy faces clients.
func (u upConfig) replicaAddr(i int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(u.BasePort+i))
}

// peers is the replica list as `synod node --peers` and `synod proxy
// --nodes` take it: 1=127.0.0.1:7101,2=….
func (u upConfig) peers() string {
	parts := make([]string, u.Nodes)
	for i := 1; i <= u.Nodes; i++ {
		parts[i-1] = fmt.Sprintf("%d=%s", i, u.replicaAddr(i))
	}
	return strings.Join(parts, ",")
}

// ids lists every replica up starts: 1..Nodes, then Joined.
func (u upConfig) ids() []int {
	ids := make([]int, 0, u.Nodes+len(u.Joined))
	for i := 1; i <= u.Nodes; i++ {
		ids = append(ids, i)
	}
	return append(ids, u.Joined...)
}

// nodeDir is replica id's data directory.
func (u upConfig) nodeDir(id int) string { return filepath.Join(u.Dir, fmt.Sprintf("n%d", id)) }

// childSpec is one child process of `synod up`: its name in the logs, the
// replica id (0 for the proxy) and the arguments of the synod binary that
// runs it.
type childSpec struct {
	name string
	id   int
	args []string
}

// nodeSpec is replica id's child. One of the first --nodes replicas gets
// the --peers list that started the cluster; any other joins the running
// cluster through join, a member's address (it asks that member for the
// configuration; `synod node --join`).
func (u upConfig) nodeSpec(id int, join string) childSpec {
	args := []string{"--log-level", u.LogLevel, "--log-format", u.LogFormat, "node",
		"--id", strconv.Itoa(id),
		"--listen", u.replicaAddr(id)}
	if id <= u.Nodes {
		args = append(args, "--peers", u.peers())
	} else {
		args = append(args, "--join", join)
	}
	args = append(args, "--dir", u.nodeDir(id), "--cluster", u.Cluster)
	args = append(args, u.Secure.nodeFlags()...)
	args = append(args, u.metricsArgs(id)...)
	return childSpec{name: fmt.Sprintf("node%d", id), id: id, args: args}
}

// children lists the replicas, then the proxy. Stopping goes the other way
// round: the proxy first, so clients see it close rather than stall. The
// proxy is given every replica up starts; it follows the configuration
// from there.
func (u upConfig) children() []childSpec {
	var specs []childSpec
	var nodes []string
	for _, id := range u.ids() {
		specs = append(specs, u.nodeSpec(id, u.replicaAddr(1)))
		nodes = append(nodes, fmt.Sprintf("%d=%s", id, u.replicaAddr(id)))
	}
	args := []string{"--log-level", u.LogLevel, "--log-format", u.LogFormat, "proxy",
		"--listen", u.Listen,
		"--nodes", strings.Join(nodes, ","),
		"--cluster", u.Cluster}
	args = append(args, u.Secure.proxyFlags()...)
	args = append(args, u.metricsArgs(0)...)
	return append(specs, childSpec{name: "proxy", args: args})
}

// joinedDirs returns the ids of the replica directories in dir beyond
// 1..nodes (n<i>, i a number whose port base+i exists), in order: members
// added while an earlier up ran. A missing dir has none.
func joinedDirs(dir string, nodes, base int) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("up: %w", err)
	}
	var ids []int
	for _, e := range ents {
		num, ok := strings.CutPrefix(e.Name(), "n")
		if !e.IsDir() || !ok || num == "" || strings.TrimLeft(num, "0123456789") != "" || num[0] == '0' {
			continue
		}
		id, err := strconv.Atoi(num)
		if err != nil || id <= nodes || base+id > 65535 {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

func init() { commandMakers = append(commandMakers, upCommand) }

func upCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "start a local cluster: replicas and a proxy as child processes (Ctrl-C stops them)",
		Description: "Replica i listens on 127.0.0.1:<base-port>+i and keeps its data in <dir>/n<i>;\n" +
			"the proxy serves the line protocol and Redis's on --listen. Running up again on the same\n" +
			"--dir resumes the same data. A child that dies is reported, not restarted.",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 3, Usage: "number of replicas", EnvVars: env("nodes")},
			&cli.StringFlag{Name: "dir", Value: "./synod-data", Usage: "data directory; replica i uses <dir>/n<i>", EnvVars: env("dir")},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7000", Usage: "the proxy's address for clients", EnvVars: env("listen")},
			&cli.IntFlag{Name: "base-port", Value: 7100, Usage: "replica i listens on 127.0.0.1:<base-port>+i", EnvVars: env("base-port")},
			&cli.StringFlag{Name: "cluster", Value: node.DefaultConfig().ClusterID, Usage: "cluster id", EnvVars: env("cluster")},
			&cli.IntFlag{Name: "metrics-base-port", Value: 7200, Usage: "the proxy serves /metrics, /healthz and /readyz on 127.0.0.1:<metrics-base-port>, replica i on <metrics-base-port>+i; 0 turns them off", EnvVars: env("metrics-base-port")},
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "how long a child may take to stop after SIGTERM before it is killed", EnvVars: env("grace")},
			&cli.BoolFlag{Name: "secure", Usage: "TLS on every link (certificates made in <dir>/certs) and users on, with a first admin whose password is in <dir>/admin.password", EnvVars: env("secure")},
		},
		Action: runUp,
	}
}

func runUp(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("up takes no arguments, got %q", c.Args().First())
	}
	cfg := upConfig{
		Nodes:     c.Int("nodes"),
		Dir:       c.String("dir"),
		Listen:    c.String("listen"),
		BasePort:  c.Int("base-port"),
		Cluster:   c.String("cluster"),
		Grace:     c.Duration("grace"),
		LogLevel:  c.String("log-level"),
		LogFormat: c.String("log-format"),

		MetricsBase: c.Int("metrics-base-port"),
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	lg, err := newLogger(c)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("up: find own binary: %w", err)
	}
	// Members added while an earlier up ran have directories of their own.
	if cfg.Joined, err = joinedDirs(cfg.Dir, cfg.Nodes, cfg.BasePort); err != nil {
		return err
	}
	// Say which port is taken before starting anything: a replica that
	// cannot listen would only die with a less helpful message.
	addrs := []string{cfg.Listen}
	for _, id := range cfg.ids() {
		addrs = append(addrs, cfg.replicaAddr(id))
		if a := cfg.metricsAddr(id); a != "" {
			addrs = append(addrs, a)
		}
	}
	if a := cfg.metricsAddr(0); a != "" {
		addrs = append(addrs, a)
	}
	for _, a := range addrs {
		if err := checkFree(a); err != nil {
			return &exitError{code: exitUnavailable, err: fmt.Errorf("up: %w (is another synod up running? choose --listen / --base-port / --metrics-base-port)", err)}
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	if c.Bool("secure") {
		if cfg.Secure, err = prepareSecure(cfg.Dir); err != nil {
			return err
		}
	}

	// SIGHUP too: closing the terminal should stop the cluster cleanly,
	// not kill up and leave the children to the parent-death signal.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// The supervisor gives every child its own process group, so a
	// terminal's Ctrl-C reaches only up, which stops them in order; and on
	// Linux a parent-death signal, so not even a SIGKILLed up leaves a
	// replica behind. By the time the group closes, every child is reaped.
	group := proc.NewGroup()
	defer group.Close(cfg.Grace)
	run := newUpRun(cfg, group, exe, proc.NewLines(c.App.ErrWriter, cfg.LogFormat == "json"), c.App.Writer, lg)
	defer run.close()
	for _, spec := range cfg.children() {
		if err := run.start(spec); err != nil {
			stopAll(run.kids, cfg.Grace, sigs, lg)
			return err
		}
	}

	ctx, cancel := context.WithCancel(c.Context)
	var bg sync.WaitGroup
	news := make(chan memberNews)
	bg.Add(2)
	go func() {
		defer bg.Done()
		announce(ctx, cfg, c.App.Writer, lg)
	}()
	go func() {
		defer bg.Done()
		watchMembersVia(ctx, cfg.Listen, cfg.dial, memberPoll, news)
	}()
	stop := func() {
		cancel()
		bg.Wait()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()

	for run.running > 0 {
		select {
		case sig := <-sigs:
			lg.Info().Str("signal", sig.String()).Msg("stopping the cluster")
			stop()
			stopAll(run.kids, cfg.Grace, sigs, lg)
			lg.Info().Msg("every child stopped")
			return nil
		case p := <-run.exited:
			run.childExited(p, time.Now())
		case n := <-news:
			run.memberNews(n, time.Now())
		case now := <-tick.C:
			run.settle(now)
		}
	}
	stop()
	return fmt.Errorf("up: every child process exited; see the log above")
}

// checkFree reports whether addr can be listened on right now.
func checkFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return ln.Close()
}

// describeExit says how a child ended, for the log.
func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String()
	}
	return err.Error()
}

// stopAll stops the proxy, then the replicas together: SIGTERM, then SIGKILL
// for any still running after grace. A further signal from the user kills
// whatever still runs at once.
func stopAll(kids []*proc.Proc, grace time.Duration, sigs <-chan os.Signal, lg zerolog.Logger) {
	var proxies, nodes []*proc.Proc
	for _, p := range kids {
		if p.Name == "proxy" {
			proxies = append(proxies, p)
		} else {
			nodes = append(nodes, p)
		}
	}
	hurry := false
	for _, group := range [][]*proc.Proc{proxies, nodes} {
		hurry = stopGroup(group, grace, hurry, sigs, lg)
	}
}

// stopGroup stops the children of group together and reports whether the
// user asked to hurry. Signalling errors mean a child has just exited:
// nothing left to stop.
func stopGroup(group []*proc.Proc, grace time.Duration, hurry bool, sigs <-chan os.Signal, lg zerolog.Logger) bool {
	if len(group) == 0 {
		return hurry
	}
	kill := func() {
		for _, p := range group {
			if p.Running() {
				lg.Warn().Str("child", p.Name).Msg("killing")
				p.Signal(syscall.SIGKILL)
			}
		}
	}
	if hurry {
		kill()
	} else {
		for _, p := range group {
			p.Signal(syscall.SIGTERM)
		}
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for _, p := range group {
		select {
		case <-p.Exited():
		case <-timer.C:
			lg.Warn().Dur("grace", grace).Msg("children did not stop in time")
			kill()
			<-p.Exited()
		case <-sigs:
			lg.Warn().Msg("second signal: killing every child now")
			hurry = true
			kill()
			<-p.Exited()
		}
	}
	for _, p := range group {
		<-p.Exited()
	}
	return hurry
}

// announce waits until the proxy reports a master, then prints the banner
// on w. It gives up quietly when ctx ends.
func announce(ctx context.Context, cfg upConfig, w io.Writer, lg zerolog.Logger) {
	start := time.Now()
	warnAt := 10 * time.Second
	for {
		master, err := proxyMaster(ctx, cfg.dial, cfg.Listen)
		if err == nil && master != 0 {
			fmt.Fprint(w, banner(cfg, master, cliName()))
			return
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= warnAt {
			warnAt += 10 * time.Second
			ev := lg.Warn().Str("proxy", cfg.Listen)
			if err != nil {
				ev = ev.Err(err)
			}
			ev.Msg("still waiting for the proxy to report a master")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// proxyMaster asks the proxy at addr for the cluster's status and returns
// the master's id, 0 if there is none yet.
func proxyMaster(ctx context.Context, dial upDialer, addr string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cl, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	nodes, err := cl.Status(ctx)
	if err != nil {
		return 0, err
	}
	for _, n := range nodes {
		if n.Role == "master" {
			return n.ID, nil
		}
	}
	return 0, nil
}

// cliName is how the user ran this binary, for the hints in the banner.
func cliName() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "synod"
}

// banner is what `synod up` prints once the cluster serves.
func banner(cfg upConfig, master uint64, cli string) string {
	host, port, _ := net.SplitHostPort(cfg.Listen)
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	addrFlag := ""
	if cfg.Listen != "127.0.0.1:7000" {
		addrFlag = " --addr " + net.JoinHostPort(host, port)
	}
	if cfg.Secure != nil {
		return cfg.Secure.banner(cfg, master, cli)
	}
	var b strings.Builder
	var reps []string
	for _, id := range cfg.ids() {
		reps = append(reps, fmt.Sprintf("%d=%s", id, cfg.replicaAddr(id)))
	}
	fmt.Fprintf(&b, "synod is up: proxy on %s, %d replicas (master: %d), data in %s\n", cfg.Listen, len(reps), master, cfg.Dir)
	fmt.Fprintf(&b, "  replicas  %s\n", strings.Join(reps, " "))
	fmt.Fprintf(&b, "  try       printf 'PUT hello world\\nGET hello\\nQUIT\\n' | nc %s %s\n", host, port)
	fmt.Fprintf(&b, "  or        nc %s %s    (then type HELP)\n", host, port)
	fmt.Fprintf(&b, "  cli       %s put%s hello world && %s get%s hello\n", cli, addrFlag, cli, addrFlag)
	fmt.Fprintf(&b, "  redis     redis-cli -h %s -p %s    (Redis's protocol, on the same port)\n", host, port)
	b.WriteString(cfg.metricsBanner())
	fmt.Fprintf(&b, "Ctrl-C stops the cluster; `up` again on the same --dir resumes its data.\n")
	return b.String()
}
