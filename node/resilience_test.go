package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire"
	"synod/wire/line"
)

func dialLine(ctx context.Context, addr string) (*line.Client, error) {
	return line.Dial(ctx, addr, line.Options{})
}

// dirSize returns the bytes of regular files under dir.
func dirSize(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	})
	return total
}

// writeN sends n PUTs over `clients` writers, cycling over `keys` keys.
func writeN(ctx context.Context, t *testing.T, c *cluster.Cluster, master uint64, n, clients, keys int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		w := newWriter(c, uint64(1000+i))
		w.master = master
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.close()
			for j := i; j < n; j += clients {
				rep, err := w.do(ctx, put(fmt.Sprintf("snap/%d", j%keys), fmt.Sprintf("value-%d", j)))
				if err != nil || rep.Code != wire.CodeOK {
					t.Errorf("write %d: %v %+v", j, err, rep)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// catchUp keeps one follower down while total writes go by, restarts it and
// waits until every replica applied them all with equal digests.
func catchUp(t *testing.T, flags []string, total, clients, keys int) (c *cluster.Cluster, master, down uint64) {
	t.Helper()
	c = cluster.New(t, cluster.Options{NodeFlags: flags})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	down = master%3 + 1
	c.Nodes[down].Kill()
	writeN(ctx, t, c, master, total, clients, keys)
	c.Nodes[down].Start()
	if _, err := c.WaitConverged(ctx, uint64(total)); err != nil {
		t.Fatal(err)
	}
	return c, master, down
}

func TestSnapshotCatchUp(t *testing.T) {
	flags := append([]string{"--snapshot-every=2000", "--snapshot-window=200", "--snapshot-chunk=4096", "--segment-bytes=131072", "--test-cut-snapshot-once"}, fastFlags...)
	const total = 30000
	c, master, down := catchUp(t, flags, total, 32, 1000)
	out := c.Nodes[down].Output()
	if !strings.Contains(out, "installed a snapshot from a peer") {
		t.Fatalf("replica %d caught up without a snapshot transfer", down)
	}
	if !strings.Contains(out, "snapshot transfer interrupted; resuming") {
		t.Fatalf("the snapshot transfer to replica %d was not cut and resumed", down)
	}
	for id := range c.Nodes {
		t.Logf("replica %d data directory after %d writes over 1,000 keys: %d KiB (log %d KiB, snapshots %d KiB)", id, total,
			dirSize(c.NodeDir(id))/1024, dirSize(filepath.Join(c.NodeDir(id), "log"))/1024, dirSize(filepath.Join(c.NodeDir(id), "snap"))/1024)
	}
	// Bounded: the log keeps about a window behind the newest snapshot,
	// far less than 30,000 writes of ~20 bytes with their headers.
	if size := dirSize(filepath.Join(c.NodeDir(master), "log")); size > 1<<20 {
		t.Errorf("master's log is %d bytes after compaction", size)
	}
}

// rejoinAfterLoss writes, makes one follower lose its state with lose, lets
// it rejoin, then kills the master and checks no acknowledged write is lost.
func rejoinAfterLoss(t *testing.T, lose func(c *cluster.Cluster, id uint64), extraFlags ...string) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := master%3 + 1
	stop := make(chan struct{})
	go func() {
		time.Sleep(700 * time.Millisecond)
		c.Nodes[victim].Kill()
		lose(c, victim)
		p := c.Nodes[victim]
		p.Args = append(p.Args, extraFlags...)
		p.Start()
		time.Sleep(1500 * time.Millisecond)
		close(stop)
	}()
	acked := appendTokens(ctx, t, c, 8, stop)
	if _, err := c.WaitConverged(ctx, 1); err != nil {
		t.Fatal(err)
	}
	out := c.Nodes[victim].Output()
	if !strings.Contains(out, "rejoining as a learner") {
		t.Fatalf("replica %d did not rejoin as a learner", victim)
	}
	// It votes again once the master ran a phase 1 without it: the first
	// "votes" is from the cluster's start.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(c.Nodes[victim].Output(), "this replica votes") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("learner %d was never promoted to voter", victim)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Kill the master: the rejoined replica and the other follower must
	// still hold every acknowledged write.
	c.Nodes[master].Kill()
	next, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("master %d killed; replica %d took over", master, next)
	checkTokens(ctx, t, c, victim, acked)
}

func TestWipedFollowerRejoins(t *testing.T) {
	rejoinAfterLoss(t, func(c *cluster.Cluster, id uint64) {
		if err := os.RemoveAll(c.NodeDir(id)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRepairedFollowerRejoins(t *testing.T) {
	rejoinAfterLoss(t, func(c *cluster.Cluster, id uint64) {
		segs, _ := filepath.Glob(filepath.Join(c.NodeDir(id), "log", "*.log"))
		if len(segs) == 0 {
			t.Fatal("no log segment")
		}
		data, err := os.ReadFile(segs[0])
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/3] ^= 0x20 // corrupt an early, acknowledged batch
		if err := os.WriteFile(segs[0], data, 0o644); err != nil {
			t.Fatal(err)
		}
	}, "--repair")
}

// TestHandoverOnSIGTERM stops the master with SIGTERM while 16 clients write
// through the proxy: no client sees an error, and the longest stall is short.
func TestHandoverOnSIGTERM(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	px := c.StartProxy(t)
	var mu sync.Mutex
	var longest time.Duration
	var errs []error
	writes := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := dialLine(ctx, px.Addr)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			defer cl.Close()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				_, err := cl.Put(ctx, fmt.Sprintf("h/%d", i), []byte(fmt.Sprintf("%d", j)))
				d := time.Since(start)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					writes++
				}
				if d > longest {
					longest = d
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(time.Second)
	mu.Lock()
	longest = 0 // measure the stall around the handover only
	mu.Unlock()
	if err := c.Nodes[master].Stop(); err != nil {
		t.Errorf("master exit after SIGTERM: %v", err)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d client errors during the handover, first: %v", len(errs), errs[0])
	}
	t.Logf("SIGTERM of master %d under 16 writing clients: %d writes, 0 errors, longest write stall %v", master, writes, longest)
	if !strings.Contains(c.Nodes[master].Output(), "handing mastership over") {
		t.Fatalf("the master did not hand over")
	}
}

// TestFullDisk fills the master's disk (a small tmpfs of its own): it stops
// leading, writes go on through the others, and once space returns it
// rejoins and catches up.
func TestFullDisk(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags, Mount: func(dir string) error {
		return exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).Run()
	}})
	if c.MountErr != nil {
		t.Skipf("cannot mount a small tmpfs for the data directories (needs root): %v", c.MountErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	px := c.StartProxy(t)
	cl, err := dialLine(ctx, px.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, "before", []byte("full")); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(c.NodeDir(master), "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=1M", "count=64").Run() // fills it: dd fails at ENOSPC
	for i := 0; i < 50; i++ {
		if _, err := cl.Put(ctx, fmt.Sprintf("during/%d", i), []byte("x")); err != nil {
			t.Fatalf("write %d while the master's disk is full: %v", i, err)
		}
	}
	if v, _, err := cl.Get(ctx, "before", 0); err != nil || string(v) != "full" {
		t.Fatalf("read while a disk is full: %q %v", v, err)
	}
	sts := c.Statuses(ctx)
	if st := sts[master]; st.Role != wire.NodeDegraded {
		t.Fatalf("replica %d with a full disk reports role %q, want degraded", master, st.Role)
	}
	os.Remove(filler)
	if _, err := c.WaitConverged(ctx, 51); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Nodes[master].Output(), "disk works again") {
		t.Fatal("the replica did not report its recovery")
	}
}
