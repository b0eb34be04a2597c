package proxy

// This file owns the end-to-end tests of read balancing (issue 19): a
// Server in the test process in front of three real replica processes
// (internal/cluster), loaded by closed-loop readers on goroutines of their
// own, each with one connection and one read in flight. They check shares
// of reads only, never latencies: equal followers share evenly at every
// load, a follower slowed by 5 ms (the node's test hook --test-read-delay)
// gets few, and one that recovers gets its share back within 2 s.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire/line"
)

// balanceRig is a cluster of three replicas and an in-process proxy with
// ten keys written, for the balance tests.
type balanceRig struct {
	c         *cluster.Cluster
	s         *Server
	addr      string
	master    uint64
	followers []uint64
}

func newBalanceRig(t *testing.T) *balanceRig {
	t.Helper()
	// The replicas' default timeouts, not fastFlags: a 200 ms election
	// timeout on a machine this loaded may elect a new master mid-window,
	// and the shares would be counted against the wrong roles.
	c := cluster.New(t, cluster.Options{})
	s, addr := startServer(t, c.Addrs, func(cfg *Config) {
		cfg.ClusterID = c.ID
		cfg.Poll = 50 * time.Millisecond
	})
	rc := dialRaw(t, addr)
	r := &balanceRig{c: c, s: s, addr: addr, master: waitMaster(t, rc)}
	for i := range 10 {
		rc.send(fmt.Sprintf("PUT k/%d value-%d\r\n", i, i))
		rc.okIndex()
	}
	for id := range c.Addrs {
		if id != r.master {
			r.followers = append(r.followers, id)
		}
	}
	slices.Sort(r.followers)
	return r
}

// readers starts n closed-loop clients reading k/0 … k/9 (linearizable)
// through the proxy at addr until stop is called. stop waits for them and
// fails the test on any client error.
func readers(t *testing.T, addr string, n int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := line.Dial(ctx, addr, line.Options{})
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for j := 0; ctx.Err() == nil; j++ {
				if _, _, err := cl.Get(ctx, fmt.Sprintf("k/%d", (i+j)%10), 0); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("reader %d: %w", i, err)
					return
				}
			}
		}()
	}
	return func() {
		t.Helper()
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
		}
	}
}

// window counts the reads each replica answers over d.
func (r *balanceRig) window(d time.Duration) (map[uint64]uint64, uint64) {
	before := readCounts(r.s)
	time.Sleep(d)
	return delta(readCounts(r.s), before)
}

// share is replica id's part of the followers' reads in counts d.
func (r *balanceRig) share(d map[uint64]uint64, id uint64) float64 {
	var served uint64
	for _, f := range r.followers {
		served += d[f]
	}
	if served == 0 {
		return 0
	}
	return float64(d[id]) / float64(served)
}

// masterNow returns the master the proxy knows now, 0 if none.
func (r *balanceRig) masterNow() uint64 {
	for _, n := range r.s.Nodes() {
		if n.Role == "master" {
			return n.ID
		}
	}
	return 0
}

// restart restarts replica id with its read answers delayed by delay (0:
// not delayed), and waits until the proxy takes it for a follower that may
// serve reads again.
func (r *balanceRig) restart(t *testing.T, id uint64, delay time.Duration) {
	t.Helper()
	p := r.c.Nodes[id]
	p.Kill()
	p.Args = slices.DeleteFunc(p.Args, func(a string) bool { return len(a) > 18 && a[:18] == "--test-read-delay=" })
	if delay > 0 {
		p.Args = append(p.Args, "--test-read-delay="+delay.String())
	}
	p.Start()
	eventually(t, fmt.Sprintf("replica %d back as a follower", id), func() bool {
		for _, n := range r.s.Nodes() {
			if n.ID == id && n.Role == "follower" && n.Extra["ejected"] == "" {
				return true
			}
		}
		return false
	})
}

// readWindow is how long each test counts reads. Under -race on two
// loaded cores one client still makes over a thousand reads in it; a
// window of 2 s was now and then half covered by one follower process
// starved of CPU, which the balancer rightly avoids while it lasts.
const readWindow = 3 * time.Second

// TestReadBalance: equal followers share the reads within 35-65 % at every
// load, one client reading in a loop included, and the master serves
// almost none. A single client has no requests in flight to compare, so
// only latency can tell the followers apart there: this is where an early
// slow sample used to send one follower every read (issue 19: 25,373
// against 1 in 5 s).
func TestReadBalance(t *testing.T) {
	r := newBalanceRig(t)
	tests := []struct {
		name    string
		clients int
	}{
		{"one client", 1},
		{"two clients", 2},
		{"four clients", 4},
		{"sixteen clients", 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop := readers(t, r.addr, tt.clients)
			defer stop()
			d, total := r.window(readWindow)
			if m := r.masterNow(); m != r.master {
				t.Skipf("the master changed from %d to %d during the window (a loaded machine); shares not comparable", r.master, m)
			}
			t.Logf("%d clients: reads per replica %v (master %d), averages %s", tt.clients, d, r.master, r.ewmas())
			if total < 100 {
				t.Fatalf("only %d reads in %v", total, readWindow)
			}
			if share := float64(d[r.master]) / float64(total); share >= 0.10 {
				t.Errorf("master served %.1f%% of reads, want under 10%%", 100*share)
			}
			// Within 35-65 % (issue 19's bound): tighter would fail on
			// noise, a machine shared with other work makes one follower's
			// process slower for seconds at a time.
			for _, f := range r.followers {
				if share := r.share(d, f); share < 0.35 || share > 0.65 {
					t.Errorf("follower %d served %.1f%% of the followers' reads (%v), want 35-65%%", f, 100*share, d)
				}
			}
		})
	}
}

// TestReadBalanceSlowFollower: a follower whose read answers are delayed
// by 5 ms gets under 10 % of the reads; restarted without the delay (the
// proxy still holding its slow estimate) it has its share back, 35-65 % of
// the followers' reads, in a window that starts 2 s after it serves again.
func TestReadBalanceSlowFollower(t *testing.T) {
	r := newBalanceRig(t)
	slow := r.followers[0]
	tests := []struct {
		name    string
		clients int
	}{
		{"one client", 1},
		{"four clients", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop := readers(t, r.addr, tt.clients)
			defer stop()
			r.restart(t, slow, 5*time.Millisecond)
			time.Sleep(300 * time.Millisecond) // the first few reads show it slow
			d, total := r.window(readWindow)
			t.Logf("follower %d slowed by 5 ms: reads per replica %v (master %d), averages %s", slow, d, r.master, r.ewmas())
			if total < 100 {
				t.Fatalf("only %d reads in %v", total, readWindow)
			}
			if share := float64(d[slow]) / float64(total); share >= 0.10 {
				t.Errorf("slowed follower served %.1f%% of reads, want under 10%%", 100*share)
			}

			r.restart(t, slow, 0)
			time.Sleep(2 * time.Second)
			d, _ = r.window(readWindow)
			if m := r.masterNow(); m != r.master {
				t.Skipf("the master changed from %d to %d (a loaded machine); shares not comparable", r.master, m)
			}
			t.Logf("follower %d recovered: from 2 s on, reads per replica %v, averages %s", slow, d, r.ewmas())
			if share := r.share(d, slow); share < 0.35 || share > 0.65 {
				t.Errorf("recovered follower served %.1f%% of the followers' reads from 2 s on (%v), want 35-65%%", 100*share, d)
			}
		})
	}
}

// ewmas returns the proxy's latency average, requests in flight and
// ejections per replica, and its read retries, from STATS.
func (r *balanceRig) ewmas() string {
	lat, ej, infl := map[uint64]string{}, map[uint64]string{}, map[uint64]string{}
	retries := ""
	for _, st := range r.s.Stats() {
		var id uint64
		if _, err := fmt.Sscanf(st.Name, "node.%d.ewma_ms", &id); err == nil {
			lat[id] = st.Value
		}
		if _, err := fmt.Sscanf(st.Name, "node.%d.ejections", &id); err == nil {
			ej[id] = st.Value
		}
		if _, err := fmt.Sscanf(st.Name, "node.%d.inflight", &id); err == nil {
			infl[id] = st.Value
		}
		if st.Name == "retries" {
			retries = st.Value
		}
	}
	return fmt.Sprintf("%v ms, ejections %v, retries %s ", lat, ej, retries)
}

// readCounts returns how many reads each replica answered.
func readCounts(s *Server) map[uint64]uint64 {
	out := map[uint64]uint64{}
	for _, rp := range s.rt.reps {
		out[rp.id] = rp.reads.Load()
	}
	return out
}

func delta(after, before map[uint64]uint64) (map[uint64]uint64, uint64) {
	d := map[uint64]uint64{}
	var total uint64
	for id, n := range after {
		d[id] = n - before[id]
		total += d[id]
	}
	return d, total
}
