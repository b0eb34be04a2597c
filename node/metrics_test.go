package node

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"synod/paxos"
	"synod/wire"
)

// metricValue returns the value of family name's sample whose labels
// include labels (name, value pairs): a counter's or gauge's value, a
// histogram's count; -1 if there is none.
func metricValue(t *testing.T, n *Node, name string, labels ...string) float64 {
	t.Helper()
	fams, err := n.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !labelIs(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// startNodes runs a three-replica cluster in the test process until the
// test ends.
func startNodes(t *testing.T) map[uint64]*Node {
	t.Helper()
	peers := map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers[id] = ln.Addr().String()
		ln.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	nodes := map[uint64]*Node{}
	for id := uint64(1); id <= 3; id++ {
		cfg := DefaultConfig()
		cfg.ID, cfg.Listen, cfg.Peers, cfg.Dir = id, peers[id], peers, t.TempDir()
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
		wg.Add(1)
		go func() { defer wg.Done(); n.Run(ctx) }()
	}
	return nodes
}

func TestReplicaMetrics(t *testing.T) {
	nodes := startNodes(t)
	var master *Node
	deadline := time.Now().Add(30 * time.Second)
	for master == nil {
		for _, n := range nodes {
			if si := n.soft.Load(); si.Role == paxos.Master && si.Ready {
				master = n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no master")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cl, err := wire.DialClient(context.Background(), master.Addr().String(), wire.Hello{ClusterID: "synod", Role: wire.RoleProxy}, wire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const writes = 20
	for i := range writes {
		req := wire.Request{Op: wire.OpPut, Key: fmt.Sprintf("k%d", i), Value: []byte("v"), ClientID: 7, Seq: uint64(i + 1)}
		if rep, err := cl.Do(context.Background(), &req); err != nil || rep.Code != wire.CodeOK {
			t.Fatalf("put: %v %+v", err, rep)
		}
	}
	// Every replica applies the writes, is ready and says so.
	for id, n := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for metricValue(t, n, "synod_replica_applied_index") < writes || metricValue(t, n, "synod_replica_ready") != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d: applied %v ready %v (%v)", id, metricValue(t, n, "synod_replica_applied_index"),
					metricValue(t, n, "synod_replica_ready"), n.Ready())
			}
			time.Sleep(10 * time.Millisecond)
		}
		role := "follower"
		if n == master {
			role = "master"
		}
		for _, tc := range []struct {
			name   string
			labels []string
			ok     func(float64) bool
			want   string
		}{
			{"synod_replica_role", []string{"role", role}, func(v float64) bool { return v == 1 }, "1"},
			{"synod_replica_master_id", nil, func(v float64) bool { return v == float64(master.cfg.ID) }, fmt.Sprint(master.cfg.ID)},
			{"synod_replica_peer_up", nil, func(v float64) bool { return v == 1 }, "1 for each peer"},
			{"synod_replica_wal_fsync_duration_seconds", nil, func(v float64) bool { return v > 0 }, "fsyncs timed"},
			{"synod_replica_wal_fsync_bytes", nil, func(v float64) bool { return v > 0 }, "fsyncs sized"},
			{"synod_replica_log_bytes", nil, func(v float64) bool { return v > 0 }, "a log on disk"},
			{"synod_replica_disk_size_bytes", nil, func(v float64) bool { return v > 0 }, "a disk"},
			{"synod_replica_commit_index", nil, func(v float64) bool { return v >= writes }, "the writes chosen"},
			{"synod_replica_ballot_round", nil, func(v float64) bool { return v > 0 }, "a ballot"},
			{"synod_replica_voter", nil, func(v float64) bool { return v == 1 }, "a voter"},
		} {
			labels := tc.labels
			if tc.name == "synod_replica_peer_up" {
				for pid := range nodes {
					if pid != id {
						if v := metricValue(t, n, tc.name, "peer", fmt.Sprint(pid)); v != 1 {
							t.Errorf("replica %d: peer_up{peer=%d} = %v", id, pid, v)
						}
					}
				}
				continue
			}
			if v := metricValue(t, n, tc.name, labels...); !tc.ok(v) {
				t.Errorf("replica %d: %s%v = %v, want %s", id, tc.name, labels, v, tc.want)
			}
		}
	}
	if v := metricValue(t, master, "synod_replica_proposals_total"); v < 1 {
		t.Errorf("master: proposals_total %v", v)
	}
	if v := metricValue(t, master, "synod_replica_proposed_commands_total"); v < writes {
		t.Errorf("master: proposed_commands_total %v, want %d", v, writes)
	}
	if v := metricValue(t, master, "synod_replica_proposal_commands"); v < 1 {
		t.Errorf("master: no batch observed")
	}
	if v := metricValue(t, master, "synod_replica_master_last_contact_seconds"); v != 0 {
		t.Errorf("master: last contact %v, want 0", v)
	}
}

// TestReady checks each reason a replica is not ready, on a node that is
// not running (its state set by hand).
func TestReady(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.Listen, cfg.Peers, cfg.Dir = 1, "127.0.0.1:0", map[uint64]string{1: "127.0.0.1:1", 2: "127.0.0.1:2", 3: "127.0.0.1:3"}, t.TempDir()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { n.ln.Close(); n.store.close() }()
	// A clock that started a while ago, so "ticks ago" never reaches
	// before its start (-1 is "never heard").
	n.met.clock = &clock{start: sinceBoot() - 10*time.Second, rate: 1}
	now := func() int64 { return int64(n.met.clock.elapsed() / cfg.TickInterval) }
	for _, tc := range []struct {
		name      string
		soft      paxos.SoftState
		degraded  bool
		contact   int64 // ticks ago; -1: never
		commit    uint64
		wantError string // "" for ready
	}{
		{"no master", paxos.SoftState{Role: paxos.Follower}, false, -1, 0, "no master known"},
		{"candidate", paxos.SoftState{Role: paxos.Candidate}, false, -1, 0, "no master known"},
		{"master not serving yet", paxos.SoftState{Role: paxos.Master, Master: 1}, false, -1, 0, "not serving yet"},
		{"master", paxos.SoftState{Role: paxos.Master, Master: 1, Ready: true}, false, -1, 0, ""},
		{"never heard the master", paxos.SoftState{Role: paxos.Follower, Master: 2}, false, -1, 0, "nothing heard from master 2"},
		{"heard the master lately", paxos.SoftState{Role: paxos.Follower, Master: 2}, false, 1, 0, ""},
		{"master silent too long", paxos.SoftState{Role: paxos.Follower, Master: 2}, false, int64(2 * cfg.ElectionTimeout / cfg.TickInterval), 0, "nothing heard from master 2"},
		{"catching up", paxos.SoftState{Role: paxos.Follower, Master: 2}, false, 1, ReadyLag + 1, "catching up"},
		{"just within the lag", paxos.SoftState{Role: paxos.Follower, Master: 2}, false, 1, ReadyLag, ""},
		{"degraded", paxos.SoftState{Role: paxos.Master, Master: 1, Ready: true}, true, -1, 0, "storage failing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := tc.soft
			n.soft.Store(&ss)
			n.degraded.Store(tc.degraded)
			n.met.lastMaster.Store(-1)
			if tc.contact >= 0 {
				n.met.lastMaster.Store(now() - tc.contact)
			}
			n.commitIndex = atomicMax{}
			n.commitIndex.raise(tc.commit)
			err := n.Ready()
			switch {
			case tc.wantError == "" && err != nil:
				t.Fatalf("Ready = %v, want ready", err)
			case tc.wantError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantError)):
				t.Fatalf("Ready = %v, want %q", err, tc.wantError)
			}
			if want := float64(map[bool]int{true: 1}[tc.wantError == ""]); metricValue(t, n, "synod_replica_ready") != want {
				t.Fatalf("synod_replica_ready = %v, want %v", metricValue(t, n, "synod_replica_ready"), want)
			}
		})
	}
}
