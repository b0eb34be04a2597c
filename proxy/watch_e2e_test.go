package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"synod/filestore"
	"synod/internal/cluster"
	"synod/internal/watchcheck"
	"synod/wire/line"
)

// watchConn is one client connection carrying several watches, read with
// the line package's stream reader on its own goroutine.
type watchConn struct {
	nc       net.Conn
	wr       *line.WatchReader
	watchers []*watchcheck.Watcher // in the order their WATCHes were sent
	byID     map[uint64]*watchcheck.Watcher
	mu       sync.Mutex // guards the watchers' Through and Events, and started
	started  int
	done     chan struct{} // closed when the goroutine reading it returns
}

// dialWatches opens a connection and sends a WATCH for each of ws, each
// from its From (0: from now), and returns once every one is answered.
func dialWatches(t testing.TB, addr string, ws []*watchcheck.Watcher) (*watchConn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	wc := &watchConn{nc: nc, wr: line.NewWatchReader(bufio.NewReader(nc), line.Options{}), watchers: ws, byID: map[uint64]*watchcheck.Watcher{},
		done: make(chan struct{})}
	var b []byte
	for _, w := range ws {
		req := line.Request{Cmd: line.CmdWatch, Key: w.Key, WatchPrefix: w.Prefix, From: w.From}
		if w.Through > 0 {
			req.From = w.Through + 1 // a reconnection resumes after what it saw
		}
		if b, err = line.AppendRequest(b, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return nil, err
	}
	for wc.started < len(ws) {
		if err := wc.next(); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return wc, nil
}

// next reads one line of the stream and records it.
func (wc *watchConn) next() error {
	m, err := wc.wr.Next()
	if err != nil {
		return err
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	switch m.Kind {
	case line.WatchStarted:
		w := wc.watchers[wc.started]
		wc.started++
		wc.byID[m.ID] = w
		if w.Through == 0 {
			w.From = m.Index
		} else if m.Index != w.Through+1 {
			return fmt.Errorf("%s resumed from %d, asked %d", w.Name, m.Index, w.Through+1)
		}
		w.Through = max(w.Through, m.Index-1)
		return nil
	case line.WatchEvent:
		w := wc.byID[m.ID]
		if w == nil {
			return fmt.Errorf("an event of unknown watch %d", m.ID)
		}
		w.Events = append(w.Events, m.Event)
		w.Through = m.Index
	case line.WatchProgress:
		w := wc.byID[m.ID]
		if w == nil {
			return fmt.Errorf("a progress mark of unknown watch %d", m.ID)
		}
		w.Through = max(w.Through, m.Index)
	default:
		return fmt.Errorf("unexpected %+v", m)
	}
	return nil
}

// through is the lowest index all of wc's watchers are known complete to.
func (wc *watchConn) through() uint64 {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	low := ^uint64(0)
	for _, w := range wc.watchers {
		low = min(low, w.Through)
	}
	return low
}

// watchPatterns are the overlapping keys and prefixes of the test's
// watchers over keys k/<a>/<b>.
func watchPattern(i int) (key string, prefix bool) {
	switch i % 4 {
	case 0:
		return "", true // every key
	case 1:
		return "k/", true
	case 2:
		return fmt.Sprintf("k/%d/", i%5), true
	}
	return fmt.Sprintf("k/%d/%d", i%5, (i/4)%5), false
}

// watchWriteLoad runs clients that write puts, appends, CAS and deletes over
// the keys k/<a>/<b> until stop closes, and returns how many writes were
// acknowledged. Errors of a write's outcome (CONFLICT, NOT_FOUND) are the
// workload's; a broken connection is dialled again.
func watchWriteLoad(t testing.TB, addr string, clients, pad int, stop <-chan struct{}, wg *sync.WaitGroup, acked *atomic.Int64) {
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 17))
			ctx := context.Background()
			var cl *line.Client
			defer func() {
				if cl != nil {
					cl.Close()
				}
			}()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if cl == nil {
					var err error
					if cl, err = line.Dial(ctx, addr, line.Options{}); err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				key := fmt.Sprintf("k/%d/%d", rnd.IntN(5), rnd.IntN(5))
				val := []byte(fmt.Sprintf("c%d-%d%s", i, j, strings.Repeat(".", pad)))
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				var err error
				switch r := rnd.IntN(10); {
				case r < 5:
					_, err = cl.Put(wctx, key, val)
				case r < 7:
					_, err = cl.Append(wctx, key, val)
				case r < 8:
					_, err = cl.CAS(wctx, key, uint64(rnd.IntN(50)), val)
				default:
					_, err = cl.Del(wctx, key)
				}
				cancel()
				var se *line.ServerError
				switch {
				case err == nil:
					acked.Add(1)
				case errors.As(err, &se):
				default:
					cl.Close()
					cl = nil
				}
			}
		}()
	}
}

// TestWatchEndToEnd: 100 watchers on overlapping keys and prefixes, four
// to a connection, some from the first index and some from now, while 16
// clients write through the proxy and the master, then a follower, are
// killed (each restarted before the next kill, so a quorum remains); a
// fifth of the connections are dropped after the master's kill and
// watch again FROM where they stopped. Afterwards every watcher has seen
// exactly the changes of its keys in the log of the replica never killed,
// in index order, with no gap and none twice.
func TestWatchEndToEnd(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: append(slices.Clone(fastFlags), "--snapshot-every=10000000")})
	p := c.StartProxy(t, "--poll=50ms", "--watch-progress=300ms")
	rc := dialRaw(t, p.Addr)
	master := waitMaster(t, rc)

	const conns, perConn = 25, 4
	var all []*watchcheck.Watcher
	groups := make([][]*watchcheck.Watcher, conns)
	for i := range conns * perConn {
		key, prefix := watchPattern(i)
		w := &watchcheck.Watcher{Name: fmt.Sprintf("watcher %d", i), Key: key, Prefix: prefix}
		if i%3 == 0 {
			w.From = 1
		}
		all = append(all, w)
		groups[i/perConn] = append(groups[i/perConn], w)
	}

	// The watchers: each connection's reader runs until its connection
	// closes; the even ones start before any write, the odd ones once
	// writes are under way (from now, or from 1).
	var rwg sync.WaitGroup
	var cmu sync.Mutex
	open := make([]*watchConn, conns)
	readers := make(chan error, 2*conns)
	run := func(i int) {
		wc, err := dialWatches(t, p.Addr, groups[i])
		if err != nil {
			t.Fatalf("connection %d: watch: %v", i, err)
		}
		cmu.Lock()
		open[i] = wc
		cmu.Unlock()
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			defer close(wc.done)
			for {
				if err := wc.next(); err != nil {
					readers <- err
					return
				}
			}
		}()
	}
	for i := 0; i < conns; i += 2 {
		run(i)
	}
	stop := make(chan struct{})
	var wwg sync.WaitGroup
	var acked atomic.Int64
	watchWriteLoad(t, p.Addr, 16, 0, stop, &wwg, &acked)
	time.Sleep(500 * time.Millisecond)
	for i := 1; i < conns; i += 2 {
		run(i)
	}
	time.Sleep(time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Kill the master; drop a fifth of the watch connections and watch
	// again from where each watcher stopped.
	c.Nodes[master].Kill()
	next := master
	eventually(t, "a new master", func() bool {
		next = waitMaster(t, rc)
		return next != master
	})
	for i := 0; i < conns; i += 5 {
		cmu.Lock()
		wc := open[i]
		cmu.Unlock()
		wc.nc.Close()
		<-wc.done // its reader is done with the watchers before they watch again
	}
	for i := 0; i < conns; i += 5 {
		run(i)
	}
	time.Sleep(time.Second)
	c.Nodes[master].Start()
	caughtUp(t, c, master, next)
	// Kill a follower (one that served watches), then restart it.
	var follower uint64
	for id := range c.Nodes {
		if id != next && id != master {
			follower = id
		}
	}
	c.Nodes[follower].Kill()
	time.Sleep(time.Second)
	c.Nodes[follower].Start()
	caughtUp(t, c, follower, next)
	close(stop)
	wwg.Wait()
	if _, err := c.WaitConverged(ctx, 0); err != nil {
		t.Fatal(err)
	}
	sts := c.Statuses(ctx)
	final := sts[next].Applied
	eventually(t, "every watcher to reach the last index", func() bool {
		cmu.Lock()
		defer cmu.Unlock()
		for _, wc := range open {
			if wc.through() < final {
				return false
			}
		}
		return true
	})
	st := rc.stats()
	cmu.Lock()
	for _, wc := range open {
		wc.nc.Close()
	}
	cmu.Unlock()
	rwg.Wait()
	close(readers)
	for err := range readers {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("a watch connection failed: %v", err)
		}
	}
	// Closed connections give their watches back.
	eventually(t, "no watch left open", func() bool { return statInt(t, rc.stats(), "watches") == 0 })

	// The truth: the log of the replica that was never killed.
	if err := c.Nodes[next].Stop(); err != nil {
		t.Fatal(err)
	}
	c.Nodes[next].Wait(30 * time.Second)
	changes, applied, err := watchcheck.Changes(c.NodeDir(next), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if applied != final {
		t.Fatalf("the log of replica %d replays %d commands, the replicas applied %d", next, applied, final)
	}
	events := 0
	for _, w := range all {
		if err := watchcheck.Check(w, changes); err != nil {
			t.Error(err)
		}
		events += len(w.Events)
	}
	total := acked.Load()
	t.Logf("%d watchers saw %d events (of %d changes in %d commands, %d writes acknowledged); proxy: watch_polls=%s watch_events=%s watch_moves=%s retries=%s",
		len(all), events, len(changes), final, total, st["watch_polls"], st["watch_events"], st["watch_moves"], st["retries"])
	t.Logf("watch polls answered by replica 1/2/3: %s/%s/%s (first master %d, killed; then master %d; follower %d killed)",
		st["node.1.watch_polls"], st["node.2.watch_polls"], st["node.3.watch_polls"], master, next, follower)
}

// TestWatchCompacted: a WATCH FROM an index older than every replica's
// history is refused ERR COMPACTED with the oldest index left, and a watch
// from that index sees every change since.
func TestWatchCompacted(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: append(slices.Clone(fastFlags), "--watch-history=10")})
	p := c.StartProxy(t, "--poll=50ms")
	rc := dialRaw(t, p.Addr)
	waitMaster(t, rc)
	var last uint64
	for i := range 30 {
		rc.send(fmt.Sprintf("PUT k/%d v%d\r\n", i%3, i))
		last = rc.okIndex()
	}
	// Every replica keeps the last 10 changes, once it applied them all.
	eventually(t, "every replica to apply the writes", func() bool {
		for _, st := range c.Statuses(context.Background()) {
			if st.Applied < last {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.Watch(ctx, line.Request{Key: "k/", WatchPrefix: true, From: 1})
	oldest, ok := line.IsCompacted(err)
	if !ok || oldest != last-9 {
		t.Fatalf("WATCH FROM 1 after %d writes, history 10: %v; want ERR COMPACTED %d", last, err, last-9)
	}
	w, err := cl.Watch(ctx, line.Request{Key: "k/", WatchPrefix: true, From: oldest})
	if err != nil {
		t.Fatal(err)
	}
	for want := oldest; want <= last; want++ {
		m, err := w.Next()
		if err != nil || m.Kind != line.WatchEvent || m.Index != want || string(m.Event.Value) != "v"+strconv.FormatUint(want-last+29, 10) {
			t.Fatalf("event %d: %+v, %v", want, m, err)
		}
	}
	st := rc.stats()
	t.Logf("ERR COMPACTED %d; proxy: watch_moves=%s", oldest, st["watch_moves"])
}

// TestWatchSlowWatcherCut: a watcher that stops reading is cut with
// CANCELED ... SLOW, and the writes go on meanwhile; what it had been sent
// is still readable, then the CANCELED line, and a watch FROM the index
// it names continues the stream without a gap or a repeat.
func TestWatchSlowWatcherCut(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: append(slices.Clone(fastFlags), "--snapshot-every=10000000")})
	p := c.StartProxy(t, "--poll=50ms", "--watch-buffer=65536", "--watch-stall=300ms")
	rc := dialRaw(t, p.Addr)
	master := waitMaster(t, rc)

	// The stalled watcher: a small receive buffer, never read until the cut.
	nc, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stalled := &watchcheck.Watcher{Name: "stalled", Prefix: true, From: 1}
	if _, err := nc.Write([]byte("WATCH * FROM 1\r\n")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wwg sync.WaitGroup
	var acked atomic.Int64
	watchWriteLoad(t, p.Addr, 4, 16<<10, stop, &wwg, &acked)
	eventually(t, "the stalled watcher's cut", func() bool { return statInt(t, rc.stats(), "watch_cuts") >= 1 })
	cutAt := time.Now()
	before := acked.Load()
	// What the stalled watcher was sent before the cut is still there
	// (read it before the proxy's write timeout gives up on it), then the
	// CANCELED line.
	wr := line.NewWatchReader(bufio.NewReader(nc), line.Options{})
	var resume uint64
	for resume == 0 {
		m, err := wr.Next()
		if err != nil {
			t.Fatalf("reading the stalled watch %v after its cut: %v", time.Since(cutAt), err)
		}
		switch m.Kind {
		case line.WatchEvent:
			stalled.Events = append(stalled.Events, m.Event)
			stalled.Through = m.Index
		case line.WatchCanceled:
			if m.Code != line.CodeSlow {
				t.Fatalf("cut with %+v, want SLOW", m)
			}
			t.Logf("CANCELED %d %d %s %s", m.ID, m.Index, m.Code, m.Msg)
			resume = m.Index
		}
	}
	// The writes went on after the cut.
	rc.send("PUT after/cut yes\r\n")
	rc.okIndex()
	close(stop)
	wwg.Wait()
	after := acked.Load()
	if resume != stalled.Through+1 {
		t.Fatalf("CANCELED says resume from %d after the last event at %d", resume, stalled.Through)
	}
	t.Logf("cut after %d events; %d writes acknowledged by the cut, %d by the end", len(stalled.Events), before, after)
	// Resume: the rest of the stream, from where the cut left it.
	ctx := context.Background()
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	w, err := cl.Watch(ctx, line.Request{WatchPrefix: true, From: resume})
	if err != nil {
		t.Fatal(err)
	}
	var final uint64
	for _, st := range c.Statuses(ctx) {
		final = max(final, st.Applied)
	}
	for stalled.Through < final {
		m, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind == line.WatchEvent {
			stalled.Events = append(stalled.Events, m.Event)
		}
		stalled.Through = max(stalled.Through, m.Index)
	}
	if err := c.Nodes[master].Stop(); err != nil {
		t.Fatal(err)
	}
	c.Nodes[master].Wait(30 * time.Second)
	changes, _, err := watchcheck.Changes(c.NodeDir(master), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := watchcheck.Check(stalled, changes); err != nil {
		t.Fatal(err)
	}
}

// caughtUp waits until replica id, restarted, has applied what the master
// had applied when it was asked.
func caughtUp(t *testing.T, c *cluster.Cluster, id, master uint64) {
	t.Helper()
	ctx := context.Background()
	target := c.Statuses(ctx)[master].Applied
	eventually(t, fmt.Sprintf("replica %d to catch up to %d", id, target), func() bool {
		st, ok := c.Statuses(ctx)[id]
		return ok && st.Applied >= target
	})
}

// TestWatchLimits: the bounds on watches per connection and per proxy
// answer ERR BUSY and name the bound; an ended watch gives its place
// back; a bad WATCH or UNWATCH is refused and the connection stays in
// sync.
func TestWatchLimits(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms", "--max-watches=2", "--max-watches-total=3")
	rc := dialRaw(t, p.Addr)
	waitMaster(t, rc)
	a, b := dialRaw(t, p.Addr), dialRaw(t, p.Addr)
	tests := []struct {
		conn *rawConn
		req  string
		want string // the reply's start
	}{
		{a, "WATCH k", "WATCHING 1 "},
		{a, "WATCH k/*", "WATCHING 2 "},
		{a, "WATCH x", "ERR BUSY too many watches on this connection (2)"},
		{a, "UNWATCH 1", "UNWATCHED 1"},
		{a, "UNWATCH 1", "ERR BAD_REQUEST no watch 1 on this connection"},
		{a, "WATCH x", "WATCHING 3 "}, // a refused WATCH took no id
		{b, "WATCH y", "WATCHING 1 "},
		{b, "WATCH z", "ERR BUSY too many watches on this proxy (3)"},
		{b, "WATCH a b", "ERR BAD_REQUEST usage: WATCH <key>|<prefix>* [FROM <index>] [PREV]"},
		{b, "WATCH k FROM 0", "ERR BAD_REQUEST FROM index \"0\" is not a positive decimal number"},
		{b, "UNWATCH 1", "UNWATCHED 1"},
		{b, "WATCH z", "WATCHING 2 "},
		{b, "PING", "PONG"},
	}
	for _, tt := range tests {
		tt.conn.send(tt.req + "\r\n")
		for {
			l := tt.conn.line()
			if strings.HasPrefix(l, "PROGRESS ") {
				continue // an idle watch's marks come between the replies
			}
			if !strings.HasPrefix(l, tt.want) {
				t.Fatalf("%s: %q, want %q", tt.req, l, tt.want)
			}
			break
		}
	}
	if n := statInt(t, rc.stats(), "watches"); n != 3 {
		t.Fatalf("STATS watches = %d, want 3", n)
	}
}
