package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"testing"
)

// connPair returns two Conns joined by an in-memory pipe.
func connPair(t *testing.T, opts Options) (*Conn, *Conn) {
	t.Helper()
	a, b := net.Pipe()
	ca, cb := NewConn(a, opts), NewConn(b, opts)
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return ca, cb
}

// TestSendByReference sends frames whose large byte strings Send keeps by
// reference (several in one body, at and around refMin, between small
// frames already buffered) and checks that each arrives as it was encoded
// and as Marshal encodes it.
func TestSendByReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	sizes := []int{0, 1, refMin - 1, refMin, refMin + 1, 3 << 20, 5<<20 + 17}
	var msgs []*testAccept
	for i, n := range sizes {
		cmds := [][]byte{blob(n), []byte("small"), blob(sizes[(i+3)%len(sizes)])}
		msgs = append(msgs, &testAccept{Round: uint64(i), Node: 3, Commit: 1 << 40, Entries: []testEntry{
			{Slot: uint64(i), Round: 1, Cmds: cmds}, {Slot: uint64(i) + 1, Cmds: [][]byte{blob(n)}},
		}})
	}
	sender, receiver := connPair(t, Options{MaxFrame: 64 << 20})
	errc := make(chan error, 1)
	go func() {
		for i, m := range msgs {
			// A small frame first, left in the buffer, then the large one.
			if err := sender.Send(KindPing, uint64(2*i), nil); err != nil {
				errc <- err
				return
			}
			if err := sender.Send(KindPaxos, uint64(2*i+1), m); err != nil {
				errc <- err
				return
			}
		}
		errc <- sender.Flush()
	}()
	for i, m := range msgs {
		env, err := receiver.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if env.Kind != KindPing || env.ID != uint64(2*i) {
			t.Fatalf("frame %d: got %s %d, want the ping", i, env.Kind, env.ID)
		}
		env, err = receiver.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if want := mustMarshal(t, m); !bytes.Equal(env.Body, want) {
			t.Fatalf("message %d: body of %d bytes differs from Marshal's %d", i, len(env.Body), len(want))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestSendByReferenceTooLarge checks that a frame over MaxFrame because of
// its referenced bytes is refused whole and leaves the Conn usable.
func TestSendByReferenceTooLarge(t *testing.T) {
	sender, receiver := connPair(t, Options{MaxFrame: 1 << 20})
	big := &testAccept{Entries: []testEntry{{Cmds: [][]byte{make([]byte, 600<<10), make([]byte, 600<<10)}}}}
	if err := sender.Send(KindPaxos, 1, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send of a frame over the maximum: %v, want ErrFrameTooLarge", err)
	}
	go func() {
		sender.Send(KindPing, 2, nil)
		sender.Flush()
	}()
	env, err := receiver.Recv()
	if err != nil || env.Kind != KindPing || env.ID != 2 {
		t.Fatalf("after the refused frame: %v %v, want ping 2", env, err)
	}
}

// TestReadBodyPooled reads frames of sizes around the pool's classes, one
// after another on one Conn (so each draws on the buffer the last gave
// back), and checks every byte.
func TestReadBodyPooled(t *testing.T) {
	sizes := []int{keepBuf + 1, 2 << 20, 2<<20 + 1, 100, 4<<20 - 1, 4 << 20, 3 << 20, 8<<20 + 5, keepBuf}
	sender, receiver := connPair(t, Options{MaxFrame: 64 << 20})
	go func() {
		for i, n := range sizes {
			body := mustMarshal(t, bytes.Repeat([]byte{byte(i + 1)}, n))
			if err := sender.SendRaw(KindPaxos, uint64(i), body); err != nil {
				return
			}
			if err := sender.Flush(); err != nil {
				return
			}
		}
	}()
	for i, n := range sizes {
		env, err := receiver.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := env.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if len(got) != n || !bytes.Equal(got, bytes.Repeat([]byte{byte(i + 1)}, n)) {
			t.Fatalf("frame %d: %d bytes back, want %d of %d", i, len(got), n, i+1)
		}
	}
}

func TestBigClass(t *testing.T) {
	for _, c := range []struct{ n, class, cap int }{
		{1 << 21, 21, 1 << 21}, {1<<21 + 1, 22, 1 << 22}, {keepBuf + 1, 21, 1 << 21},
		{100, 7, 100}, {1<<26 + 1, 27, 1<<26 + 1},
	} {
		if k := bigClass(c.n); k != c.class {
			t.Errorf("bigClass(%d) = %d, want %d", c.n, k, c.class)
		}
		if got := pooledCap(c.n); got != c.cap {
			t.Errorf("pooledCap(%d) = %d, want %d", c.n, got, c.cap)
		}
	}
	putBig(make([]byte, 0, 3<<20)) // class 21: serves 2 MiB, not 3
	if b := getBig(2 << 20); b != nil && (len(b) != 2<<20 || cap(b) < 2<<20) {
		t.Fatalf("getBig(2 MiB) = len %d cap %d", len(b), cap(b))
	}
}

// TestKeepBody checks that a body kept with KeepBody survives the Recvs
// after it, large and small, while one not kept is reused.
func TestKeepBody(t *testing.T) {
	sender, receiver := connPair(t, Options{MaxFrame: 64 << 20})
	sizes := []int{3 << 20, 3 << 20, 100, 5 << 20, 3 << 20}
	go func() {
		for i, n := range sizes {
			if err := sender.Send(KindPaxos, uint64(i), bytes.Repeat([]byte{byte('a' + i)}, n)); err != nil {
				return
			}
			if err := sender.Flush(); err != nil {
				return
			}
		}
	}()
	var kept [][]byte
	for i, n := range sizes {
		env, err := receiver.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(env.Body) < n {
			t.Fatalf("frame %d: %d bytes", i, len(env.Body))
		}
		if i%2 == 0 {
			receiver.KeepBody()
			kept = append(kept, env.Body)
		}
	}
	for j, b := range kept {
		var got []byte
		if err := Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		i := 2 * j
		if !bytes.Equal(got, bytes.Repeat([]byte{byte('a' + i)}, sizes[i])) {
			t.Fatalf("kept body of frame %d changed after later frames", i)
		}
	}
}
