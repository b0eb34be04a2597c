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
