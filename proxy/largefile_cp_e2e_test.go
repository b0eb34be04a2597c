package proxy

// This file owns the end-to-end test of large files with the real `synod
// cp` binary (issue 22's first "done when"): an upload, reads pinned to
// every replica, a master killed with SIGKILL in the middle of an upload
// (once with the upload going on, once with the client killed too), and a
// replica wiped and rebuilt from its peers' chunks, while every replica's
// and the proxy's RSS is sampled. In CI it runs with a 10 MB file; `make
// largefile-e2e` runs it with 1 GiB (-largefile.size). Goroutines: the
// test's; the RSS sampler's (rssSampler.run); the relay's, one accepting
// and two per connection copying (gateRelay).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire"
	"synod/wire/line"
)

var largeFileSize = flag.Int64("largefile.size", 10_000_000, "bytes of each file TestLargeFileCp uploads (make largefile-e2e: 1 GiB)")

// TestLargeFileCp runs `synod cp` against a three-replica cluster and a
// proxy, all real processes, with files of -largefile.size bytes:
//
//  1. cp uploads a file; every replica, asked alone, returns it byte for
//     byte (SHA-256 of its range reads), and cp downloads it the same;
//  2. the master is killed with SIGKILL while cp's upload is held half
//     sent: the upload completes, once, and reads back from the
//     survivors;
//  3. the new master and the cp client are both killed half way: nothing
//     becomes visible (STAT and GET answer NOT_FOUND), and a retry succeeds;
//  4. a follower is stopped, its data directory removed, and started
//     again: it catches up, fetches every chunk of both files from its
//     peers, and serves them byte for byte.
//
// Each process's VmRSS is sampled throughout and its VmHWM read at the
// end; the figures are logged per phase. With a file of 512 MiB or more,
// no replica's peak may reach a quarter of the file: none holds it whole.
func TestLargeFileCp(t *testing.T) {
	size := *largeFileSize
	if size <= int64(line.DefaultMaxValue) {
		t.Fatalf("-largefile.size %d: want more than %d bytes (the largest value), or cp sends it whole", size, line.DefaultMaxValue)
	}
	start := time.Now()
	load0 := loadAvg()
	dir := t.TempDir()
	fileA := writeSeeded(t, filepath.Join(dir, "a.bin"), size, 1)
	fileB := writeSeeded(t, filepath.Join(dir, "b.bin"), size, 2)

	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	master, err := c.WaitMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rss := startRSS(c, p)
	defer rss.close()
	cl, err := line.Dial(ctx, p.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var figures []string

	// 1. Up with cp, then down from each replica alone and with cp.
	rss.phase("1 upload")
	t0 := time.Now()
	res, err := runCp(ctx, t, p.Addr, fileA.path, ":big/a")
	if err != nil {
		t.Fatalf("cp up: %v", err)
	}
	up := time.Since(t0)
	figures = append(figures, fmt.Sprintf("upload %d bytes: %.1f s, %.1f MB/s", size, up.Seconds(), float64(size)/up.Seconds()/1e6))
	if _, err := c.WaitConverged(ctx, res.Index); err != nil {
		t.Fatal(err)
	}
	rss.phase("1 reads")
	for id := range c.Addrs {
		checkReplica(ctx, t, c, id, "big/a", res.Index, fileA)
	}
	t0 = time.Now()
	back := filepath.Join(dir, "back.bin")
	if _, err := runCp(ctx, t, p.Addr, ":big/a", back); err != nil {
		t.Fatalf("cp down: %v", err)
	}
	down := time.Since(t0)
	figures = append(figures, fmt.Sprintf("download with cp: %.1f s, %.1f MB/s", down.Seconds(), float64(size)/down.Seconds()/1e6))
	if got := sumFile(t, back); got != fileA.sum {
		t.Fatalf("cp down: sha256 %s, want %s", got, fileA.sum)
	}
	os.Remove(back)

	// 2. The master killed half way through an upload: it completes.
	rss.phase("2 master killed")
	relay := newGateRelay(t, p.Addr, size/2)
	t0 = time.Now()
	done := make(chan cpOutcome, 1)
	go func() {
		r, err := runCp(ctx, t, relay.addr(), fileB.path, ":big/b")
		done <- cpOutcome{r, err}
	}()
	select {
	case <-relay.reached:
	case out := <-done:
		t.Fatalf("cp ended before half of it was sent: %+v, %v", out.res, out.err)
	}
	rss.sample()
	c.Nodes[master].Kill()
	relay.open()
	out := <-done
	killed := time.Since(t0)
	relay.close()
	if out.err != nil {
		t.Fatalf("cp across a master kill: %v", out.err)
	}
	figures = append(figures, fmt.Sprintf("upload across a master kill: %.1f s", killed.Seconds()))
	if n, ver, err := cl.Stat(ctx, "big/b"); err != nil || int64(n) != size || ver != out.res.Index {
		t.Fatalf("STAT after the kill = %d, %d, %v; want %d, %d", n, ver, err, size, out.res.Index)
	}
	if _, err := c.WaitConverged(ctx, out.res.Index); err != nil {
		t.Fatal(err)
	}
	for id := range c.Addrs {
		if id != master {
			checkReplica(ctx, t, c, id, "big/b", out.res.Index, fileB)
		}
	}
	c.Nodes[master].Start()

	// 3. The new master and the client both killed half way: nothing is
	// visible, and a retry succeeds.
	rss.phase("3 master and client killed")
	if _, err := c.WaitConverged(ctx, out.res.Index); err != nil {
		t.Fatal(err)
	}
	if master, err = c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	relay = newGateRelay(t, p.Addr, size/2)
	cmd := cpCommand(ctx, t, relay.addr(), fileB.path, ":big/c")
	var cmdOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cmdOut, &cmdOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-relay.reached:
	case err := <-exited:
		t.Fatalf("cp ended before half of it was sent: %v: %s", err, cmdOut.String())
	}
	rss.sample()
	c.Nodes[master].Kill()
	cmd.Process.Kill()
	<-exited
	relay.close()
	// A write after the cut, acknowledged, is ordered after whatever the
	// cut upload could have written; it wrote nothing.
	after, err := cl.Put(ctx, "after-cut", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Stat(ctx, "big/c"); !errors.Is(err, line.ErrNotFound) {
		t.Fatalf("STAT of an upload cut short: %v, want NOT_FOUND (cp said %q)", err, cmdOut.String())
	}
	if _, err := cl.GetRange(ctx, "big/c", 0, 1, after); !errors.Is(err, line.ErrNotFound) {
		t.Fatalf("GET RANGE of an upload cut short: %v, want NOT_FOUND", err)
	}
	// The proxy counts the cut upload ended (its per-client limit).
	for {
		st, err := cl.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st["uploads"] == "0" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the proxy still counts %s uploads in progress", st["uploads"])
		case <-time.After(20 * time.Millisecond):
		}
	}
	cut, err := runCp(ctx, t, p.Addr, fileB.path, ":big/c")
	if err != nil {
		t.Fatalf("retry of a cut cp: %v", err)
	}
	c.Nodes[master].Start()
	if _, err := c.WaitConverged(ctx, cut.Index); err != nil {
		t.Fatal(err)
	}
	for id := range c.Addrs {
		checkReplica(ctx, t, c, id, "big/c", cut.Index, fileB)
	}

	// 4. A follower wiped while it is stopped, and rebuilt from chunks.
	rss.phase("4 replica rebuilt")
	if master, err = c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	wiped := master%3 + 1
	rss.sample()
	if err := c.Nodes[wiped].Stop(); err != nil {
		t.Fatalf("stop replica %d: %v", wiped, err)
	}
	if err := os.RemoveAll(c.NodeDir(wiped)); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	c.Nodes[wiped].Start()
	if _, err := c.WaitConverged(ctx, cut.Index); err != nil {
		t.Fatal(err)
	}
	chunkDir := filepath.Join(c.NodeDir(wiped), "chunks")
	for _, f := range []seededFile{fileA, fileB} {
		for _, s := range f.chunks {
			for !fileExists(filepath.Join(chunkDir, s.String())) {
				select {
				case <-ctx.Done():
					t.Fatalf("replica %d never fetched chunk %s", wiped, s)
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	rebuilt := time.Since(t0)
	figures = append(figures, fmt.Sprintf("wiped replica %d caught up with every chunk: %.1f s", wiped, rebuilt.Seconds()))
	checkReplica(ctx, t, c, wiped, "big/a", cut.Index, fileA)
	checkReplica(ctx, t, c, wiped, "big/b", cut.Index, fileB)
	checkReplica(ctx, t, c, wiped, "big/c", cut.Index, fileB)
	rss.sample()
	rss.close()

	figures = append(figures, fmt.Sprintf("whole test %.1f s; load average %s at the start, %s at the end", time.Since(start).Seconds(), load0, loadAvg()))
	t.Logf("figures (file of %d bytes):\n  %s\n%s", size, strings.Join(figures, "\n  "), rss.table())
	if size >= 512<<20 {
		for name, hwm := range rss.hwm() {
			if strings.HasPrefix(name, "node") && hwm*1024 >= size/4 {
				t.Errorf("%s peaked at %d kB of RSS, a quarter of the %d-byte file or more", name, hwm, size)
			}
		}
	}
}

// seededFile is a local file of seeded random bytes.
type seededFile struct {
	path   string
	sum    string          // its SHA-256, hex
	chunks []wire.ChunkSum // its chunks' sums at the proxy's default chunk size
}

// writeSeeded writes size bytes drawn from a generator seeded with seed to
// path, a chunk at a time.
func writeSeeded(t *testing.T, path string, size int64, seed byte) seededFile {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := rand.NewChaCha8([32]byte{seed})
	h := sha256.New()
	sf := seededFile{path: path}
	buf := make([]byte, wire.DefaultChunkSize)
	for left := size; left > 0; {
		b := buf[:min(left, int64(len(buf)))]
		g.Read(b)
		h.Write(b)
		sf.chunks = append(sf.chunks, wire.SumOf(b))
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		left -= int64(len(b))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sf.sum = hex.EncodeToString(h.Sum(nil))
	return sf
}

func sumFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cpOutcome is what a cp run gave.
type cpOutcome struct {
	res cpJSON
	err error
}

// cpJSON is `synod cp --json`'s answer.
type cpJSON struct {
	Bytes int64  `json:"bytes"`
	Index uint64 `json:"index"`
}

func cpCommand(ctx context.Context, t *testing.T, addr, src, dst string) *exec.Cmd {
	return exec.CommandContext(ctx, cluster.Binary(t), "cp", "--addr="+addr, "--json", "--timeout=30m", src, dst)
}

// runCp runs `synod cp SRC DST` against addr and decodes its answer. It
// may run on any goroutine.
func runCp(ctx context.Context, t *testing.T, addr, src, dst string) (cpJSON, error) {
	var res cpJSON
	cmd := cpCommand(ctx, t, addr, src, dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("synod cp %s %s: %w: %s%s", src, dst, err, out, stderr.Bytes())
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("synod cp %s %s answered %q: %w", src, dst, out, err)
	}
	return res, nil
}

// checkReplica reads key from replica id alone, in ranges at a session
// read of index idx, and fails the test unless the bytes are f's.
func checkReplica(ctx context.Context, t *testing.T, c *cluster.Cluster, id uint64, key string, idx uint64, f seededFile) {
	t.Helper()
	wc, err := c.Dial(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	h := sha256.New()
	var off uint64
	for {
		rep, err := wc.Do(ctx, &wire.Request{Op: wire.OpGetRange, Key: key, Offset: off, Length: 4 << 20,
			Consistency: wire.Session, MinIndex: idx})
		if err != nil || rep.Code != wire.CodeOK {
			t.Fatalf("replica %d: GET %s RANGE %d: %v %s %s", id, key, off, err, rep.Code, rep.Msg)
		}
		h.Write(rep.Value)
		off += uint64(len(rep.Value))
		if off >= rep.Size || len(rep.Value) == 0 {
			break
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.sum {
		t.Fatalf("replica %d: %s read back as %d bytes with sha256 %s, want %s", id, key, off, got, f.sum)
	}
}

// loadAvg is /proc/loadavg's first three fields, as uptime prints them.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// gateRelay forwards connections to a target, holding the client's bytes
// after the first at of them until open is called: a client paused in the
// middle of an upload, at a place the test chose.
type gateRelay struct {
	ln      net.Listener
	target  string
	at      int64
	reached chan struct{} // closed once at bytes came through
	gate    chan struct{} // closed by open
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newGateRelay(t *testing.T, target string, at int64) *gateRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &gateRelay{ln: ln, target: target, at: at, reached: make(chan struct{}), gate: make(chan struct{})}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *gateRelay) addr() string { return r.ln.Addr().String() }

// open lets the held bytes through.
func (r *gateRelay) open() { r.once.Do(func() { close(r.gate) }) }

// close stops the relay and waits for its goroutines. The connections
// close before the gate opens: bytes a killed client had already sent sit
// in the relay's socket, and let through they could complete the upload
// the test cut short.
func (r *gateRelay) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.open()
	r.wg.Wait()
}

func (r *gateRelay) track(c net.Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

func (r *gateRelay) accept() {
	defer r.wg.Done()
	first := true
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			in.Close()
			continue
		}
		r.track(in)
		r.track(out)
		gated := first // only the first connection is held
		first = false
		r.wg.Add(2)
		go func() {
			defer r.wg.Done()
			if gated {
				if _, err := io.CopyN(out, in, r.at); err == nil {
					close(r.reached)
					<-r.gate
				}
			}
			io.Copy(out, in)
			out.Close()
		}()
		go func() {
			defer r.wg.Done()
			io.Copy(in, out)
			in.Close()
		}()
	}
}

// rssSampler reads VmRSS and VmHWM of the cluster's replicas and the
// proxy every 100 ms on a goroutine of its own, keeping each process's
// peaks per phase of the test.
type rssSampler struct {
	procs map[string]*cluster.Proc
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu     sync.Mutex
	cur    string
	phases []string
	began  []time.Time                 // when each phase began
	rss    map[string]map[string]int64 // phase -> process -> peak VmRSS, kB
	peak   map[string]int64            // process -> peak VmHWM over its runs, kB
}

func startRSS(c *cluster.Cluster, p *cluster.Proxy) *rssSampler {
	s := &rssSampler{procs: map[string]*cluster.Proc{"proxy": p.Proc}, stop: make(chan struct{}), done: make(chan struct{}),
		rss: map[string]map[string]int64{}, peak: map[string]int64{}}
	for id, n := range c.Nodes {
		s.procs[fmt.Sprintf("node%d", id)] = n
	}
	s.phase("0 start")
	go s.run()
	return s
}

func (s *rssSampler) run() {
	defer close(s.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		s.sample()
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// phase starts counting peaks under a new name.
func (s *rssSampler) phase(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = name
	s.phases = append(s.phases, name)
	s.began = append(s.began, time.Now())
	s.rss[name] = map[string]int64{}
}

// sample reads every running process's figures once (before a kill, say).
func (s *rssSampler) sample() {
	for name, p := range s.procs {
		pid := p.PID()
		if pid == 0 {
			continue
		}
		rss, hwm, ok := procStatus(pid)
		if !ok {
			continue
		}
		s.mu.Lock()
		s.rss[s.cur][name] = max(s.rss[s.cur][name], rss)
		s.peak[name] = max(s.peak[name], hwm)
		s.mu.Unlock()
	}
}

func (s *rssSampler) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// hwm is each process's peak VmHWM, kB.
func (s *rssSampler) hwm() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for k, v := range s.peak {
		out[k] = v
	}
	return out
}

// table shows the peaks, MB, a row per phase and a column per process.
func (s *rssSampler) table() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.procs))
	for n := range s.procs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "  %-28s %7s", "peak VmRSS, MB", "secs")
	for _, n := range names {
		fmt.Fprintf(&b, " %7s", n)
	}
	for i, ph := range s.phases {
		end := time.Now()
		if i+1 < len(s.began) {
			end = s.began[i+1]
		}
		fmt.Fprintf(&b, "\n  %-28s %7.1f", ph, end.Sub(s.began[i]).Seconds())
		for _, n := range names {
			if v, ok := s.rss[ph][n]; ok {
				fmt.Fprintf(&b, " %7.1f", float64(v)/1024)
			} else {
				fmt.Fprintf(&b, " %7s", "-")
			}
		}
	}
	fmt.Fprintf(&b, "\n  %-36s", "VmHWM (peak of any run), MB")
	for _, n := range names {
		fmt.Fprintf(&b, " %7.1f", float64(s.peak[n])/1024)
	}
	return b.String()
}

// procStatus reads VmRSS and VmHWM, in kB, from /proc/<pid>/status.
func procStatus(pid int) (rss, hwm int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, found := strings.Cut(l, ":")
		if !found {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, rss > 0
}
