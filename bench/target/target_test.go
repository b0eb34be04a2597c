package target

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"synod/bench"
	"synod/wire/line"
)

// lineServer is a small line-protocol server over real TCP with a map for
// state. Key "unavailable" is answered ERR UNAVAILABLE; key "hang" is never
// answered.
type lineServer struct {
	ln    net.Listener
	mu    sync.Mutex
	data  map[string][]byte
	conns int
	files int      // PUTFILEs stored
	level []string // the CONSISTENCY levels asked for
	wg    sync.WaitGroup
	open  map[net.Conn]bool
}

func newLineServer(t *testing.T) *lineServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln, data: map[string][]byte{}, open: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.open[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *lineServer) close() {
	s.ln.Close()
	s.dropAll()
	s.wg.Wait()
}

// dropAll closes every client connection, as a restarted proxy would.
func (s *lineServer) dropAll() {
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
}

func (s *lineServer) serve(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
	}()
	r := line.NewReader(bufio.NewReader(c), line.Limits{})
	bw := bufio.NewWriter(c)
	w := line.NewWriter(bw)
	for {
		req, err := r.ReadRequest()
		if err != nil {
			return
		}
		s.mu.Lock()
		switch {
		case req.Key == "hang":
		case req.Key == "unavailable":
			w.Err(line.CodeUnavailable, "no master")
		case req.Cmd == line.CmdPut:
			s.data[req.Key] = req.Value
			w.OKIndex(uint64(len(s.data)))
		case req.Cmd == line.CmdGet:
			if v, ok := s.data[req.Key]; ok {
				w.Value(v, 1)
			} else {
				w.NotFound()
			}
		case req.Cmd == line.CmdPutFile:
			s.mu.Unlock()
			body, err := io.ReadAll(r.Body(req.Size))
			if err != nil || r.EndBody() != nil {
				return
			}
			s.mu.Lock()
			if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != req.Sum {
				w.Err(line.CodeBadRequest, "checksum mismatch")
				break
			}
			s.data[req.Key] = body
			s.files++
			w.OKIndex(uint64(len(s.data)))
		case req.Cmd == line.CmdGetRange:
			v, ok := s.data[req.Key]
			if !ok {
				w.NotFound()
				break
			}
			sum := sha256.Sum256(v)
			if strings.HasPrefix(req.Key, "corrupt") {
				sum[0]++
			}
			end := min(req.Offset+req.Length, uint64(len(v)))
			w.Range(v[req.Offset:end], 1, uint64(len(v)), hex.EncodeToString(sum[:]))
		case req.Cmd == line.CmdConsistency:
			s.level = append(s.level, req.Level.String())
			w.OK()
		default:
			w.Err(line.CodeBadRequest, "not in this test")
		}
		s.mu.Unlock()
		if w.Flush() != nil {
			return
		}
	}
}

func (s *lineServer) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func kind(err error) string {
	var oe *bench.OpError
	if errors.As(err, &oe) {
		return oe.Kind
	}
	return ""
}

func TestLine(t *testing.T) {
	s := newLineServer(t)
	tg, err := NewLine(s.ln.Addr().String(), "stale")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := tg.Connect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "missing"); err != nil {
		t.Fatalf("a missing key is not a failure: %v", err)
	}
	if err := c.Put(ctx, "unavailable", []byte("v")); kind(err) != "unavailable" {
		t.Fatalf("ERR UNAVAILABLE gave %v", err)
	}
	// The server's error left the connection usable.
	if err := c.Put(ctx, "k2", []byte("v")); err != nil || s.connCount() != 1 {
		t.Fatalf("after a server error: %v, %d connections", err, s.connCount())
	}
	// A timeout leaves the stream out of step: the next call redials.
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = c.Put(tctx, "hang", []byte("v"))
	cancel()
	if kind(err) != "timeout" {
		t.Fatalf("unanswered request gave %v", err)
	}
	if err := c.Put(ctx, "k3", []byte("v")); err != nil || s.connCount() != 2 {
		t.Fatalf("after a timeout: %v, %d connections", err, s.connCount())
	}
	// A dropped connection is an error, then a fresh connection.
	s.dropAll()
	if err := c.Get(ctx, "k"); kind(err) != "conn" {
		t.Fatalf("dropped connection gave %v", err)
	}
	if err := c.Get(ctx, "k"); err != nil || s.connCount() != 3 {
		t.Fatalf("after a drop: %v, %d connections", err, s.connCount())
	}
	s.mu.Lock()
	levels := strings.Join(s.level, ",")
	s.mu.Unlock()
	if levels != "stale,stale,stale" {
		t.Fatalf("consistency set %q, want stale on every connection", levels)
	}
}

func TestLineLinearizableSendsNothing(t *testing.T) {
	s := newLineServer(t)
	tg, err := NewLine(s.ln.Addr().String(), "LINEARIZABLE")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tg.Connect(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Get(context.Background(), "k")
	c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.level) != 0 {
		t.Fatalf("sent CONSISTENCY %v for the default level", s.level)
	}
}

func TestLineDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tg, _ := NewLine(addr, "linearizable")
	if _, err := tg.Connect(context.Background(), 0); kind(err) != "conn" {
		t.Fatalf("Connect to nothing: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := NewLine("x:1", "eventual"); !errors.Is(err, ErrConsistency) {
		t.Fatalf("NewLine: %v", err)
	}
	if _, err := NewDirect([]string{"x:1"}, "c", "eventual"); !errors.Is(err, ErrConsistency) {
		t.Fatalf("NewDirect: %v", err)
	}
	if _, err := NewDirect(nil, "c", "stale"); err == nil {
		t.Fatal("NewDirect without addresses")
	}
}

func TestDirectNoMaster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tg, err := NewDirect([]string{addr}, "c", "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.FindMaster(context.Background()); !errors.Is(err, ErrNoMaster) {
		t.Fatalf("FindMaster: %v", err)
	}
	if _, err := tg.Connect(context.Background(), 0); kind(err) != "conn" {
		t.Fatalf("Connect: %v", err)
	}
}

// TestLinePipelined keeps many requests in flight on one connection with
// Start: replies come back in order to the right callbacks, a server error
// fails only its request, and a broken connection fails what it had sent
// and is dialled afresh by the next Start.
func TestLinePipelined(t *testing.T) {
	s := newLineServer(t)
	tg, err := NewLine(s.ln.Addr().String(), "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := tg.Connect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ac := conn.(bench.AsyncConn)
	start := func(ops []bench.Op) []string {
		kinds := make([]chan string, len(ops))
		for i, op := range ops {
			kinds[i] = make(chan string, 1)
			ac.Start(ctx, op, func(err error) { kinds[i] <- kind(err) })
		}
		got := make([]string, len(ops))
		for i := range kinds {
			got[i] = <-kinds[i]
		}
		return got
	}
	var ops []bench.Op
	var want []string
	for i := range 16 {
		switch i % 4 {
		case 0, 1:
			ops = append(ops, bench.Op{Write: true, Key: fmt.Sprintf("k%d", i), Value: []byte("v")})
			want = append(want, "")
		case 2:
			ops = append(ops, bench.Op{Key: "missing"})
			want = append(want, "")
		case 3:
			ops = append(ops, bench.Op{Write: true, Key: "unavailable", Value: []byte("v")})
			want = append(want, "unavailable")
		}
	}
	if got := start(ops); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
	s.mu.Lock()
	stored := len(s.data)
	s.mu.Unlock()
	if stored != 8 {
		t.Fatalf("server holds %d keys, want 8", stored)
	}

	// A request that is never answered, then the connection breaks: it
	// fails as a connection error, and the next Start dials again.
	kinds := make(chan string, 1)
	ac.Start(ctx, bench.Op{Key: "hang"}, func(err error) { kinds <- kind(err) })
	s.dropAll()
	if k := <-kinds; k != "conn" {
		t.Fatalf("request on a broken connection: kind %q, want conn", k)
	}
	// The receiver saw the break before it failed the request, so the
	// next Start finds the connection broken, and the one after dials.
	if got := start([]bench.Op{{Write: true, Key: "again", Value: []byte("v")}}); got[0] != "conn" {
		t.Fatalf("first Start after the break: %q, want conn", got)
	}
	if got := start([]bench.Op{{Write: true, Key: "again", Value: []byte("v")}}); got[0] != "" || s.connCount() != 2 {
		t.Fatalf("after a break: %q, %d connections", got, s.connCount())
	}
}

func TestLineFiles(t *testing.T) {
	s := newLineServer(t)
	tg, err := NewLine(s.ln.Addr().String(), "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	tg.PutFileAbove = 10
	ctx := context.Background()
	c, err := tg.Connect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fc, ok := c.(bench.FileConn)
	if !ok {
		t.Fatal("a Line connection is not a FileConn")
	}
	small, large := []byte("tiny"), []byte("a file of more than ten bytes")
	for key, data := range map[string][]byte{"small": small, "large": large, "corrupt-large": large} {
		if err := fc.PutFile(ctx, key, data); err != nil {
			t.Fatalf("PutFile %s: %v", key, err)
		}
		if err := fc.GetFile(ctx, key, int64(len(data))); err != nil && key != "corrupt-large" {
			t.Fatalf("GetFile %s: %v", key, err)
		}
	}
	s.mu.Lock()
	files, gotSmall, gotLarge := s.files, string(s.data["small"]), string(s.data["large"])
	s.mu.Unlock()
	if files != 2 || gotSmall != "tiny" || gotLarge != string(large) {
		t.Fatalf("%d PUTFILEs; stored %q and %q", files, gotSmall, gotLarge)
	}
	if err := fc.GetFile(ctx, "corrupt-large", int64(len(large))); kind(err) != "mismatch" || !errors.Is(err, errFileMismatch) {
		t.Fatalf("a file whose checksum does not match: %v", err)
	}
	if err := fc.GetFile(ctx, "absent", int64(len(large))); err != nil {
		t.Fatalf("a file that does not exist: %v", err)
	}
	// The connection survived all of it.
	if n := s.connCount(); n != 1 {
		t.Fatalf("%d connections", n)
	}
	tg.PutFileAbove = -1
	err = fc.PutFile(ctx, "tiny-file", small)
	s.mu.Lock()
	files = s.files
	s.mu.Unlock()
	if err != nil || files != 3 {
		t.Fatalf("PutFileAbove < 0: %v, %d PUTFILEs", err, files)
	}
}
