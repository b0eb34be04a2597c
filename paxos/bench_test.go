package paxos

import (
	"fmt"
	"testing"
)

// BenchmarkStep3 measures the core alone: three replicas in one goroutine,
// the master proposing batches of 64 commands of 100 bytes, every message
// delivered in process until the cluster is quiet. No disk, no network:
// what is left is the cost of Propose, Step, Ready and Advance. inflight is
// how many batches the master proposes before the messages move.
func BenchmarkStep3(b *testing.B) {
	const cmdsPerBatch, cmdSize = 64, 100
	for _, inflight := range []int{1, 8} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			c := newCluster(b, clusterOptions{nodes: 3, bench: true, config: benchConfig})
			for c.node(1).r.role != Master {
				c.now++
				for _, nd := range c.nodes {
					nd.r.Tick()
				}
				c.run()
			}
			master := c.node(1).r
			batch := make([][]byte, cmdsPerBatch)
			for i := range batch {
				batch[i] = make([]byte, cmdSize)
			}
			start := master.Committed()

			b.ReportAllocs()
			b.ResetTimer()
			proposals := 0
			for b.Loop() {
				for range inflight {
					if _, err := master.Propose(batch); err != nil {
						b.Fatal(err)
					}
				}
				proposals += inflight
				c.run()
			}
			b.StopTimer()

			if got := master.Committed() - start; got != uint64(proposals) {
				b.Fatalf("chose %d slots, want %d", got, proposals)
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(proposals)/secs, "proposals/s")
			b.ReportMetric(float64(proposals*cmdsPerBatch)/secs, "cmds/s")
		})
	}
}

// benchConfig is the production configuration, with the timing of
// DefaultConfig.
func benchConfig(id NodeID, members []NodeID, rnd Rand) Config {
	cfg := DefaultConfig()
	cfg.ID, cfg.Members, cfg.Rand = id, members, rnd
	return cfg
}
