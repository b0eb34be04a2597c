package node

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"synod/wire"
)

// startInProcess runs a 3-replica cluster inside the test process (real TCP
// on loopback, real fsync in temporary directories).
func startInProcess(b *testing.B, tweak func(*Config)) (map[uint64]*Node, func()) {
	peers := map[uint64]string{}
	var lns []net.Listener
	for id := uint64(1); id <= 3; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns = append(lns, ln)
		peers[id] = ln.Addr().String()
	}
	for _, ln := range lns {
		ln.Close()
	}
	nodes := map[uint64]*Node{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id := uint64(1); id <= 3; id++ {
		cfg := DefaultConfig()
		cfg.ID, cfg.Listen, cfg.Peers, cfg.Dir = id, peers[id], peers, b.TempDir()
		if tweak != nil {
			tweak(&cfg)
		}
		n, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes[id] = n
		wg.Add(1)
		go func() { defer wg.Done(); n.Run(ctx) }()
	}
	return nodes, func() { cancel(); wg.Wait() }
}

func waitMaster(nodes map[uint64]*Node) *Node {
	for {
		for _, n := range nodes {
			if si := n.soft.Load(); si.Role.String() == "master" && si.Ready {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialN(b *testing.B, n *Node, count int) []*wire.Client {
	conns := make([]*wire.Client, count)
	for i := range conns {
		c, err := wire.DialClient(context.Background(), n.Addr().String(), wire.Hello{ClusterID: "synod", Role: wire.RoleProxy}, wire.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// BenchmarkMasterReads measures linearizable reads served by the master
// with 64 concurrent clients, with the lease and with a quorum heartbeat
// round per batch of reads.
func BenchmarkMasterReads(b *testing.B) {
	for _, tc := range []struct {
		name  string
		lease time.Duration
	}{{"lease", 400 * time.Millisecond}, {"nolease", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			nodes, stop := startInProcess(b, func(c *Config) { c.Lease = tc.lease })
			defer stop()
			master := waitMaster(nodes)
			conns := dialN(b, master, 8)
			ctx := context.Background()
			if rep, err := conns[0].Do(ctx, &wire.Request{Op: wire.OpPut, Key: "k", Value: make([]byte, 100)}); err != nil || rep.Code != wire.CodeOK {
				b.Fatalf("put: %v %+v", err, rep)
			}
			const clients = 64
			per := b.N/clients + 1
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl := conns[c%len(conns)]
					for i := 0; i < per; i++ {
						rep, err := cl.Do(ctx, &wire.Request{Op: wire.OpGet, Key: "k", Consistency: wire.Linearizable})
						if err != nil || rep.Code != wire.CodeOK {
							b.Errorf("get: %v %+v", err, rep)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*clients)/time.Since(start).Seconds(), "reads/s")
		})
	}
}

// BenchmarkMasterWrites measures writes/s with 64 concurrent clients sending
// 100-byte PUTs straight to the master, and the fsyncs/s behind them.
func BenchmarkMasterWrites(b *testing.B) {
	nodes, stop := startInProcess(b, nil)
	defer stop()
	master := waitMaster(nodes)
	ctx := context.Background()
	const clients = 64
	conns := dialN(b, master, 8)
	value := make([]byte, 100)
	fsyncs0 := uint64(0)
	for _, n := range nodes {
		fsyncs0 += n.stats.fsyncs.Load()
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N/clients + 1
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := conns[c%len(conns)]
			for i := 0; i < per; i++ {
				req := wire.Request{Op: wire.OpPut, Key: fmt.Sprintf("k%d", (c*per+i)%1000), Value: value,
					ClientID: uint64(c + 1), Seq: uint64(i + 1)}
				rep, err := cl.Do(ctx, &req)
				if err != nil || rep.Code != wire.CodeOK {
					b.Errorf("put: %v %+v", err, rep)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	fsyncs := uint64(0)
	for _, n := range nodes {
		fsyncs += n.stats.fsyncs.Load()
	}
	b.ReportMetric(float64(per*clients)/elapsed, "writes/s")
	b.ReportMetric(float64(master.stats.fsyncs.Load())/elapsed, "master-fsyncs/s")
	b.ReportMetric(float64(fsyncs-fsyncs0)/elapsed/3, "fsyncs/s/replica")
}
