package wal

import (
	"bytes"
	"fmt"
	"testing"

	"synod/paxos"
)

// BenchmarkAppend measures group commit: each Append is one batch and one
// fsync, so records/s grows with the batch size while fsyncs/s stays put.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			l, _, err := Open(b.TempDir(), Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			cmd := bytes.Repeat([]byte("v"), 100)
			recs := make([]Record, batch)
			for i := range recs {
				recs[i] = Record{Kind: KindAccept, Ballot: Ballot{1, 1}, Value: paxos.ValueCmds, Cmds: [][]byte{cmd}}
			}
			slot := uint64(0)
			appends := 0
			b.SetBytes(int64(batch * len(cmd)))
			for b.Loop() {
				for i := range recs {
					recs[i].Slot = slot
					slot++
				}
				if err := l.Append(recs); err != nil {
					b.Fatal(err)
				}
				appends++
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(appends*batch)/secs, "records/s")
			b.ReportMetric(float64(appends)/secs, "fsyncs/s")
		})
	}
}

// BenchmarkEscape measures escaping a value into a log line: printable
// text (the common case, and the benchmarks' values) and random bytes.
func BenchmarkEscape(b *testing.B) {
	text := bytes.Repeat([]byte("synod-value-0123456789/abcdefghijklmnopqrstuvwxyz~"), 1<<20/50)
	bin := make([]byte, 1<<20)
	for i := range bin {
		bin[i] = byte(i * 7919 >> 3)
	}
	for _, c := range []struct {
		name string
		src  []byte
	}{{"text-1MiB", text}, {"binary-1MiB", bin}} {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]byte, 0, 4*len(c.src)+8)
			b.SetBytes(int64(len(c.src)))
			b.ReportAllocs()
			for b.Loop() {
				dst = Escape(dst[:0], c.src)
			}
		})
	}
}
