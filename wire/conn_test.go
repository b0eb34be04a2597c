package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testAccept is shaped like a paxos Accept; wire treats it as any body.
type testAccept struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Round   uint64
	Node    uint64
	Commit  uint64
	Entries []testEntry
}

type testEntry struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Slot  uint64
	Round uint64
	Node  uint64
	Cmds  [][]byte
}

func fullRequest() *Request {
	return &Request{
		Op: OpCAS, Key: "docs/readme.txt", Value: []byte("hello\x00world\r\n"),
		Version: 1 << 40, ClientID: 77, Seq: 1<<64 - 1, Consistency: Session, MinIndex: 12345,
		Ack: 1 << 63, Retry: true, Offset: 1 << 36, Length: 4 << 20,
	}
}

func fullReply() *Reply {
	return &Reply{
		Code: CodeNotMaster, Index: 99, Version: 98, Value: []byte{0, 1, 2, 255},
		Keys: []string{"a", "b/c", ""}, Msg: "not master", MasterID: 3,
		MasterAddr: "127.0.0.1:7103", Applied: 1 << 33, NotApplied: true,
		Sum: SumOf([]byte("file")).String(),
	}
}

func fullStatus() *Status {
	return &Status{
		ID: 2, Addr: "127.0.0.1:7102", Role: "follower", Round: 7, BallotNode: 3,
		MasterID: 3, MasterAddr: "127.0.0.1:7103", Commit: 1000, Applied: 999,
		Digest: "c0ffee", FreeDisk: 1 << 50, Lease: true, Transfer: 4,
	}
}

func TestRoundTrip(t *testing.T) {
	s := startServer(t, serverConfig{})
	c := dial(t, s.addr())

	tests := []struct {
		kind Kind
		body any // sent; a pointer, so the reply decodes into a new value of its type
	}{
		{KindHello, &Hello{Version: 9, ClusterID: "x", NodeID: 5, Role: RoleProxy}},
		{KindWelcome, &Hello{Version: 1, ClusterID: "y", NodeID: 6, Role: RoleClient}},
		{KindRefuse, &refusal{Code: refuseCluster, Reason: "no"}},
		{KindPaxos, &testAccept{Round: 3, Node: 1, Commit: 9, Entries: []testEntry{
			{Slot: 10, Round: 3, Node: 1, Cmds: [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 300)}},
		}}},
		{KindRequest, fullRequest()},
		{KindReply, fullReply()},
		{KindStatus, &StatusRequest{}},
		{KindStatusReply, fullStatus()},
		{KindSnapshotChunk, &[]byte{1, 2, 3}},
		{KindSnapshotAck, new(uint64)},
		{KindPong, new(string)},
		{KindBackup, &BackupRequest{Consistency: Session, MinIndex: 42, Chunk: MinBackupChunk}},
		{KindBackupAsk, &BackupAsk{Stream: 7, Seq: 3}},
		{KindBackupChunk, fullBackupChunk()},
		{KindChunkPut, &ChunkPut{Sum: []byte{1, 2, 3}, Data: bytes.Repeat([]byte{0, 0xff}, 1000)}},
		{KindChunkAck, &ChunkAck{Code: CodeUnavailable, Msg: "disk"}},
		{KindChunkGet, &ChunkGet{Sum: make([]byte, 32)}},
		{KindChunkData, &ChunkData{Code: CodeOK, Msg: "m", Data: []byte("chunk")}},
		{KindChunkHas, &ChunkHas{Sums: [][]byte{make([]byte, 32), bytes.Repeat([]byte{7}, 32)}}},
		{KindChunkHeld, &ChunkHeld{Code: CodeOK, Held: []bool{true, false}}},
	}
	covered := map[Kind]bool{KindPing: true} // ping is echoed as pong, below
	for i, tt := range tests {
		covered[tt.kind] = true
		t.Run(tt.kind.String(), func(t *testing.T) {
			id := uint64(i) * 1_000_000_007
			if err := c.Send(tt.kind, id, tt.body); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			env, err := c.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if env.Kind != tt.kind || env.ID != id {
				t.Fatalf("got %s %d, want %s %d", env.Kind, env.ID, tt.kind, id)
			}
			got := reflect.New(reflect.TypeOf(tt.body).Elem())
			if err := env.Decode(got.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Interface(), tt.body) {
				t.Fatalf("got %+v, want %+v", got.Elem(), reflect.ValueOf(tt.body).Elem())
			}
		})
	}
	ping(t, c, 42)
	for k := Kind(0); k < kindEnd; k++ {
		if k.Valid() && !covered[k] {
			t.Errorf("kind %s not covered", k)
		}
	}
}

// TestBadStream sends broken frames after a good handshake. Each must end
// that connection with its own error while another connection on the same
// listener keeps working.
func TestBadStream(t *testing.T) {
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	tests := []struct {
		name   string
		stream []byte
		close  bool // close the write side after sending, for truncation
		want   error
	}{
		{"truncated header", []byte{0, 0}, true, ErrTruncated},
		{"truncated body", append(header(100), make([]byte, 10)...), true, ErrTruncated},
		{"oversize length", header(DefaultMaxFrame + 1), false, ErrFrameTooLarge},
		{"max length", header(1<<32 - 1), false, ErrFrameTooLarge},
		{"garbage body", append(header(4), 0xde, 0xad, 0xbe, 0xef), false, ErrBadBody},
		{"empty body", header(0), false, ErrBadBody},
		{"unknown kind", AppendFrame(nil, AppendEnvelope(nil, 200, 1, nil)), false, ErrBadBody},
		{"trailing bytes", AppendFrame(nil, append(AppendEnvelope(nil, KindPing, 1, nil), 0xc0)), false, ErrBadBody},
	}
	s := startServer(t, serverConfig{})
	other := dial(t, s.addr())
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := rawHandshake(t, s.addr())
			if _, err := nc.Write(tt.stream); err != nil {
				t.Fatal(err)
			}
			if tt.close {
				nc.(*net.TCPConn).CloseWrite()
			}
			err := s.result(t)
			if !errors.Is(err, tt.want) {
				t.Fatalf("server got %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrTruncated, ErrFrameTooLarge, ErrBadBody} {
				if other != tt.want && errors.Is(err, other) {
					t.Fatalf("error %v also matches %v", err, other)
				}
			}
			waitClosed(t, nc)
			ping(t, other, uint64(i))
		})
	}
}

// TestBadStreamConn checks the same errors from the reading Conn's side,
// including that they stick and that the Conn is closed.
func TestBadStreamConn(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"clean eof", nil, io.EOF},
		{"truncated header", []byte{0, 0, 0}, ErrTruncated},
		{"truncated body", []byte{0, 0, 0, 9, 0x93}, ErrTruncated},
		{"oversize", []byte{0, 0, 1, 1}, ErrFrameTooLarge},
		{"garbage", []byte{0, 0, 0, 1, 0xc1}, ErrBadBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tcpPair(t)
			c := NewConn(a, Options{MaxFrame: 256})
			defer c.Close()
			b.Write(tt.stream)
			b.Close()
			_, err := c.Recv()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if _, err2 := c.Recv(); !errors.Is(err2, tt.want) {
				t.Fatalf("second Recv: got %v, want the same error", err2)
			}
			if err := c.Send(KindPing, 1, nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after failed Recv: got %v, want ErrClosed", err)
			}
		})
	}
}

// tcpPair returns the two ends of a real TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		nc  net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		nc, err := ln.Accept()
		ch <- res{nc, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.nc.Close() })
	return a, r.nc
}

func TestSendErrorsKeepConn(t *testing.T) {
	s := startServer(t, serverConfig{})
	c, _, err := Dial(context.Background(), s.addr(), replicaHello(2), Options{MaxFrame: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name string
		send func() error
		want error // nil: any error
	}{
		{"too large", func() error { return c.Send(KindPaxos, 1, make([]byte, 2000)) }, ErrFrameTooLarge},
		{"raw too large", func() error { return c.SendRaw(KindPaxos, 1, mustMarshal(t, make([]byte, 2000))) }, ErrFrameTooLarge},
		{"unencodable", func() error { return c.Send(KindPaxos, 1, make(chan int)) }, nil},
		{"empty raw message", func() error { return c.Send(KindPaxos, 1, msgpack.RawMessage{}) }, nil},
		{"bad raw body", func() error { return c.SendRaw(KindPaxos, 1, []byte{0x92, 1}) }, ErrBadBody},
		{"undefined kind", func() error { return c.Send(0, 1, nil) }, nil},
		{"undefined raw kind", func() error { return c.SendRaw(kindEnd, 1, nil) }, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.send()
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			ping(t, c, uint64(i)) // nothing half-written: the peer still parses
		})
	}
}

func TestRawEmptyBodyIsNil(t *testing.T) {
	s := startServer(t, serverConfig{})
	c := dial(t, s.addr())
	if err := c.SendRaw(KindPing, 5, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	env, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env.Body, []byte{0xc0}) {
		t.Fatalf("body %x, want c0", []byte(env.Body))
	}
}

func TestClose(t *testing.T) {
	s := startServer(t, serverConfig{})
	c := dial(t, s.addr())
	recvErr := make(chan error, 1)
	go func() {
		_, err := c.Recv()
		recvErr <- err
	}()
	first := c.Close()
	if err := c.Close(); err != first {
		t.Fatalf("second Close: %v, first %v", err, first)
	}
	if err := <-recvErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Recv: got %v, want ErrClosed", err)
	}
	if err := c.Send(KindPing, 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send: got %v, want ErrClosed", err)
	}
	if err := c.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush: got %v, want ErrClosed", err)
	}
	if _, err := c.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv: got %v, want ErrClosed", err)
	}
	// The server sees the connection end.
	if err := s.result(t); err == nil {
		t.Fatal("server handler ended without error")
	}
}

func TestReadTimeoutClosesConn(t *testing.T) {
	s := startServer(t, serverConfig{opts: Options{ReadTimeout: 20e6}}) // 20 ms
	nc := rawHandshake(t, s.addr())
	err := s.result(t)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
	waitClosed(t, nc)
}

func TestRecvBodyAliasing(t *testing.T) {
	a, b := tcpPair(t)
	c := NewConn(a, Options{})
	defer c.Close()
	var stream []byte
	for _, s := range []string{"first", "second"} {
		var err error
		stream, err = AppendMessage(stream, KindPaxos, 0, s, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	b.Write(stream)
	env, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	kept := env.Clone()
	if _, err := c.Recv(); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := kept.Decode(&s); err != nil || s != "first" {
		t.Fatalf("clone decoded %q, %v; want first", s, err)
	}
}

func TestLargeFrames(t *testing.T) {
	const max = 3 << 20
	s := startServer(t, serverConfig{opts: Options{MaxFrame: max}})
	c, _, err := Dial(context.Background(), s.addr(), replicaHello(2), Options{MaxFrame: max})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Sizes around the buffer and growth boundaries, some twice so buffer
	// reuse is exercised, up to the maximum and back down to small.
	for i, n := range []int{0, 1, bufSize - 20, bufSize, growStep + 1, keepBuf + 1, keepBuf + 1, 10, 10, max - 64, 5} {
		v := bytes.Repeat([]byte{byte(i)}, n)
		if err := c.Send(KindSnapshotChunk, uint64(i), v); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		env, err := c.Recv()
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		var got []byte
		if err := env.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("size %d: body differs", n)
		}
	}
}

// TestConcurrentSenders has many goroutines send and flush on one Conn
// while one reader checks that every message arrives whole and once.
func TestConcurrentSenders(t *testing.T) {
	s := startServer(t, serverConfig{})
	c := dial(t, s.addr())
	const senders, each = 8, 200
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := uint64(g*each + i + 1)
				if err := c.Send(KindRequest, id, &Request{Op: OpPut, Key: fmt.Sprint(id), Value: bytes.Repeat([]byte("v"), i)}); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					if err := c.Flush(); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if err := c.Flush(); err != nil {
				t.Error(err)
			}
		}()
	}
	seen := map[uint64]bool{}
	for len(seen) < senders*each {
		env, err := c.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var r Request
		if err := env.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if r.Key != fmt.Sprint(env.ID) || seen[env.ID] {
			t.Fatalf("id %d: key %q, seen before %v", env.ID, r.Key, seen[env.ID])
		}
		seen[env.ID] = true
	}
	wg.Wait()
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		opts Options
		ok   bool
	}{
		{Options{}, true},
		{DefaultOptions(), true},
		{Options{MaxFrame: MaxFrameLimit, ReadTimeout: 1, WriteTimeout: 1, HandshakeTimeout: 1}, true},
		{Options{MaxFrame: -1}, false},
		{Options{MaxFrame: MaxFrameLimit + 1}, false},
		{Options{ReadTimeout: -1}, false},
		{Options{WriteTimeout: -1}, false},
		{Options{HandshakeTimeout: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.opts.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: got %v, want ok=%v", tt.opts, err, tt.ok)
		}
	}
	if _, _, err := Dial(context.Background(), "127.0.0.1:1", replicaHello(1), Options{MaxFrame: -1}); err == nil ||
		!strings.Contains(err.Error(), "MaxFrame") {
		t.Errorf("Dial with bad options: %v", err)
	}
}
