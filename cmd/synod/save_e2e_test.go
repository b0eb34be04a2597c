package main

// This file runs `synod snapshot save` end to end, against real replica
// and proxy processes (internal/cluster) on loopback ports chosen at run
// time: a backup taken while 16 clients write, restored with `synod
// snapshot restore` into a new 3-replica cluster that must hold exactly the
// backup's state; a replica killed in the middle of a stream; a stream cut
// short starting again; a save that cannot succeed leaving nothing behind.
// The CLI runs in process (runVerb); the test goroutine drives, with one
// goroutine per writing client and two per relayed connection.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"synod/internal/cluster"
	"synod/wire/line"
)

// ackedWrite is one write a client was told is applied.
type ackedWrite struct {
	key   string
	value string
	index uint64
}

// writeLoad runs clients writing through addr until stop closes, and
// returns every acknowledged write and how many were refused or failed.
func writeLoad(t *testing.T, addr string, clients int, stop <-chan struct{}) func() ([]ackedWrite, int) {
	var mu sync.Mutex
	var acked []ackedWrite
	failed := 0
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			cl, err := line.Dial(ctx, addr, line.Options{})
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			defer cl.Close()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("c%02d/k%02d", i, n%40)
				value := fmt.Sprintf("%d-%d-%s", i, n, strings.Repeat("v", n%300))
				wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				idx, err := cl.Put(wctx, key, []byte(value))
				cancel()
				mu.Lock()
				if err != nil {
					failed++
				} else {
					acked = append(acked, ackedWrite{key, value, idx})
				}
				mu.Unlock()
				if err != nil && !line.IsTransient(err) {
					return // the connection is gone
				}
			}
		}()
	}
	return func() ([]ackedWrite, int) {
		wg.Wait()
		return acked, failed
	}
}

// restoreEach is a cluster's Prepare: `snapshot restore` of file into
// every replica's directory, each then checked by check (if not nil).
func restoreEach(t *testing.T, file string, check func(c *cluster.Cluster, id uint64)) func(c *cluster.Cluster) {
	return func(c *cluster.Cluster) {
		for id := uint64(1); id <= uint64(len(c.Addrs)); id++ {
			out, errText, code := runVerb(t, "", "", "snapshot", "restore", file, "--dir", c.NodeDir(id),
				"--id", strconv.FormatUint(id, 10), "--peers", peersOf(c), "--cluster", c.ID)
			if code != 0 {
				t.Fatalf("restore %d: exit %d: %s\n%s", id, code, errText, out)
			}
			if check != nil {
				check(c, id)
			}
		}
	}
}

// peersOf is a cluster's --peers.
func peersOf(c *cluster.Cluster) string {
	var parts []string
	for id := uint64(1); int(id) <= len(c.Addrs); id++ {
		parts = append(parts, fmt.Sprintf("%d=%s", id, c.Addrs[id]))
	}
	return strings.Join(parts, ",")
}

func TestSnapshotSaveUnderLoadRestores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := cluster.New(t, cluster.Options{})
	if _, err := src.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	px := src.StartProxy(t)

	stop := make(chan struct{})
	wait := writeLoad(t, px.Addr, 16, stop)
	time.Sleep(1500 * time.Millisecond) // writes under way
	file := filepath.Join(t.TempDir(), "backup.snap")
	out, errText, code := runVerb(t, px.Addr, "", "snapshot", "save", "--json", "--chunk", "4096", file)
	time.Sleep(500 * time.Millisecond) // and going on after it
	close(stop)
	acked, failed := wait()
	if code != 0 {
		t.Fatalf("snapshot save: exit %d: %s\n%s", code, errText, out)
	}
	var res saveResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("snapshot save --json: %v\n%s", err, out)
	}
	var before, after int
	for _, w := range acked {
		if w.index <= res.Index {
			before++
		} else {
			after++
		}
	}
	t.Logf("backup at index %d: %d keys, %d bytes, from replica %d; %d writes acknowledged before it, %d after, %d failed",
		res.Index, res.Keys, res.Size, res.Replica, before, after, failed)
	if before == 0 || after == 0 {
		t.Fatalf("the backup was not taken while clients wrote: %d writes before its index, %d after", before, after)
	}
	// What every key held at the backup's index: its last acknowledged
	// write up to there. A write that failed may or may not be applied:
	// its key is left out of the comparison.
	want := map[string]ackedWrite{}
	for _, w := range acked {
		if w.index <= res.Index && w.index > want[w.key].index {
			want[w.key] = w
		}
	}
	if failed > 0 {
		t.Logf("%d writes failed; their keys are checked for presence only", failed)
	}

	// A saved backup cut short or with a byte flipped is refused by
	// snapshot status and snapshot restore alike, with the line.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x20
	for name, bad := range map[string][]byte{"truncated": data[:len(data)/2], "flipped": flipped} {
		path := filepath.Join(t.TempDir(), name+".snap")
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"snapshot", "status", path},
			{"snapshot", "restore", path, "--dir", filepath.Join(t.TempDir(), "n1"), "--id", "1", "--peers", "1=127.0.0.1:1"}} {
			if _, errText, code := runVerb(t, "", "", args...); code != 1 || !strings.Contains(errText, "line ") {
				t.Fatalf("%s backup: %s: exit %d, %q; want exit 1 naming the line", name, args[1], code, errText)
			}
		}
	}

	// A new 3-replica cluster seeded from the backup.
	dst := cluster.New(t, cluster.Options{ID: "restored", Prepare: restoreEach(t, file, nil)})
	digest, err := dst.WaitConverged(ctx, res.Index)
	if err != nil {
		t.Fatal(err)
	}
	if digest != res.Digest {
		t.Fatalf("the restored cluster's digest is %s, the source's at index %d was %s", digest, res.Index, res.Digest)
	}
	if _, err := dst.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	for id, st := range dst.Statuses(ctx) {
		if st.Applied != res.Index || st.Digest != res.Digest {
			t.Fatalf("restored replica %d: applied %d, digest %s; want %d, %s", id, st.Applied, st.Digest, res.Index, res.Digest)
		}
	}
	dpx := dst.StartProxy(t)
	cl, err := line.Dial(ctx, dpx.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	keys, err := cl.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != res.Keys || len(keys) < len(want) {
		t.Fatalf("the restored cluster lists %d keys; the backup has %d, the clients' writes before it %d", len(keys), res.Keys, len(want))
	}
	for key, w := range want {
		v, ver, err := cl.Get(ctx, key, 0)
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		if string(v) != w.value || ver != w.index {
			t.Fatalf("GET %s: version %d, %q; the last write up to index %d was version %d, %q", key, ver, v, res.Index, w.index, w.value)
		}
	}
	// And it takes writes, after the backup's index.
	idx, err := cl.Put(ctx, "after/restore", []byte("x"))
	if err != nil || idx != res.Index+1 {
		t.Fatalf("first write to the restored cluster: index %d, %v; want %d", idx, err, res.Index+1)
	}
}

// TestSnapshotSaveReplicaDiesMidStream kills the replica serving a backup
// while its stream is under way: the stream ends with ERR UNAVAILABLE
// (the proxy cannot go on elsewhere once data went out), and the next
// save succeeds from another replica.
func TestSnapshotSaveReplicaDiesMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := cluster.New(t, cluster.Options{})
	if _, err := src.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	px := src.StartProxy(t)
	// About 24 MB: more than the loopback's socket buffers hold, so the
	// stream waits on the test while the test holds it.
	cl, err := line.Dial(ctx, px.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("x", 100_000)
	var last uint64
	for i := range 240 {
		if last, err = cl.Put(ctx, fmt.Sprintf("big/%03d", i), []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()

	nc, err := net.Dial("tcp", px.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(nc)
	if _, err := io.WriteString(nc, "SNAPSHOT 4096\r\n"); err != nil {
		t.Fatal(err)
	}
	head, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var index, slot, keys, bytes, replica uint64
	var digest string
	if _, err := fmt.Sscanf(head, "SNAPSHOT %d %d %d %d %s %d\r\n", &index, &slot, &keys, &bytes, &digest, &replica); err != nil ||
		index < last || keys != 240 || replica == 0 {
		t.Fatalf("header %q: %v", head, err)
	}
	src.Nodes[replica].Kill()
	// Read on: what was already on its way, then the end of the stream.
	var end string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream did not end with a line: %v", err)
		}
		if strings.HasPrefix(l, "$") {
			n, err := strconv.Atoi(strings.TrimSpace(l[1:]))
			if err != nil || n > 4096 {
				t.Fatalf("block header %q", l)
			}
			if _, err := io.CopyN(io.Discard, br, int64(n)+2); err != nil {
				t.Fatal(err)
			}
			continue
		}
		end = l
		break
	}
	if !strings.HasPrefix(end, "ERR UNAVAILABLE ") {
		t.Fatalf("the stream of the killed replica %d ended with %q, want ERR UNAVAILABLE", replica, end)
	}
	// The connection is still usable.
	if _, err := io.WriteString(nc, "PING\r\n"); err != nil {
		t.Fatal(err)
	}
	if l, err := br.ReadString('\n'); err != nil || l != "PONG\r\n" {
		t.Fatalf("after the broken stream: %q, %v", l, err)
	}

	file := filepath.Join(t.TempDir(), "after-kill.snap")
	out, errText, code := runVerb(t, px.Addr, "", "snapshot", "save", "--json", file)
	var res saveResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("snapshot save after the kill: exit %d: %s\n%s", code, errText, out)
	}
	if res.Replica == replica || res.Keys != 240 || res.Index < last {
		t.Fatalf("snapshot save after killing replica %d: %+v", replica, res)
	}

	// A stream cut in the middle (here by a relay in front of the proxy)
	// starts again, and what is left in the directory is the backup alone;
	// without retries the save fails and leaves nothing.
	for _, tt := range []struct {
		retries string
		code    int
	}{{"0", exitUnavailable}, {"2", 0}} {
		dir := t.TempDir()
		file := filepath.Join(dir, "cut.snap")
		relay := cutRelay(t, px.Addr, 1<<20)
		out, errText, code := runVerb(t, relay, "", "snapshot", "save", "--retries", tt.retries, file)
		if code != tt.code {
			t.Fatalf("snapshot save --retries %s through a cut: exit %d, %q\n%s", tt.retries, code, errText, out)
		}
		entries, _ := os.ReadDir(dir)
		switch {
		case code != 0 && len(entries) != 0:
			t.Fatalf("a save cut short left %v", entries)
		case code == 0 && (len(entries) != 1 || entries[0].Name() != "cut.snap"):
			t.Fatalf("a save that started again left %v", entries)
		}
	}
}

// cutRelay listens on a loopback port and relays each connection to addr;
// the first one's replies are cut after n bytes. It stops with the test.
func cutRelay(t *testing.T, addr string, n int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for first := true; ; first = false {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				return
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			limit := int64(1 << 62)
			if first {
				limit = n
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.CopyN(in, out, limit); in.Close(); out.Close() }()
		}
	}()
	return ln.Addr().String()
}

// TestSnapshotSaveFailsCleanly: with no majority, a linearizable save
// fails after the proxy's hold window with exit 3, and FILE's directory
// holds nothing new, not even a temporary file.
func TestSnapshotSaveFailsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := cluster.New(t, cluster.Options{})
	if _, err := src.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	px := src.StartProxy(t, "--hold=2s")
	src.Nodes[1].Kill()
	src.Nodes[2].Kill()
	// Once the proxy sees them down, and the survivor's lease (400 ms), if
	// it was the master, ran out: no read index can be had.
	cl, err := line.Dial(ctx, px.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for down := 0; down < 2; {
		nodes, err := cl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		down = 0
		for _, n := range nodes {
			if n.Role == "down" {
				down++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	dir := t.TempDir()
	file := filepath.Join(dir, "b.snap")
	out, errText, code := runVerb(t, px.Addr, "", "snapshot", "save", "--retries", "0", file)
	if code != exitUnavailable || !strings.Contains(errText, "UNAVAILABLE") {
		t.Fatalf("snapshot save without a majority: exit %d, %q\n%s", code, errText, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed save left %v", entries)
	}
	// Stale needs no master: the survivor gives what it has.
	out, errText, code = runVerb(t, px.Addr, "", "snapshot", "save", "--consistency", "stale", "--json", file)
	var res saveResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Replica != 3 {
		t.Fatalf("stale snapshot save from the survivor: exit %d: %s\n%s", code, errText, out)
	}
}
