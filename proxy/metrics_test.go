package proxy

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"synod/wire"
)

// gathered returns the value of family name's sample whose labels include
// labels (name, value pairs): a counter's or gauge's value, a histogram's
// count; -1 if there is none.
func gathered(t *testing.T, s *Server, name string, labels ...string) float64 {
	t.Helper()
	fams, err := s.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestMetricsThroughTheProxy sends requests through a proxy in front of
// fake replicas and reads them back from its registry.
func TestMetricsThroughTheProxy(t *testing.T) {
	m := startFake(t, 1, "master")
	m.set("master", okWrites())
	f := startFake(t, 2, "follower")
	f.set("follower", okWrites())
	s, addr := startServer(t, fakeNodes(m, f), func(c *Config) { c.Poll = 10 * time.Millisecond })
	eventually(t, "a master and a follower", func() bool {
		n := s.rt.nodes()
		return n[0].Role == "master" && n[1].Role == "follower"
	})
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready with a master: %v", err)
	}
	c := dialRaw(t, addr)
	c.send("PUT a 1\r\nPUT b 2\r\nGET a\r\nCONSISTENCY stale\r\nGET a\r\nGET b\r\nGET\r\n")
	c.expect("OK ")
	c.expect("OK ")
	c.expectValue("v", 1)
	c.expect("OK")
	c.expectValue("v", 1)
	c.expectValue("v", 1)
	c.expect("ERR BAD_REQUEST")
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"synod_proxy_request_duration_seconds", []string{"op", "put", "consistency", "linearizable"}, 2},
		{"synod_proxy_request_duration_seconds", []string{"op", "get", "consistency", "linearizable"}, 1},
		{"synod_proxy_request_duration_seconds", []string{"op", "get", "consistency", "stale"}, 2},
		{"synod_proxy_request_duration_seconds", []string{"op", "get", "consistency", "session"}, 0},
		{"synod_proxy_replies_total", []string{"code", "OK"}, 5},
		{"synod_proxy_replies_total", []string{"code", "BAD_REQUEST"}, 1},
		{"synod_proxy_replies_total", []string{"code", "UNAVAILABLE"}, 0},
		{"synod_proxy_master_id", nil, 1},
		{"synod_proxy_replica_master", []string{"replica", "1"}, 1},
		{"synod_proxy_replica_master", []string{"replica", "2"}, 0},
		{"synod_proxy_replica_up", []string{"replica", "2"}, 1},
		{"synod_proxy_replica_writes_total", []string{"replica", "1"}, 2},
		{"synod_proxy_replica_reads_total", []string{"replica", "2"}, 3},
		{"synod_proxy_failover_held_requests_total", nil, 0},
		{"synod_proxy_connections", nil, 1},
		{"synod_proxy_members", nil, 2},
	} {
		if got := gathered(t, s, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestReadyWithoutMaster: a proxy that knows no master is not ready.
func TestReadyWithoutMaster(t *testing.T) {
	s, _ := startServer(t, nil, nil)
	if err := s.Ready(); err == nil {
		t.Fatal("Ready without a master: nil")
	}
	if got := gathered(t, s, "synod_proxy_master_id"); got != 0 {
		t.Fatalf("master_id %v, want 0", got)
	}
}

// TestObserve checks the request path's observations by op,
// consistency and outcome.
func TestObserve(t *testing.T) {
	for _, tc := range []struct {
		name        string
		req         wire.Request
		res         result
		held        bool
		op, level   string
		code        int
		wantHeld    float64
		wantLatency float64
	}{
		{"put", wire.Request{Op: wire.OpPut}, result{rep: wire.Reply{Code: wire.CodeOK}}, false, "put", "linearizable", int(wire.CodeOK), 0, 1},
		{"a write's level is linearizable", wire.Request{Op: wire.OpCAS, Consistency: wire.Stale}, result{rep: wire.Reply{Code: wire.CodeConflict}}, false, "cas", "linearizable", int(wire.CodeConflict), 0, 1},
		{"session read", wire.Request{Op: wire.OpGet, Consistency: wire.Session}, result{rep: wire.Reply{Code: wire.CodeNotFound}}, false, "get", "session", int(wire.CodeNotFound), 0, 1},
		{"held through a failover", wire.Request{Op: wire.OpDel}, result{rep: wire.Reply{Code: wire.CodeUnavailable}}, true, "del", "linearizable", int(wire.CodeUnavailable), 1, 1},
		{"aborted", wire.Request{Op: wire.OpAppend}, result{abort: true}, false, "append", "linearizable", abortSlot, 0, 1},
		{"membership", wire.Request{Op: wire.OpMemberAdd}, result{rep: wire.Reply{Code: wire.CodeOK}}, false, "member_add", "linearizable", int(wire.CodeOK), 0, 1},
		{"unknown op", wire.Request{Op: 200}, result{rep: wire.Reply{Code: wire.CodeOK}}, false, "other", "linearizable", int(wire.CodeOK), 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newPromMetrics()
			o := &op{req: tc.req}
			if tc.held {
				o.heldAt = time.Now().Add(-time.Second)
			}
			m.observe(o, tc.res, time.Millisecond)
			if got := m.replies[tc.code].Load(); got != 1 {
				t.Errorf("replies[%d] = %d, want 1", tc.code, got)
			}
			fams, err := m.reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var latency, held float64
			for _, f := range fams {
				for _, mm := range f.GetMetric() {
					switch f.GetName() {
					case "synod_proxy_request_duration_seconds":
						if hasLabel(mm, "op", tc.op) && hasLabel(mm, "consistency", tc.level) {
							latency += float64(mm.Histogram.GetSampleCount())
						}
					case "synod_proxy_failover_held_requests_total":
						held = mm.Counter.GetValue()
					}
				}
			}
			if latency != tc.wantLatency || held != tc.wantHeld {
				t.Errorf("latency count %v held %v, want %v and %v", latency, held, tc.wantLatency, tc.wantHeld)
			}
		})
	}
}

// TestObserveDoesNotAllocate: the request path's share of the metrics
// costs no allocation.
func TestObserveDoesNotAllocate(t *testing.T) {
	m := newPromMetrics()
	o := &op{req: wire.Request{Op: wire.OpGet, Consistency: wire.Stale}}
	res := result{rep: wire.Reply{Code: wire.CodeOK}}
	if n := testing.AllocsPerRun(1000, func() { m.observe(o, res, time.Millisecond) }); n != 0 {
		t.Fatalf("observe allocates %v times per request", n)
	}
}

// BenchmarkObserve measures what the metrics add to every request.
func BenchmarkObserve(b *testing.B) {
	m := newPromMetrics()
	o := &op{req: wire.Request{Op: wire.OpGet, Consistency: wire.Linearizable}}
	res := result{rep: wire.Reply{Code: wire.CodeOK}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.observe(o, res, 700*time.Microsecond)
		}
	})
}
