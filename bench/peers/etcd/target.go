package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"synod/bench"
	"synod/bench/benchcli"
)

// errConsistency is returned for a read level etcd does not offer.
var errConsistency = errors.New("etcd: unknown consistency: want linearizable, or serializable (stale)")

// How clients are spread over the members.
const (
	routeAuto   = "auto"   // leader for writes only, spread when reading, all when killing
	routeLeader = "leader" // every client to the leader
	routeSpread = "spread" // client i to member i mod n
	routeAll    = "all"    // every client to all members, clientv3 balancing
)

// target is etcd through clientv3, one client (one gRPC connection) per
// closed-loop client.
type target struct {
	endpoints    []string
	tls          *tls.Config // nil: plaintext
	leader       int
	route        string
	serializable bool
}

// newTarget picks the routing: writes go to the leader, as synod's proxy
// sends them to the master; reads are spread over all members, as etcd
// serves them from any; with a leader kill every client knows every member,
// or the clients of the dead one could never recover.
func newTarget(ctx context.Context, endpoints []string, tlsCfg *tls.Config, route string, w bench.Workload) (*target, error) {
	t := &target{endpoints: endpoints, tls: tlsCfg, route: route}
	switch strings.ToLower(w.Consistency) {
	case "linearizable":
	case "serializable", "stale":
		t.serializable = true
	default:
		return nil, fmt.Errorf("%w: %q", errConsistency, w.Consistency)
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
		i, err := leaderOf(ctx, endpoints, tlsCfg, nil)
		if err != nil {
			return nil, err
		}
		t.leader = i
	case routeSpread, routeAll:
	default:
		return nil, fmt.Errorf("%w: --route %q: want auto, leader, spread or all", benchcli.ErrUsage, route)
	}
	return t, nil
}

func (t *target) via() string {
	var s string
	switch t.route {
	case routeLeader:
		s = "clientv3 to the leader"
	case routeSpread:
		s = "clientv3, client i to member i mod 3"
	default:
		s = "clientv3 balancing over all members"
	}
	if t.tls != nil {
		s += ", TLS on every link"
	}
	return s
}

func (t *target) Connect(ctx context.Context, i int) (bench.Conn, error) {
	eps := t.endpoints
	switch t.route {
	case routeLeader:
		eps = eps[t.leader : t.leader+1]
	case routeSpread:
		eps = eps[i%len(eps) : i%len(eps)+1]
	}
	cl, err := newClient(eps, t.tls)
	if err != nil {
		return nil, fmt.Errorf("etcd: client %d: %w", i, err)
	}
	return &conn{cl: cl, serializable: t.serializable}, nil
}

type conn struct {
	cl           *clientv3.Client
	serializable bool
}

func (c *conn) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.cl.Put(ctx, key, string(value))
	return classify(ctx, err)
}

func (c *conn) Get(ctx context.Context, key string) error {
	var err error
	if c.serializable {
		_, err = c.cl.Get(ctx, key, clientv3.WithSerializable())
	} else {
		_, err = c.cl.Get(ctx, key)
	}
	return classify(ctx, err)
}

// Start runs op on a goroutine of its own: a clientv3.Client is safe for
// concurrent use and multiplexes its callers' requests onto its one gRPC
// connection.
func (c *conn) Start(ctx context.Context, op bench.Op, done func(error)) {
	bench.StartOnGoroutine(ctx, c, op, done)
}

func (c *conn) Close() error { return c.cl.Close() }

// classify names an error the way the synod targets do.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &bench.OpError{Kind: "timeout", Err: err}
	}
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.DeadlineExceeded {
			return &bench.OpError{Kind: "timeout", Err: err}
		}
		return &bench.OpError{Kind: strings.ToLower(s.Code().String()), Err: err}
	}
	return &bench.OpError{Kind: "error", Err: err}
}

func etcdSystem() benchcli.System {
	return benchcli.System{
		Name:        "etcd",
		DefaultAddr: "http://127.0.0.1:2379",
		AddrUsage:   "client URLs of a running etcd cluster, comma-separated (ignored with --spawn)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "route", Value: routeAuto, Usage: "which members the clients talk to: auto, leader, spread or all", EnvVars: []string{"ETCDBENCH_ROUTE"}},
			&cli.BoolFlag{Name: "secure", Usage: "with --spawn: mutual TLS on every client and peer link, with certificates of the run's own", EnvVars: []string{"ETCDBENCH_SECURE"}},
		},
		Spawn: func(ctx context.Context, c *cli.Context, n int, w bench.Workload) (*benchcli.Spawned, error) {
			cl, err := startCluster(ctx, n, c.Bool("keep"), c.Bool("secure"))
			if err != nil {
				return nil, err
			}
			t, err := newTarget(ctx, cl.endpoints, cl.tls, c.String("route"), w)
			if err != nil {
				cl.Close()
				return nil, err
			}
			return &benchcli.Spawned{Target: t, Via: t.via(), Cluster: cl, Close: cl.Close,
				Where: fmt.Sprintf("%d etcd members in %s", n, cl.dir)}, nil
		},
		Connect: func(ctx context.Context, c *cli.Context, addr string, w bench.Workload) (bench.Target, string, error) {
			t, err := newTarget(ctx, strings.Split(addr, ","), nil, c.String("route"), w)
			if err != nil {
				return nil, "", err
			}
			return t, t.via(), nil
		},
	}
}
