package wire

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"
)

// benchAccept is a paxos Accept carrying one slot of 64 commands of 100
// bytes: a busy master's typical batch.
func benchAccept() *testAccept {
	cmds := make([][]byte, 64)
	for i := range cmds {
		cmds[i] = bytes.Repeat([]byte{byte(i)}, 100)
	}
	return &testAccept{Round: 42, Node: 3, Commit: 1_000_000, Entries: []testEntry{
		{Slot: 1_000_001, Round: 42, Node: 3, Cmds: cmds},
	}}
}

func BenchmarkAcceptEncode(b *testing.B) {
	msg := benchAccept()
	frame, err := AppendMessage(nil, KindPaxos, 0, msg, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	buf := make([]byte, 0, 2*len(frame))
	for b.Loop() {
		out, err := AppendMessage(buf[:0], KindPaxos, 7, msg, 0)
		if err != nil {
			b.Fatal(err)
		}
		buf = out
	}
	b.ReportMetric(float64(len(frame)), "frame-bytes")
}

func BenchmarkAcceptDecode(b *testing.B) {
	frame, err := AppendMessage(nil, KindPaxos, 7, benchAccept(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	r := bytes.NewReader(frame)
	buf := make([]byte, 0, len(frame))
	for b.Loop() {
		r.Reset(frame)
		body, err := ReadFrame(r, 0, buf)
		if err != nil {
			b.Fatal(err)
		}
		env, err := DecodeEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		var msg testAccept // fresh, as a receiver hands it on
		if err := env.Decode(&msg); err != nil {
			b.Fatal(err)
		}
		if len(msg.Entries) != 1 || len(msg.Entries[0].Cmds) != 64 {
			b.Fatal("decoded the wrong message")
		}
	}
}

// discardConn is a net.Conn that takes every write and never has anything
// to read: what Send's cost is measured against.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// BenchmarkSendAcceptBatch is a master's Send of one Accept batch to one
// follower: 8 slots of one command each, of the value size named.
func BenchmarkSendAcceptBatch(b *testing.B) {
	for _, size := range []int{100, 64 << 10, 1 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			msg := &testAccept{Round: 42, Node: 3, Commit: 1_000_000}
			for i := range 8 {
				msg.Entries = append(msg.Entries, testEntry{Slot: uint64(i), Round: 42, Node: 3,
					Cmds: [][]byte{bytes.Repeat([]byte{'v'}, size)}})
			}
			c := NewConn(discardConn{}, Options{MaxFrame: 64 << 20})
			b.SetBytes(int64(8 * size))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Send(KindPaxos, 0, msg); err != nil {
					b.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecvLarge is a follower's Recv of a frame of the size named
// (an Accept batch of large values, a chunk), from a reader that has it
// ready: the copies and allocations around the kernel's.
func BenchmarkRecvLarge(b *testing.B) {
	for _, size := range []int{1 << 20, 4 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			frame, err := AppendMessage(nil, KindPaxos, 0, bytes.Repeat([]byte{'v'}, size), 64<<20)
			if err != nil {
				b.Fatal(err)
			}
			r := &repeatReader{frame: frame}
			c := NewConn(discardConn{}, Options{MaxFrame: 64 << 20})
			c.r.Reset(r)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Recv(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// repeatReader yields frame over and over.
type repeatReader struct {
	frame []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.frame[r.off:])
	r.off = (r.off + n) % len(r.frame)
	return n, nil
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
