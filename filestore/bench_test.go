package filestore

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"synod/wire"
)

const benchKeys = 100_000

// benchCommands returns n PUTs of 100-byte values over benchKeys keys,
// from 1000 clients with rising seqs (so the session table is exercised
// as in production).
func benchCommands(n int, clients uint64) [][]byte {
	value := bytes.Repeat([]byte("v"), 100)
	cmds := make([][]byte, n)
	for i := range cmds {
		c := Command{Op: wire.OpPut, Stamp: 1_700_000_000_000 + int64(i/1000), Key: fmt.Sprintf("bench/key/%06d", i%benchKeys), Value: value}
		if clients > 0 {
			c.ClientID = 1 + uint64(i)%clients
			c.Seq = 1 + uint64(i)/clients
		}
		cmds[i] = EncodeCommand(nil, c)
	}
	return cmds
}

func benchApply(b *testing.B, clients uint64) {
	value := bytes.Repeat([]byte("v"), 100)
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/key/%06d", i)
	}
	m := New(Options{})
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	// Commands are encoded in the loop, because a retried seq would be
	// answered from the session cache instead of applied; encoding is
	// measured alone in BenchmarkEncodeCommand.
	for i := range b.N {
		c := Command{Op: wire.OpPut, Stamp: 1_700_000_000_000 + int64(i/1000), Key: keys[i%benchKeys], Value: value}
		if clients > 0 {
			c.ClientID = 1 + uint64(i)%clients
			c.Seq = 1 + uint64(i)/clients
		}
		buf = EncodeCommand(buf[:0], c)
		if r := m.Apply(m.Applied()+1, buf); r.Code != wire.CodeOK || r.Index != m.Applied() {
			b.Fatalf("Apply = %+v", r)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkApplyPut applies 100-byte PUTs over 100k keys, from 1000
// clients with sessions or anonymously.
func BenchmarkApplyPut(b *testing.B) {
	b.Run("sessions=1000", func(b *testing.B) { benchApply(b, 1000) })
	b.Run("sessions=none", func(b *testing.B) { benchApply(b, 0) })
}

func BenchmarkEncodeCommand(b *testing.B) {
	c := Command{Op: wire.OpPut, ClientID: 123, Seq: 4567, Stamp: 1_700_000_000_000, Key: "bench/key/000001", Value: bytes.Repeat([]byte("v"), 100)}
	var buf []byte
	for range b.N {
		buf = EncodeCommand(buf[:0], c)
	}
}

// machine100k returns a machine with 100k files of 100 bytes and 1000
// sessions.
func machine100k(b *testing.B) *Machine {
	b.Helper()
	m := New(Options{})
	applyAll(m, benchCommands(benchKeys, 1000))
	m.Digest()
	return m
}

// BenchmarkDigest measures Digest on 100k keys: from scratch (as after
// loading a snapshot), after 1000 writes, and with nothing changed (the
// every-100 ms comparison on an idle replica).
func BenchmarkDigest(b *testing.B) {
	m := machine100k(b)
	b.Run("full-100k", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			rehashAll(m)
			b.StartTimer()
			m.Digest()
		}
	})
	b.Run("after-1000-writes-100k", func(b *testing.B) {
		more := benchCommands(1000, 0)
		for range b.N {
			b.StopTimer()
			applyAll(m, more)
			b.StartTimer()
			m.Digest()
		}
	})
	b.Run("unchanged-100k", func(b *testing.B) {
		for range b.N {
			m.Digest()
		}
	})
}

func BenchmarkSnapshot(b *testing.B) {
	m := machine100k(b)
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf, SnapshotMeta{Slot: 1}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.Run("write-100k", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for range b.N {
			if err := m.WriteSnapshot(io.Discard, SnapshotMeta{Slot: 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read-100k", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for range b.N {
			if _, _, err := ReadSnapshot(bytes.NewReader(data), Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("clone-100k", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m.Clone()
		}
	})
}

func BenchmarkList(b *testing.B) {
	m := machine100k(b)
	b.Run("prefix-100-of-100k", func(b *testing.B) {
		for i := range b.N {
			if got := m.List(fmt.Sprintf("bench/key/%04d", i%1000), 0); len(got) != 100 {
				b.Fatalf("List returned %d keys", len(got))
			}
		}
	})
}
