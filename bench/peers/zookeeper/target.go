package main

// This file owns ZooKeeper as the bench's Target: one zk.Conn (one
// session, one TCP connection) per closed-loop client, routed to the
// leader or spread over the servers, and how its errors are named. A
// conn's operations run on the calling client goroutine; zk.Conn runs its
// own send and receive goroutines, and a pipelined client's operations
// each run on a goroutine of their own (bench.StartOnGoroutine), which
// zk.Conn multiplexes onto its one connection.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/urfave/cli/v2"

	"synod/bench"
	"synod/bench/benchcli"
)

// errConsistency is returned for a read level this bench does not map to
// one of ZooKeeper's.
var errConsistency = errors.New("zookeeper: unknown consistency: want plain (or session, stale, serializable) or sync (or linearizable)")

// sessionTimeout is every client's session timeout; the servers clamp it
// to [2, 20] ticks, 4 to 40 s.
const sessionTimeout = 10 * time.Second

// How clients are spread over the servers.
const (
	routeAuto   = "auto"   // leader for writes only, spread when reading, all when killing
	routeLeader = "leader" // every client to the leader
	routeSpread = "spread" // client i to server i mod n
	routeAll    = "all"    // every client knows every server and picks one
)

// parseLevel maps a --consistency to whether reads sync first.
func parseLevel(s string) (sync bool, err error) {
	switch strings.ToLower(s) {
	case "plain", "session", "stale", "serializable":
		return false, nil
	case "sync", "linearizable":
		return true, nil
	}
	return false, fmt.Errorf("%w: %q", errConsistency, s)
}

// target is ZooKeeper through github.com/go-zookeeper/zk.
type target struct {
	addrs  []string
	leader int
	route  string
	sync   bool
}

// newTarget picks the routing as the etcd peer does: writes go to the
// leader, as synod's proxy sends them to the master (a follower would
// forward them); reads are spread over all servers, which serve them
// locally; with a leader kill every client knows every server, or the
// clients of the dead one could never recover.
func newTarget(addrs []string, route string, w bench.Workload) (*target, error) {
	t := &target{addrs: addrs, route: route}
	var err error
	if t.sync, err = parseLevel(w.Consistency); err != nil {
		return nil, err
	}
	if t.route == routeAuto {
		switch {
		case w.KillMasterAt > 0:
			t.route = routeAll
		case w.Reads == 0:
			t.route = routeLeader
		default:
			t.route = routeSpread
		}
	}
	switch t.route {
	case routeLeader:
		if t.leader, err = leaderOf(addrs, nil); err != nil {
			return nil, err
		}
	case routeSpread, routeAll:
	default:
		return nil, fmt.Errorf("%w: --route %q: want auto, leader, spread or all", benchcli.ErrUsage, route)
	}
	return t, nil
}

func (t *target) via() string {
	reads := "plain reads"
	if t.sync {
		reads = "sync before every read"
	}
	switch t.route {
	case routeLeader:
		return "go-zookeeper/zk to the leader, " + reads
	case routeSpread:
		return fmt.Sprintf("go-zookeeper/zk, client i to server i mod %d, %s", len(t.addrs), reads)
	}
	return "go-zookeeper/zk over all servers, " + reads
}

// quiet drops the zk client's log lines (every connect and reconnect).
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// dial opens a session with one of addrs and waits until it has one.
func dial(addrs []string) (*zk.Conn, error) {
	c, events, err := zk.Connect(addrs, sessionTimeout, zk.WithLogger(quiet{}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, errors.New("zookeeper: connection closed before a session")
			}
			if ev.State == zk.StateHasSession {
				return c, nil
			}
		case <-timeout.C:
			c.Close()
			return nil, fmt.Errorf("zookeeper: no session with %v within 10 s", addrs)
		}
	}
}

func (t *target) Connect(ctx context.Context, i int) (bench.Conn, error) {
	addrs := t.addrs
	switch t.route {
	case routeLeader:
		addrs = addrs[t.leader : t.leader+1]
	case routeSpread:
		addrs = addrs[i%len(addrs) : i%len(addrs)+1]
	}
	c, err := dial(addrs)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: client %d: %w", i, err)
	}
	return &conn{c: c, sync: t.sync}, nil
}

// conn is one client's session. zk.Conn takes no context: an operation
// waits for its reply or for the connection to fail, so the workload's
// --op-timeout is not enforced on it (a reply after it is counted as a
// timeout); the session timeout (10 s) bounds a dead server.
type conn struct {
	c    *zk.Conn
	sync bool
}

// path is the node of key: keys are flat names, so one level under /.
func path(key string) string { return "/" + key }

// put writes value to node p, creating it if it does not exist.
func put(c *zk.Conn, p string, value []byte) error {
	_, err := c.Set(p, value, -1)
	if !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	_, err = c.Create(p, value, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) { // created meanwhile by another client
		_, err = c.Set(p, value, -1)
	}
	return err
}

func (c *conn) Put(ctx context.Context, key string, value []byte) error {
	return classify(ctx, put(c.c, path(key), value))
}

func (c *conn) Get(ctx context.Context, key string) error {
	p := path(key)
	if c.sync {
		if _, err := c.c.Sync(p); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return classify(ctx, err)
		}
	}
	_, _, err := c.c.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		err = nil
	}
	return classify(ctx, err)
}

// Start runs op on a goroutine of its own: zk.Conn is safe for concurrent
// use and keeps every caller's request in flight on its one connection.
func (c *conn) Start(ctx context.Context, op bench.Op, done func(error)) {
	bench.StartOnGoroutine(ctx, c, op, done)
}

func (c *conn) Close() error {
	c.c.Close()
	return nil
}

// classify names an error the way the synod targets do.
func classify(ctx context.Context, err error) error {
	switch {
	case err == nil && ctx.Err() == nil:
		return nil
	case ctx.Err() != nil:
		if err == nil {
			err = ctx.Err()
		}
		return &bench.OpError{Kind: "timeout", Err: err}
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrClosing):
		return &bench.OpError{Kind: "conn", Err: err}
	case errors.Is(err, zk.ErrSessionExpired):
		return &bench.OpError{Kind: "session_expired", Err: err}
	}
	return &bench.OpError{Kind: "error", Err: err}
}

func zkSystem() benchcli.System {
	return benchcli.System{
		Name:        "zookeeper",
		DefaultAddr: "127.0.0.1:2181",
		AddrUsage:   "client addresses of a running ensemble, comma-separated (ignored with --spawn)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "route", Value: routeAuto, Usage: "which servers the clients talk to: auto, leader, spread or all", EnvVars: []string{"ZKBENCH_ROUTE"}},
			&cli.StringFlag{Name: "java", Value: defaultJava, Usage: "with --spawn: the java binary", EnvVars: []string{"ZKBENCH_JAVA"}},
			&cli.DurationFlag{Name: "jit-warmup", Value: defaultJITWarmup, Usage: "with --spawn: drive the fresh ensemble this long with writes and reads of its own before the run, so the JVM has compiled what it serves (0: no)", EnvVars: []string{"ZKBENCH_JIT_WARMUP"}},
			&cli.StringFlag{Name: "classpath", Value: defaultClasspath, Usage: "with --spawn: the servers' classpath (Debian's zookeeper package)", EnvVars: []string{"ZKBENCH_CLASSPATH"}},
		},
		Spawn: func(ctx context.Context, c *cli.Context, n int, w bench.Workload) (*benchcli.Spawned, error) {
			e, err := startEnsemble(ctx, n, c.Bool("keep"), javaOptions{Java: c.String("java"), Classpath: c.String("classpath")})
			if err != nil {
				return nil, err
			}
			if err := warmJIT(e.clientAddrs(), c.Duration("jit-warmup")); err != nil {
				e.Close()
				return nil, err
			}
			t, err := newTarget(e.clientAddrs(), c.String("route"), w)
			if err != nil {
				e.Close()
				return nil, err
			}
			return &benchcli.Spawned{Target: t, Via: t.via(), Cluster: e, Close: e.Close,
				Where: fmt.Sprintf("%d ZooKeeper servers in %s", n, e.dir)}, nil
		},
		Connect: func(ctx context.Context, c *cli.Context, addr string, w bench.Workload) (bench.Target, string, error) {
			t, err := newTarget(strings.Split(addr, ","), c.String("route"), w)
			if err != nil {
				return nil, "", err
			}
			return t, t.via(), nil
		},
	}
}
