package proxy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"synod/wire"
)

// liveHeap returns the bytes of live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakRSS returns the process's peak resident set size as /proc shows it.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// TestSlowReaderStallsItself: a client pipelines GETs of a 512 KiB file and
// does not read the replies. The proxy stops taking its requests once its
// pipeline's bytes are full, instead of buffering every reply, and serves
// the other clients meanwhile; the slow client then gets every reply
// (issue 21.4: a slow reader could keep 1 GiB of replies buffered).
func TestSlowReaderStallsItself(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 512<<10)
	var served atomic.Int64
	m := startFake(t, 1, "master")
	f := startFake(t, 2, "follower")
	m.set("master", okWrites())
	f.set("follower", func(req wire.Request) (wire.Reply, bool) {
		served.Add(1)
		return wire.Reply{Value: value, Version: 1}, true
	})
	f.record = false
	s, addr := startServer(t, fakeNodes(m, f), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master", func() bool { return s.rt.nodes()[0].Role == "master" })
	before := liveHeap()

	const gets = 200 // 100 MiB of replies
	slow := dialRaw(t, addr)
	slow.send("CONSISTENCY stale\r\n" + strings.Repeat("GET big\r\n", gets))
	probe := dialRaw(t, addr)
	eventually(t, "the slow reader stalled", func() bool {
		st := probe.stats()
		return st["pipeline_stalls"] != "" && st["pipeline_stalls"] != "0" || served.Load() == gets
	})
	grown := int64(liveHeap()) - int64(before)
	t.Logf("live heap grew %d KiB with %d of %d replies served, %d bytes in flight", grown>>10, served.Load(), gets, s.InflightBytes())
	if grown > 48<<20 {
		t.Fatalf("live heap grew %d MiB for one client that does not read: its replies are buffered", grown>>20)
	}
	// Others are served meanwhile.
	other := dialRaw(t, addr)
	for range 10 {
		other.send("PUT k v\r\n")
		other.expect("OK ")
	}
	slow.expect("OK")
	for i := range gets {
		if v, _ := slow.value(); len(v) != len(value) {
			t.Fatalf("reply %d: %d bytes", i, len(v))
		}
	}
}

// TestByteBudgetManyWriters: 1,000 connections pipeline 1 MiB writes and
// read no reply until they have sent them all. The proxy's bytes in
// flight stay within MaxInflightBytes (what does not fit is answered ERR
// BUSY), its live heap within that plus its per-connection buffers, and
// another client is served all along.
func TestByteBudgetManyWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 3 GiB through the proxy")
	}
	const (
		conns    = 1000
		perConn  = 3
		valueLen = 1 << 20
		budget   = 64 << 20
	)
	m := startFake(t, 1, "master")
	m.set("master", okWrites())
	m.record = false
	f := startFake(t, 2, "follower")
	f.set("follower", okWrites())
	f.record = false
	s, addr := startServer(t, fakeNodes(m, f), func(c *Config) {
		c.Poll = 10 * time.Millisecond
		// The fakes answer STATUS from this test's process, which the
		// load starves of CPU: a poll may wait seconds. This test is
		// about memory, not about noticing a dead replica.
		c.ProbeTimeout = 10 * time.Second
		// Nor about timeouts: on a loaded machine under -race a read at
		// the fake follower, a client that reads its replies only after
		// its writes, or one waiting for the budget, may each wait long.
		c.ReadTimeout, c.WriteTimeout, c.IdleTimeout, c.Hold = time.Minute, time.Minute, time.Minute, time.Minute
		c.MaxInflightBytes = budget
		c.MaxPipelineBytes = 4 << 20
	})
	eventually(t, "a master and a follower", func() bool {
		n := s.rt.nodes()
		return n[0].Role == "master" && n[1].Role == "follower"
	})
	before := liveHeap()

	var peakBytes atomic.Int64
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if b := s.InflightBytes(); b > peakBytes.Load() {
				peakBytes.Store(b)
			}
			metrics.Read(sample)
			if h := sample[0].Value.Uint64(); h > peakHeap.Load() {
				peakHeap.Store(h)
			}
		}
	}()

	// The other client is connected, and served once, before the load.
	other := dialRaw(t, addr)
	other.send("PUT small v\r\n")
	other.expect("OK ")

	// One buffer shared by every client: the heap measured is the proxy's.
	payload := []byte(fmt.Sprintf("PUT k $%d\r\n%s\r\n", valueLen, strings.Repeat("x", valueLen)))
	var wg sync.WaitGroup
	var ok, busy atomic.Int64
	errs := make(chan error, conns)
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(2 * time.Minute))
			for range perConn {
				if _, err := nc.Write(payload); err != nil {
					errs <- fmt.Errorf("conn %d: %w", i, err)
					return
				}
			}
			// Only now read the replies.
			buf := make([]byte, 0, 256)
			tmp := make([]byte, 256)
			for got := 0; got < perConn; {
				n, err := nc.Read(tmp)
				if err != nil {
					errs <- fmt.Errorf("conn %d: %w", i, err)
					return
				}
				buf = append(buf, tmp[:n]...)
				for {
					line, rest, found := strings.Cut(string(buf), "\r\n")
					if !found {
						break
					}
					buf = []byte(rest)
					got++
					switch {
					case strings.HasPrefix(line, "OK "):
						ok.Add(1)
					case strings.HasPrefix(line, "ERR BUSY"):
						busy.Add(1)
					default:
						errs <- fmt.Errorf("conn %d: reply %q", i, line)
						return
					}
				}
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	served, servedDuring := 0, 0
	var slowest, slowestRead time.Duration
	for done := false; !done; {
		roundStart := time.Now()
		select {
		case <-writersDone:
			done = true
		default:
		}
		// A write, which queues behind the large ones the master reads
		// first, and a read a follower serves.
		other.send("PUT small v\r\nCONSISTENCY stale\r\nGET small\r\n")
		other.expect("OK ")
		other.expect("OK")
		other.expectValue("v", 0)
		readStart := time.Now()
		other.send("GET small\r\nCONSISTENCY linearizable\r\n")
		other.expectValue("v", 0)
		other.expect("OK")
		slowestRead = max(slowestRead, time.Since(readStart))
		served++
		slowest = max(slowest, time.Since(roundStart))
		select {
		case <-writersDone:
		default:
			servedDuring++ // answered while the writers still write
		}
	}
	close(stop)
	sampler.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	elapsed := time.Since(start)
	heapGrowth := int64(peakHeap.Load()) - int64(before)
	t.Logf("%d connections x %d writes of 1 MiB in %v: %d OK, %d BUSY; peak in flight %d MiB (budget %d MiB); live heap peak +%d MiB, test process peak RSS %s; another client served %d rounds during the load, slowest %v (its slowest read alone %v)",
		conns, perConn, elapsed.Round(time.Millisecond), ok.Load(), busy.Load(), peakBytes.Load()>>20, budget>>20, heapGrowth>>20,
		peakRSS(), servedDuring, slowest.Round(time.Millisecond), slowestRead.Round(time.Millisecond))
	if peakBytes.Load() > budget+1<<20 {
		t.Errorf("peak in-flight bytes %d over the budget %d", peakBytes.Load(), budget)
	}
	if heapGrowth > budget+96<<20 {
		t.Errorf("live heap grew %d MiB, budget %d MiB", heapGrowth>>20, budget>>20)
	}
	if ok.Load() == 0 || servedDuring == 0 {
		t.Errorf("nothing served: %d OK, %d rounds during the load", ok.Load(), servedDuring)
	}
}
