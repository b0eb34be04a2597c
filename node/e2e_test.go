package node_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire"
)

// fastFlags shorten the timeouts so failover tests take seconds.
var fastFlags = []string{"--heartbeat=20ms", "--election-timeout=200ms"}

// writer sends writes to whichever replica is master, following not-master
// hints and retrying under the same (client id, sequence), as a proxy does.
type writer struct {
	c      *cluster.Cluster
	client uint64
	seq    atomic.Uint64
	mu     sync.Mutex
	conns  map[uint64]*wire.Client
	master uint64
}

func newWriter(c *cluster.Cluster, client uint64) *writer {
	return &writer{c: c, client: client, conns: map[uint64]*wire.Client{}, master: 1}
}

func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cl := range w.conns {
		cl.Close()
	}
}

func (w *writer) conn(ctx context.Context, id uint64) (*wire.Client, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cl := w.conns[id]; cl != nil {
		select {
		case <-cl.Done():
		default:
			return cl, nil
		}
	}
	cl, err := w.c.Dial(ctx, id)
	if err != nil {
		return nil, err
	}
	w.conns[id] = cl
	return cl, nil
}

// do runs req until a replica answers it for good, trying each replica in
// turn while there is no master. It returns the final reply.
func (w *writer) do(ctx context.Context, req wire.Request) (wire.Reply, error) {
	req.ClientID = w.client
	req.Seq = w.seq.Add(1)
	for {
		w.mu.Lock()
		target := w.master
		w.mu.Unlock()
		cl, err := w.conn(ctx, target)
		var rep wire.Reply
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			rep, err = cl.Do(cctx, &req)
			cancel()
		}
		if err == nil && rep.Code != wire.CodeNotMaster && rep.Code != wire.CodeUnavailable && rep.Code != wire.CodeBusy {
			return rep, nil
		}
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		w.mu.Lock()
		if err == nil && rep.MasterID != 0 && rep.MasterID != target {
			w.master = rep.MasterID
		} else {
			w.master = target%uint64(len(w.c.Nodes)) + 1
			time.Sleep(20 * time.Millisecond)
		}
		w.mu.Unlock()
	}
}

func put(key, value string) wire.Request {
	return wire.Request{Op: wire.OpPut, Key: key, Value: []byte(value)}
}

func TestWritesConverge(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 8, 125
	var wg sync.WaitGroup
	var last atomic.Uint64
	for i := 0; i < writers; i++ {
		w := newWriter(c, uint64(i+1))
		defer w.close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perWriter; j++ {
				rep, err := w.do(ctx, put(fmt.Sprintf("k/%d/%d", w.client, j), fmt.Sprintf("v%d", j)))
				if err != nil || rep.Code != wire.CodeOK {
					t.Errorf("write: %v %+v", err, rep)
					return
				}
				for {
					cur := last.Load()
					if rep.Index <= cur || last.CompareAndSwap(cur, rep.Index) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	if last.Load() != writers*perWriter {
		t.Fatalf("highest index %d, want %d", last.Load(), writers*perWriter)
	}
	if _, err := c.WaitConverged(ctx, writers*perWriter); err != nil {
		t.Fatal(err)
	}
	// The log is readable text: grep finds a key.
	out, err := exec.Command("grep", "-rl", "k/3/77", filepath.Join(c.NodeDir(2), "log")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ".log") {
		t.Fatalf("grep for a written key in the log found nothing: %v %s", err, out)
	}
	// SIGTERM is a clean exit.
	for id, p := range c.Nodes {
		if err := p.Stop(); err != nil {
			t.Errorf("replica %d: SIGTERM gave %v, want a clean exit", id, err)
		}
	}
}

// appendTokens appends unique tokens to a few keys while f runs, and returns
// the tokens each write was acknowledged for.
func appendTokens(ctx context.Context, t *testing.T, c *cluster.Cluster, clients int, stop <-chan struct{}) map[string][]string {
	var mu sync.Mutex
	acked := map[string][]string{}
	var wg sync.WaitGroup
	// A write still retrying when the run stops has an unknown outcome: it
	// is not counted as acknowledged.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-stop; cancel() }()
	for i := 0; i < clients; i++ {
		w := newWriter(c, uint64(100+i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.close()
			key := fmt.Sprintf("log/%d", w.client%4)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("<%d.%d>", w.client, j)
				rep, err := w.do(ctx, wire.Request{Op: wire.OpAppend, Key: key, Value: []byte(tok)})
				if err != nil || ctx.Err() != nil {
					return
				}
				if rep.Code != wire.CodeOK {
					t.Errorf("append %s: %+v", tok, rep)
					return
				}
				mu.Lock()
				acked[key] = append(acked[key], tok)
				mu.Unlock()
			}
		}()
	}
	<-stop
	wg.Wait()
	return acked
}

// checkTokens reads every key from replica id and checks each acknowledged
// token appears exactly once.
func checkTokens(ctx context.Context, t *testing.T, c *cluster.Cluster, id uint64, acked map[string][]string) {
	t.Helper()
	cl, err := c.Dial(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	total := 0
	for key, toks := range acked {
		// A replica refuses a linearizable read it cannot serve yet (no
		// master confirmed the read index: one being elected, or busy on a
		// loaded machine); a proxy would send it again, and so does this.
		var rep wire.Reply
		for {
			rep, err = cl.Do(ctx, &wire.Request{Op: wire.OpGet, Key: key, Consistency: wire.Linearizable})
			if err != nil || !rep.NotApplied || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil || rep.Code != wire.CodeOK {
			t.Fatalf("get %s: %v %+v", key, err, rep)
		}
		for _, tok := range toks {
			if n := bytes.Count(rep.Value, []byte(tok)); n != 1 {
				t.Errorf("key %s: acknowledged token %s appears %d times", key, tok, n)
			}
		}
		total += len(toks)
	}
	t.Logf("%d acknowledged appends checked on replica %d", total, id)
}

func TestMasterKillFailover(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		time.Sleep(500 * time.Millisecond)
		c.Nodes[master].Kill()
		time.Sleep(1500 * time.Millisecond)
		close(stop)
	}()
	acked := appendTokens(ctx, t, c, 8, stop)
	next, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next == master {
		t.Fatalf("replica %d is still master after kill -9", master)
	}
	c.Nodes[master].Start()
	if _, err := c.WaitConverged(ctx, 1); err != nil {
		t.Fatal(err)
	}
	checkTokens(ctx, t, c, master, acked)
}

func TestKillAllAndRestart(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		time.Sleep(time.Second)
		for _, p := range c.Nodes {
			p.Kill()
		}
		close(stop)
	}()
	acked := appendTokens(ctx, t, c, 8, stop)
	for _, p := range c.Nodes {
		p.Start()
	}
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for id := range c.Nodes {
		checkTokens(ctx, t, c, id, acked)
	}
}

func TestLaggingReplicaCatchesUp(t *testing.T) {
	catchUp(t, fastFlags, 5000, 16, 100)
}

func TestCorruptionStopsNode(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	w := newWriter(c, 7)
	defer w.close()
	for j := 0; j < 200; j++ {
		if _, err := w.do(ctx, put(fmt.Sprintf("c/%d", j), "value")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitConverged(ctx, 200); err != nil {
		t.Fatal(err)
	}
	victim := uint64(3)
	c.Nodes[victim].Kill()
	segs, _ := filepath.Glob(filepath.Join(c.NodeDir(victim), "log", "*.log"))
	if len(segs) == 0 {
		t.Fatal("no log segment")
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte in the middle of an early record: acknowledged data.
	i := bytes.Index(data, []byte("c/5 "))
	if i < 0 {
		i = len(data) / 3
	}
	data[i] ^= 0x01
	if err := os.WriteFile(segs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Nodes[victim].Start()
	err, exited := c.Nodes[victim].Wait(20 * time.Second)
	if !exited || err == nil {
		t.Fatalf("node started on a corrupt log (exited=%v err=%v)", exited, err)
	}
	out := c.Nodes[victim].Output()
	if !strings.Contains(out, filepath.Base(segs[0])) || !strings.Contains(out, "line") {
		t.Fatalf("the error does not name the file and line:\n%s", out[max(0, len(out)-2000):])
	}
}
