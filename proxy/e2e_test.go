package proxy

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire/line"
)

// fastFlags shorten the replicas' timeouts so failovers take a fraction of
// a second.
var fastFlags = []string{"--heartbeat=20ms", "--election-timeout=200ms"}

// waitMaster waits until the proxy at c (raw connection) reports a master
// and returns its id.
func waitMaster(t *testing.T, c *rawConn) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		nodes := c.status()
		for _, n := range nodes {
			if n.Role == "master" {
				return n.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no master: %+v", nodes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status sends STATUS and parses the reply.
func (c *rawConn) status() []line.NodeStatus {
	c.t.Helper()
	c.send("STATUS\r\n")
	head := c.expect("NODES ")
	n, err := strconv.Atoi(strings.TrimPrefix(head, "NODES "))
	if err != nil {
		c.t.Fatalf("bad %q", head)
	}
	out := make([]line.NodeStatus, n)
	for i := range out {
		l := c.line()
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "id":
				out[i].ID, _ = strconv.ParseUint(v, 10, 64)
			case "addr":
				out[i].Addr = v
			case "role":
				out[i].Role = v
			case "ballot":
				out[i].Ballot = v
			case "commit":
				out[i].Commit, _ = strconv.ParseUint(v, 10, 64)
			case "applied":
				out[i].Applied, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	return out
}

// okIndex reads an "OK <index>" reply.
func (c *rawConn) okIndex() uint64 {
	c.t.Helper()
	l := c.expect("OK ")
	i, err := strconv.ParseUint(strings.TrimPrefix(l, "OK "), 10, 64)
	if err != nil || i == 0 {
		c.t.Fatalf("bad write reply %q", l)
	}
	return i
}

// value reads a VALUE reply and returns the bytes and the version.
func (c *rawConn) value() ([]byte, uint64) {
	c.t.Helper()
	l := c.expect("VALUE ")
	var n int
	var ver uint64
	if _, err := fmt.Sscanf(l, "VALUE %d %d", &n, &ver); err != nil {
		c.t.Fatalf("bad %q: %v", l, err)
	}
	return c.block(n), ver
}

func (c *rawConn) expectValue(want string, wantVer uint64) {
	c.t.Helper()
	v, ver := c.value()
	if string(v) != want || (wantVer != 0 && ver != wantVer) {
		c.t.Fatalf("VALUE %q version %d, want %q version %d", v, ver, want, wantVer)
	}
}

// TestCommandsEndToEnd runs every command of the line protocol from a raw
// TCP connection to a `synod proxy` process in front of three replicas, and
// reads the writes back through a second proxy.
func TestCommandsEndToEnd(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms")
	rc := dialRaw(t, p.Addr)
	waitMaster(t, rc)

	rc.send("PUT greeting hello world\r\n")
	i1 := rc.okIndex()
	rc.send("GET greeting\r\n")
	rc.expectValue("hello world", i1)
	rc.send("APPEND greeting !\r\n")
	i2 := rc.okIndex()
	rc.send("GET greeting\r\nSTAT greeting\r\n")
	rc.expectValue("hello world!", i2)
	rc.expect(fmt.Sprintf("STAT 12 %d", i2))
	rc.send(fmt.Sprintf("CAS greeting %d nope\r\n", i1))
	rc.expect(fmt.Sprintf("ERR CONFLICT version %d", i2))
	rc.send(fmt.Sprintf("CAS greeting %d howdy\r\n", i2))
	i3 := rc.okIndex()
	rc.send("CAS fresh 0 new\r\nCAS fresh 0 again\r\n")
	i4 := rc.okIndex()
	rc.expect(fmt.Sprintf("ERR CONFLICT version %d", i4))
	if !(i1 < i2 && i2 < i3 && i3 < i4) {
		t.Fatalf("indexes not increasing: %d %d %d %d", i1, i2, i3, i4)
	}

	// Binary values survive the round trip: every byte value, CR LF inside.
	bin := make([]byte, 0, 600)
	for i := range 512 {
		bin = append(bin, byte(i))
	}
	bin = append(bin, "\r\n$3\r\nEND\r\n"...)
	rc.send(fmt.Sprintf("PUT dir/bin $%d\r\n%s\r\n", len(bin), bin))
	ib := rc.okIndex()
	rc.send("GET dir/bin\r\n")
	got, ver := rc.value()
	if !bytes.Equal(got, bin) || ver != ib {
		t.Fatalf("binary value came back as %q version %d", got, ver)
	}
	rc.send("PUT dir/empty $0\r\n\r\nGET dir/empty\r\n")
	ie := rc.okIndex()
	rc.expectValue("", ie)

	rc.send("LIST\r\n")
	rc.expect("KEYS 4")
	var keys []string
	for range 4 {
		keys = append(keys, rc.line())
	}
	if strings.Join(keys, " ") != "dir/bin dir/empty fresh greeting" {
		t.Fatalf("LIST = %v", keys)
	}
	rc.send("LIST dir/\r\nLIST nothing/\r\n")
	rc.expect("KEYS 2")
	rc.expect("dir/bin")
	rc.expect("dir/empty")
	rc.expect("KEYS 0")

	rc.send("DEL greeting\r\nGET greeting\r\nDEL greeting\r\nSTAT greeting\r\n")
	rc.okIndex()
	rc.expect("NOT_FOUND")
	rc.expect("NOT_FOUND")
	rc.expect("NOT_FOUND")

	// Consistency levels; a session read sees the connection's write.
	rc.send("CONSISTENCY session\r\nPUT s one\r\nGET s\r\n")
	rc.expect("OK")
	is := rc.okIndex()
	rc.expectValue("one", is)
	rc.send(fmt.Sprintf("GET s MIN %d\r\n", is))
	rc.expectValue("one", is)
	rc.send("CONSISTENCY stale\r\nGET s\r\n")
	rc.expect("OK")
	if l := rc.line(); !strings.HasPrefix(l, "VALUE ") && l != "NOT_FOUND" {
		t.Fatalf("stale GET: %q", l)
	} else if strings.HasPrefix(l, "VALUE ") {
		rc.block(3)
	}
	rc.send("CONSISTENCY LINEARIZABLE\r\n")
	rc.expect("OK")

	// A pipeline in one packet: replies in order, reads see earlier writes.
	rc.send("PUT p a\r\nGET p\r\nAPPEND p b\r\nGET p\r\nDEL p\r\nGET p\r\nPING\r\n")
	rc.okIndex()
	rc.expectValue("a", 0)
	rc.okIndex()
	rc.expectValue("ab", 0)
	rc.okIndex()
	rc.expect("NOT_FOUND")
	rc.expect("PONG")

	nodes := rc.status()
	roles := map[string]int{}
	for _, n := range nodes {
		roles[n.Role]++
		if n.Addr != c.Addrs[n.ID] || n.Ballot == "" || n.Applied == 0 {
			t.Errorf("STATUS line %+v", n)
		}
	}
	if len(nodes) != 3 || roles["master"] != 1 || roles["follower"] != 2 {
		t.Fatalf("STATUS roles %v", roles)
	}
	st := rc.stats()
	if statInt(t, st, "writes") < 10 || statInt(t, st, "reads") < 8 {
		t.Fatalf("STATS reads/writes: %v", st)
	}

	// A second proxy, sharing nothing with the first, sees the same files
	// and writes the same ones.
	_, addr2 := startServer(t, c.Addrs, func(cfg *Config) {
		cfg.ClusterID = c.ID
		cfg.Poll = 50 * time.Millisecond
		cfg.Hold = 500 * time.Millisecond
	})
	rc2 := dialRaw(t, addr2)
	waitMaster(t, rc2)
	rc2.send("GET dir/bin\r\nGET fresh\r\nPUT fresh from-two\r\n")
	if got, _ := rc2.value(); !bytes.Equal(got, bin) {
		t.Fatalf("second proxy: dir/bin = %q", got)
	}
	rc2.expectValue("new", i4)
	i5 := rc2.okIndex()
	rc.send("GET fresh\r\n")
	rc.expectValue("from-two", i5)
	// An index no replica reaches within the hold window.
	rc2.send(fmt.Sprintf("GET fresh MIN %d\r\n", i5+1_000_000))
	rc2.expect("ERR TIMEOUT")

	rc.send("HELP\r\n")
	for rc.line() != "END" {
	}
	rc.send("QUIT\r\n")
	rc.expect("BYE")
	rc.expectClosed()
}

// TestFailoverKill9: sixteen clients append through the proxy while the
// master is killed with SIGKILL. No client sees an error, and every
// acknowledged append is in its file exactly once, in order.
func TestFailoverKill9(t *testing.T) { failoverKill9(t, failoverRig{}) }

// failoverRig is how TestFailoverKill9 reaches the cluster; the zero value
// is plaintext without users (tls_e2e_test.go runs it with both).
type failoverRig struct {
	cluster    cluster.Options
	proxyFlags []string
	ready      func(t testing.TB, p *cluster.Proxy)                         // nil: nothing to wait for
	raw        func(t testing.TB, addr string) *rawConn                     // nil: dialRaw
	dial       func(ctx context.Context, addr string) (*line.Client, error) // nil: plaintext line.Dial
}

func failoverKill9(t *testing.T, rig failoverRig) {
	rig.cluster.NodeFlags = append(slices.Clone(fastFlags), rig.cluster.NodeFlags...)
	if rig.raw == nil {
		rig.raw = dialRaw
	}
	if rig.dial == nil {
		rig.dial = func(ctx context.Context, addr string) (*line.Client, error) {
			return line.Dial(ctx, addr, line.Options{})
		}
	}
	c := cluster.New(t, rig.cluster)
	p := c.StartProxy(t, append([]string{"--poll=50ms"}, rig.proxyFlags...)...)
	if rig.ready != nil {
		rig.ready(t, p)
	}
	rc := rig.raw(t, p.Addr)
	master := waitMaster(t, rc)

	const clients = 16
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	acked := make([]int, clients)
	stalls := make([]time.Duration, clients)
	errs := make(chan error, clients)
	var wg, dialled sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		dialled.Add(1)
		go func() {
			defer wg.Done()
			cl, err := rig.dial(ctx, p.Addr)
			dialled.Done()
			if err != nil {
				errs <- err
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
				if _, err := cl.Append(ctx, fmt.Sprintf("log/%d", i), []byte(fmt.Sprintf("%d,", j))); err != nil {
					errs <- fmt.Errorf("client %d append %d: %w", i, j, err)
					return
				}
				stalls[i] = max(stalls[i], time.Since(start))
				acked[i]++
			}
		}()
	}
	dialled.Wait() // with users on, AUTH (argon2id) takes a while under -race
	time.Sleep(time.Second)
	c.Nodes[master].Kill()
	killed := time.Now()
	var next uint64
	eventually(t, "a new master", func() bool {
		next = waitMaster(t, rc)
		return next != master
	})
	t.Logf("replica %d is master %v after the kill", next, time.Since(killed).Round(time.Millisecond))
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	var longest time.Duration
	total := 0
	for i := range clients {
		longest = max(longest, stalls[i])
		total += acked[i]
		rc.send(fmt.Sprintf("GET log/%d\r\n", i))
		got, _ := rc.value()
		var want strings.Builder
		for j := range acked[i] {
			fmt.Fprintf(&want, "%d,", j)
		}
		if string(got) != want.String() {
			t.Errorf("log/%d holds %q, want the %d acknowledged appends %q", i, got, acked[i], want.String())
		}
	}
	st := rc.stats()
	t.Logf("%d appends by %d clients, zero errors; longest stall %v; proxy: failovers=%s retries=%s write_p99_ms=%s write_max_ms=%s",
		total, clients, longest.Round(time.Millisecond), st["failovers"], st["retries"], st["write_p99_ms"], st["write_max_ms"])
	if statInt(t, st, "failovers") < 1 {
		t.Errorf("failovers = %s, want at least 1", st["failovers"])
	}
}

// TestUnavailableAndRecovery: with no quorum, a full queue and an expired
// window are answered ERR UNAVAILABLE, and the proxy serves again once a
// master returns.
func TestUnavailableAndRecovery(t *testing.T) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms", "--queue=4", "--hold=1500ms")
	rc := dialRaw(t, p.Addr)
	master := waitMaster(t, rc)
	rc.send("PUT before 1\r\n")
	rc.okIndex()

	down := []uint64{master}
	for id := range c.Addrs {
		if id != master && len(down) < 2 {
			down = append(down, id)
		}
	}
	for _, id := range down {
		c.Nodes[id].Kill()
	}
	eventually(t, "two replicas down and no master", func() bool {
		seen := 0
		for _, n := range rc.status() {
			if n.Role == "master" {
				return false
			}
			if n.Role == "down" {
				seen++
			}
		}
		return seen == 2
	})

	held := make([]*rawConn, 4)
	for i := range held {
		held[i] = dialRaw(t, p.Addr)
		held[i].send(fmt.Sprintf("PUT held/%d x\r\n", i))
	}
	eventually(t, "four held writes", func() bool { return statInt(t, rc.stats(), "buffered") == 4 })
	over := dialRaw(t, p.Addr)
	over.send("PUT over x\r\n")
	over.expect("ERR UNAVAILABLE request queue full")
	if n := statInt(t, rc.stats(), "buffered"); n != 4 {
		t.Fatalf("buffered = %d when the fifth was refused, want 4: the refusal must not wait", n)
	}
	for _, h := range held {
		h.expect("ERR UNAVAILABLE no master within 1.5s")
	}

	for _, id := range down {
		c.Nodes[id].Start()
	}
	// The held connections recover: their next write waits for the new
	// master inside the hold window, or is refused and retried here.
	for i, h := range held {
		eventually(t, "a write after recovery", func() bool {
			h.send(fmt.Sprintf("PUT after/%d y\r\n", i))
			l := h.line()
			if !strings.HasPrefix(l, "OK ") && !strings.HasPrefix(l, "ERR UNAVAILABLE") {
				t.Fatalf("write after recovery: %q", l)
			}
			return strings.HasPrefix(l, "OK ")
		})
	}
	over.send("GET before\r\n")
	over.expectValue("1", 0)
}
