package line

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func dialTest(t *testing.T, addr string, opts Options) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientAgainstServer(t *testing.T) {
	s := startTestServer(t, Limits{})
	c := dialTest(t, s.addr(), Options{})
	ctx := context.Background()

	must := func(idx uint64, err error) uint64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	i1 := must(c.Put(ctx, "docs/readme.txt", []byte("hello world")))
	i2 := must(c.Append(ctx, "docs/readme.txt", []byte("!\r\n")))
	if i1 != 1 || i2 != 2 {
		t.Fatalf("indexes %d, %d; want 1, 2", i1, i2)
	}
	v, ver, err := c.Get(ctx, "docs/readme.txt", i2)
	if err != nil || string(v) != "hello world!\r\n" || ver != 2 {
		t.Fatalf("Get = %q, %d, %v", v, ver, err)
	}
	n, ver, err := c.Stat(ctx, "docs/readme.txt")
	if err != nil || n != 14 || ver != 2 {
		t.Fatalf("Stat = %d, %d, %v", n, ver, err)
	}

	// CAS: 0 means "must not exist"; a mismatch reports the current version.
	must(c.CAS(ctx, "new", 0, []byte("a")))
	_, err = c.CAS(ctx, "new", 0, []byte("b"))
	var se *ServerError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &se) || se.Version != 3 || IsTransient(err) {
		t.Fatalf("CAS on existing key: %v", err)
	}
	must(c.CAS(ctx, "new", 3, []byte("b")))

	keys, err := c.List(ctx, "")
	if err != nil || fmt.Sprint(keys) != "[docs/readme.txt new]" {
		t.Fatalf("List = %v, %v", keys, err)
	}
	keys, err = c.List(ctx, "docs/")
	if err != nil || fmt.Sprint(keys) != "[docs/readme.txt]" {
		t.Fatalf("List docs/ = %v, %v", keys, err)
	}
	must(c.Del(ctx, "new"))
	if _, err := c.Del(ctx, "new"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Del of a missing key: %v", err)
	}
	if _, _, err := c.Get(ctx, "new", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	if _, _, err := c.Stat(ctx, "new"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of a missing key: %v", err)
	}
	if _, _, err := c.Get(ctx, "docs/readme.txt", 1000); !errors.Is(err, ErrTimeout) || !IsTransient(err) {
		t.Fatalf("Get beyond the applied index: %v", err)
	}
	for _, l := range []Level{LevelStale, LevelSession, LevelLinearizable} {
		if err := c.SetConsistency(ctx, l); err != nil {
			t.Fatal(err)
		}
	}

	nodes, err := c.Status(ctx)
	if err != nil || len(nodes) != 3 {
		t.Fatalf("Status = %+v, %v", nodes, err)
	}
	if n := nodes[1]; n.ID != 2 || n.Addr != "127.0.0.1:7102" || n.Role != "follower" || n.Ballot != "3.1" ||
		n.Commit != 5 || n.Applied != 5 || n.Extra["lag"] != "0" {
		t.Fatalf("Status node 2 = %+v", n)
	}
	stats, err := c.Stats(ctx)
	if err != nil || stats["files"] != "1" || stats["index"] != "5" {
		t.Fatalf("Stats = %v, %v", stats, err)
	}
	help, err := c.Help(ctx)
	if err != nil || len(help) != len(helpLines) {
		t.Fatalf("Help = %q, %v", help, err)
	}
}

func TestClientMembers(t *testing.T) {
	s := startTestServer(t, Limits{})
	c := dialTest(t, s.addr(), Options{})
	ctx := context.Background()
	steps := []struct {
		name string
		do   func() (uint64, error)
		slot uint64
		code string // "" for success
	}{
		{"add 1", func() (uint64, error) { return c.MemberAdd(ctx, 1, "127.0.0.1:7101") }, 1, ""},
		{"add 4", func() (uint64, error) { return c.MemberAdd(ctx, 4, "[::1]:7104") }, 2, ""},
		{"add 4 again", func() (uint64, error) { return c.MemberAdd(ctx, 4, "[::1]:7104") }, 2, ""},
		{"add 4 elsewhere", func() (uint64, error) { return c.MemberAdd(ctx, 4, "h:1") }, 0, CodeBadRequest},
		{"promote 1", func() (uint64, error) { return c.MemberPromote(ctx, 1) }, 3, ""},
		{"promote 1 again", func() (uint64, error) { return c.MemberPromote(ctx, 1) }, 3, ""},
		{"promote 9", func() (uint64, error) { return c.MemberPromote(ctx, 9) }, 0, CodeBadRequest},
		{"add 2", func() (uint64, error) { return c.MemberAdd(ctx, 2, "127.0.0.1:7102") }, 4, ""},
		{"remove 2", func() (uint64, error) { return c.MemberRemove(ctx, 2) }, 5, ""},
		{"remove 2 again", func() (uint64, error) { return c.MemberRemove(ctx, 2) }, 5, ""},
	}
	for _, st := range steps {
		slot, err := st.do()
		var se *ServerError
		switch {
		case st.code == "" && (err != nil || slot != st.slot):
			t.Fatalf("%s: slot %d, %v; want %d", st.name, slot, err, st.slot)
		case st.code != "" && (!errors.As(err, &se) || se.Code != st.code):
			t.Fatalf("%s: %v, want %s", st.name, err, st.code)
		}
	}
	members, slot, err := c.Members(ctx)
	want := "[{ID:1 Addr:127.0.0.1:7101 Voter:true} {ID:4 Addr:[::1]:7104 Voter:false}]"
	if err != nil || slot != 5 || fmt.Sprintf("%+v", members) != want {
		t.Fatalf("Members = %+v, %d, %v; want %s at 5", members, slot, err, want)
	}
	// Requests no server accepts are refused before anything is sent.
	if _, err := c.MemberAdd(ctx, 5, "no-port"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("MemberAdd without a port: %v", err)
	}
	if _, err := c.MemberRemove(ctx, 0); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("MemberRemove 0: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("connection unusable after a refused encode: %v", err)
	}
}

func TestClientServerErrors(t *testing.T) {
	s := startTestServer(t, Limits{MaxValue: 100})
	c := dialTest(t, s.addr(), Options{})
	ctx := context.Background()
	tests := []struct {
		key       string
		sentinel  error
		transient bool
	}{
		{"err/UNAVAILABLE", ErrUnavailable, true},
		{"err/BUSY", ErrBusy, true},
		{"err/TIMEOUT", ErrTimeout, true},
		{"err/INTERNAL", ErrInternal, false},
		{"err/BAD_REQUEST", ErrBadRequest, false},
		{"err/NOT_MASTER", nil, false},
	}
	for _, tt := range tests {
		_, err := c.Put(ctx, tt.key, []byte("v"))
		var se *ServerError
		if !errors.As(err, &se) || se.Code != strings.TrimPrefix(tt.key, "err/") || se.Msg != "injected" {
			t.Fatalf("%s: got %v", tt.key, err)
		}
		if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
			t.Fatalf("%s: %v does not match %v", tt.key, err, tt.sentinel)
		}
		if IsTransient(err) != tt.transient {
			t.Fatalf("%s: transient %v", tt.key, IsTransient(err))
		}
	}
	// A value over the server's limit is drained and refused; the
	// connection goes on.
	if _, err := c.Put(ctx, "big", make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put of a too-large value: %v", err)
	}
	// The client refuses a bad key itself, sending nothing.
	if _, err := c.Put(ctx, "bad key", nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Put with a bad key: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("connection unusable after server errors: %v", err)
	}
}

// TestClientEveryByte round-trips values holding every byte value.
func TestClientEveryByte(t *testing.T) {
	s := startTestServer(t, Limits{})
	c := dialTest(t, s.addr(), Options{})
	ctx := context.Background()
	for _, size := range []int{0, 1, 2, 255, 256, 4096, 100_000} {
		val := make([]byte, size)
		for i := range val {
			val[i] = byte(i * 7)
		}
		key := fmt.Sprintf("bin/%d", size)
		if _, err := c.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
		got, _, err := c.Get(ctx, key, 0)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("size %d: got %d bytes, %v", size, len(got), err)
		}
	}
}

// TestClientPipeline keeps many requests in flight: one goroutine sends,
// another receives, and the replies come back in order.
func TestClientPipeline(t *testing.T) {
	s := startTestServer(t, Limits{})
	c := dialTest(t, s.addr(), Options{})
	const n = 2000
	var wg sync.WaitGroup
	sendErr := make(chan error, 1)
	sent := make(chan struct{}, n) // Recv only for requests already sent
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(sent)
		for i := range n {
			req := Request{Cmd: CmdPut, Key: fmt.Sprintf("k%d", i%10), Value: []byte(fmt.Sprint(i))}
			if i%3 == 2 {
				req = Request{Cmd: CmdGet, Key: "missing"}
			}
			if err := c.Send(req); err != nil {
				sendErr <- err
				return
			}
			sent <- struct{}{}
			if i%64 == 63 {
				if err := c.Flush(); err != nil {
					sendErr <- err
					return
				}
			}
		}
		sendErr <- c.Flush()
	}()
	var index uint64
	for i := range n {
		if _, ok := <-sent; !ok {
			break // the sender failed; its error is reported below
		}
		rep, err := c.Recv()
		if i%3 == 2 {
			if !errors.Is(err, ErrNotFound) || rep.Cmd != 0 {
				t.Fatalf("reply %d: got %+v, %v; want NOT_FOUND", i, rep, err)
			}
			continue
		}
		if err != nil || rep.Cmd != CmdPut || rep.Index != index+1 {
			t.Fatalf("reply %d: got %+v, %v; want index %d", i, rep, err, index+1)
		}
		index = rep.Index
	}
	wg.Wait()
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(); err != ErrNothingPending {
		t.Fatalf("Recv with nothing sent: %v", err)
	}
	// With a reply outstanding the request methods refuse to run.
	if err := c.Send(Request{Cmd: CmdPing}); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != ErrPipelineBusy {
		t.Fatalf("Ping with a reply outstanding: %v", err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if rep, err := c.Recv(); err != nil || rep.Cmd != CmdPing {
		t.Fatalf("Recv = %+v, %v", rep, err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestClientConcurrentCalls shares one Client between goroutines.
func TestClientConcurrentCalls(t *testing.T) {
	s := startTestServer(t, Limits{})
	c := dialTest(t, s.addr(), Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("g%d", g)
			for i := range 50 {
				want := fmt.Sprint(i)
				if _, err := c.Put(context.Background(), key, []byte(want)); err != nil {
					errs <- err
					return
				}
				got, _, err := c.Get(context.Background(), key, 0)
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("%s: got %q, %v; want %q", key, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestClientQuitAndClose(t *testing.T) {
	s := startTestServer(t, Limits{})
	c := dialTest(t, s.addr(), Options{})
	if _, err := c.Do(context.Background(), Request{Cmd: CmdQuit}); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	// The server closed after BYE.
	if err := c.Ping(context.Background()); err == nil || IsTransient(err) {
		t.Fatalf("Ping after QUIT: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != ErrClosed {
		t.Fatalf("Ping after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// silentServer accepts one connection, reports each request line it reads on
// lines, and never answers.
func silentServer(t *testing.T) (addr string, lines <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			ch <- l
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

// TestClientContextCancel interrupts a request waiting for its reply; the
// connection is unusable afterwards, since the reply may still come.
func TestClientContextCancel(t *testing.T) {
	addr, lines := silentServer(t)
	c, err := Dial(context.Background(), addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-lines // the request arrived: the client now waits for the reply
		cancel()
	}()
	_, _, err = c.Get(ctx, "k", 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if err := c.Ping(context.Background()); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after a cancelled request: %v", err)
	}
	c.Close()
	for range lines {
	}
}

func TestClientContextDeadline(t *testing.T) {
	addr, lines := silentServer(t)
	c, err := Dial(context.Background(), addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping past its deadline: %v", err)
	}
	c.Close()
	for range lines {
	}
}

// TestClientDoneContext: a context that is over before the request starts
// sends nothing and leaves the connection usable.
func TestClientDoneContext(t *testing.T) {
	s := startTestServer(t, Limits{})
	c := dialTest(t, s.addr(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping with a done context: %v", err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping afterwards: %v", err)
	}
	// A deadline that did not pass is cleared after the request.
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
