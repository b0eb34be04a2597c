package wire

import (
	"bytes"
	"testing"
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
