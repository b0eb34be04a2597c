package node

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"synod/paxos"
	"synod/wire"
)

// randomMessage fills every field of a paxos.Message, values of every size
// class msgpack encodes differently included.
func randomMessage(rng *rand.Rand) paxos.Message {
	num := func() uint64 {
		switch rng.IntN(5) {
		case 0:
			return 0
		case 1:
			return uint64(rng.IntN(128))
		case 2:
			return uint64(rng.IntN(1 << 16))
		case 3:
			return uint64(rng.Uint32())
		}
		return rng.Uint64()
	}
	ballot := func() paxos.Ballot { return paxos.Ballot{Round: num(), Node: paxos.NodeID(num())} }
	m := paxos.Message{
		Type: paxos.MsgType(rng.IntN(16)), From: paxos.NodeID(num()), To: paxos.NodeID(num()),
		Ballot: ballot(), Slot: num(), Index: num(), Commit: num(), Context: num(),
		Reject: rng.IntN(2) == 0, Hint: ballot(), Learner: rng.IntN(2) == 0, Force: rng.IntN(2) == 0,
		Transfer: paxos.NodeID(num()), Token: num(), ConfSlot: num(),
	}
	if rng.IntN(4) == 0 {
		return m // nil Entries
	}
	m.Entries = make([]paxos.Entry, rng.IntN(4))
	for i := range m.Entries {
		e := &m.Entries[i]
		e.Slot, e.Ballot, e.Value.Kind = num(), ballot(), paxos.ValueKind(rng.IntN(3))
		if rng.IntN(4) == 0 {
			continue // nil Cmds
		}
		e.Value.Cmds = make([][]byte, rng.IntN(4))
		for j := range e.Value.Cmds {
			sizes := []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000}
			e.Value.Cmds[j] = bytes.Repeat([]byte{byte(rng.Uint32())}, sizes[rng.IntN(len(sizes))])
		}
	}
	return m
}

// TestAliasMessageMatchesUnmarshal holds the hand-written decoder to
// msgpack's on random messages: if paxos.Message gains, loses or reorders a
// field, this fails, and aliasMessage must follow.
func TestAliasMessageMatchesUnmarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 3000 {
		m := randomMessage(rng)
		body, err := wire.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		var want, got paxos.Message
		if err := wire.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if err := aliasMessage(body, &got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("message %d: decoded\n%+v\nUnmarshal gives\n%+v", i, got, want)
		}
		var viaPeer paxos.Message
		aliased, err := decodePeerMessage(body, &viaPeer)
		if err != nil || aliased != (len(body) >= aliasMin) || !reflect.DeepEqual(viaPeer, want) {
			t.Fatalf("message %d: decodePeerMessage: aliased %v, %v", i, aliased, err)
		}
	}
}

// TestAppendPeerMessageMatchesMarshal holds the hand-written encoder to
// msgpack's bytes on random messages, nil commands among them; a message
// with a command of aliasMin bytes or more is left to wire.Conn.Send.
func TestAppendPeerMessageMatchesMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 3))
	for i := range 3000 {
		m := randomMessage(rng)
		if len(m.Entries) > 0 && len(m.Entries[0].Value.Cmds) > 0 && rng.IntN(3) == 0 {
			m.Entries[0].Value.Cmds[0] = nil
		}
		want, err := wire.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		large := false
		for _, e := range m.Entries {
			for _, c := range e.Value.Cmds {
				large = large || len(c) >= aliasMin
			}
		}
		got, ok := appendPeerMessage([]byte{0xee}, &m)
		switch {
		case ok == large:
			t.Fatalf("message %d: encoded by hand %v, with a large command %v", i, ok, large)
		case !ok && len(got) != 1:
			t.Fatalf("message %d: declined but appended", i)
		case ok && (got[0] != 0xee || !bytes.Equal(got[1:], want)):
			t.Fatalf("message %d: encoded\n%x\nmsgpack's\n%x", i, got[1:], want)
		}
	}
}

// TestDecodePeerMessageCopiesSmall: a message decoded from a small body
// holds no byte of it (the connection reuses the buffer).
func TestDecodePeerMessageCopiesSmall(t *testing.T) {
	m := paxos.Message{Type: paxos.MsgAccept, From: 1, To: 2, Entries: []paxos.Entry{
		{Slot: 7, Value: paxos.Value{Cmds: [][]byte{[]byte("put 1.1.1 0 k v"), {}, nil}}}}}
	body, err := wire.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	var got paxos.Message
	aliased, err := decodePeerMessage(body, &got)
	if err != nil || aliased {
		t.Fatalf("aliased %v, %v", aliased, err)
	}
	for i := range body {
		body[i] = 0xff
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("after the body changed: %+v, want %+v", got, m)
	}
}

// FuzzDecodePeerMessage checks that on any input the in-place decoder
// either agrees with msgpack or leaves the message to it.
func FuzzDecodePeerMessage(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 8 {
		m := randomMessage(rng)
		body, _ := wire.Marshal(&m)
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got paxos.Message
		if aliasMessage(body, &got) != nil {
			return
		}
		var want paxos.Message
		if err := wire.Unmarshal(body, &want); err != nil {
			t.Fatalf("aliasMessage took what Unmarshal refuses: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, Unmarshal gives %+v", got, want)
		}
	})
}

// BenchmarkDecodeAccept is a follower's decode of an Accept of 8 slots of
// one 1 MiB command each: in place (what readPeer does) against
// wire.Unmarshal (what it did).
func BenchmarkDecodeAccept(b *testing.B) {
	m := paxos.Message{Type: paxos.MsgAccept, From: 1, To: 2, Ballot: paxos.Ballot{Round: 9, Node: 1}, Commit: 1 << 20}
	for i := range 8 {
		m.Entries = append(m.Entries, paxos.Entry{Slot: uint64(1<<20 + i), Ballot: m.Ballot,
			Value: paxos.Value{Cmds: [][]byte{bytes.Repeat([]byte{'v'}, 1<<20)}}})
	}
	body, err := wire.Marshal(&m)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		decode func(*paxos.Message) error
	}{
		{"in-place", func(m *paxos.Message) error { _, err := decodePeerMessage(body, m); return err }},
		{"unmarshal", func(m *paxos.Message) error { return wire.Unmarshal(body, m) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var got paxos.Message
				if err := c.decode(&got); err != nil || len(got.Entries) != 8 {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchSmallAccept is a master's Accept of one slot of 24 writes of 100
// bytes, the batch size of 64 writers through one proxy.
func benchSmallAccept() paxos.Message {
	m := paxos.Message{Type: paxos.MsgAccept, From: 1, To: 2, Ballot: paxos.Ballot{Round: 9, Node: 1}, Commit: 1 << 20}
	e := paxos.Entry{Slot: 1<<20 + 1, Ballot: m.Ballot}
	for i := range 24 {
		e.Value.Cmds = append(e.Value.Cmds, append([]byte(fmt.Sprintf("put 123456789.%d.%d 1764629000000 key-%04d ", i, i, i)), bytes.Repeat([]byte{'v'}, 100)...))
	}
	m.Entries = []paxos.Entry{e}
	return m
}

// BenchmarkEncodeSmallAccept: the hand-written encoder writePeer uses
// against wire.AppendMarshal (what it did, through Conn.Send).
func BenchmarkEncodeSmallAccept(b *testing.B) {
	m := benchSmallAccept()
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = appendPeerMessage(buf[:0], &m)
		}
	})
	b.Run("msgpack", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = wire.AppendMarshal(buf[:0], &m)
		}
	})
}

// BenchmarkDecodeSmallAccept: decodePeerMessage of a small Accept against
// wire.Unmarshal (what it did).
func BenchmarkDecodeSmallAccept(b *testing.B) {
	m := benchSmallAccept()
	body, err := wire.Marshal(&m)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got paxos.Message
			if _, err := decodePeerMessage(body, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got paxos.Message
			if err := wire.Unmarshal(body, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
