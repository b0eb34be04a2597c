package proxy

import (
	"context"
	"testing"
	"time"

	"synod/wire/line"
)

// benchProxy serves a proxy in front of a scripted master and two
// followers that answer at once, so what is measured is the proxy's own
// cost: parsing, routing, the wire round trip and the reply.
func benchProxy(b *testing.B) (*line.Client, *Server) {
	m := startFake(b, 1, "master")
	f2 := startFake(b, 2, "follower")
	f3 := startFake(b, 3, "follower")
	for _, f := range []*fakeReplica{m, f2, f3} {
		f.set(f.role, okWrites())
	}
	s, addr := startServer(b, fakeNodes(m, f2, f3), func(c *Config) { c.Poll = 20 * time.Millisecond })
	eventually(b, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	cl, err := line.Dial(context.Background(), addr, line.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl, s
}

// BenchmarkGet: one client, one GET at a time.
func BenchmarkGet(b *testing.B) {
	cl, _ := benchProxy(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, _, err := cl.Get(ctx, "k", 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkPipelined: one client keeping 64 requests in flight, 9 GETs to
// one PUT.
func BenchmarkPipelined(b *testing.B) {
	cl, _ := benchProxy(b)
	const depth = 64
	req := func(i int) line.Request {
		if i%10 == 9 {
			return line.Request{Cmd: line.CmdPut, Key: "k", Value: []byte("value")}
		}
		return line.Request{Cmd: line.CmdGet, Key: "k"}
	}
	b.ResetTimer()
	sent := 0
	for got := 0; got < b.N; got++ {
		if sent-got < depth/2 {
			for sent < b.N && sent-got < depth {
				if err := cl.Send(req(sent)); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			if err := cl.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := cl.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
