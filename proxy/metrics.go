package proxy

// metrics.go: the proxy's Prometheus metrics. The request path observes
// only what STATS does not already count, through histogram observers and
// counters resolved once at start (no label lookup, no allocation, no lock
// per request): latency by operation and consistency, replies by code,
// time held during a failover. Everything else is read at scrape time, on
// the HTTP server's goroutine, from the counters STATS shows (stats.go)
// and from the router under its mutex, so nothing is counted twice.

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"synod/wire"
)

// maxOps and maxCodes bound the wire ops and codes resolved at start; a
// newer one past them counts as "other".
const (
	maxOps   = 32
	maxCodes = 32
)

// promMetrics is what the request path observes.
type promMetrics struct {
	reg *prometheus.Registry
	// lat[op][consistency]; writes and membership ops use Linearizable.
	lat      [maxOps][3]prometheus.Observer
	latOther prometheus.Observer
	replies  [maxCodes + 1]atomic.Uint64 // by wire code; the last slot counts aborted connections
	heldN    prometheus.Counter
	heldFor  prometheus.Histogram
}

const abortSlot = maxCodes

func newPromMetrics() *promMetrics {
	m := &promMetrics{reg: prometheus.NewRegistry()}
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "synod", Subsystem: "proxy", Name: "request_duration_seconds",
		Help:    "Time from a request's arrival at the proxy to its reply, by operation and read consistency (writes: linearizable).",
		Buckets: prometheus.ExponentialBuckets(100e-6, 2, 17),
	}, []string{"op", "consistency"})
	for op := 1; op < maxOps; op++ {
		name := wire.Op(op).String()
		if name == "UNKNOWN" {
			continue
		}
		for c := range 3 {
			if wire.Op(op).IsWrite() || wire.Op(op).IsMemberChange() || wire.Op(op) == wire.OpMembers {
				if c != int(wire.Linearizable) {
					m.lat[op][c] = m.lat[op][wire.Linearizable]
					continue
				}
			}
			m.lat[op][c] = vec.WithLabelValues(opLabel(wire.Op(op)), wire.Consistency(c).String())
		}
	}
	m.latOther = vec.WithLabelValues("other", "linearizable")
	m.heldN = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "synod", Subsystem: "proxy", Name: "failover_held_requests_total",
		Help: "Requests the proxy held because it knew no master (or no replica could take them), until answered.",
	})
	m.heldFor = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "synod", Subsystem: "proxy", Name: "failover_hold_duration_seconds",
		Help:    "Time from a request's first hold without a master to its reply.",
		Buckets: prometheus.ExponentialBuckets(1e-3, 2, 14),
	})
	m.reg.MustRegister(vec, m.heldN, m.heldFor,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// opLabel is op's verb as a label value: "get", "member_add".
func opLabel(op wire.Op) string {
	return strings.ReplaceAll(strings.ToLower(op.String()), " ", "_")
}

// observe records an op that ended with res, after d. Any goroutine.
func (m *promMetrics) observe(o *op, res result, d time.Duration) {
	obs := m.latOther
	if op := int(o.req.Op); op < maxOps {
		c := int(o.req.Consistency)
		if c > 2 {
			c = 0
		}
		if l := m.lat[op][c]; l != nil {
			obs = l
		}
	}
	obs.Observe(d.Seconds())
	switch {
	case res.abort:
		m.replies[abortSlot].Add(1)
	case int(res.rep.Code) < maxCodes:
		m.replies[res.rep.Code].Add(1)
	}
	if !o.heldAt.IsZero() {
		m.heldN.Inc()
		m.heldFor.Observe(time.Since(o.heldAt).Seconds())
	}
}

// Registry returns the registry of the proxy's metrics, for an HTTP
// handler to serve.
func (s *Server) Registry() *prometheus.Registry { return s.prom.reg }

// Ready returns nil when the proxy knows a master, or why not.
func (s *Server) Ready() error {
	s.rt.mu.Lock()
	defer s.rt.mu.Unlock()
	if s.rt.closed {
		return errProxyClosed
	}
	if s.rt.master == nil {
		return errNoMaster
	}
	return nil
}

type readyError string

func (e readyError) Error() string { return string(e) }

const (
	errProxyClosed = readyError("proxy: shutting down")
	errNoMaster    = readyError("proxy: no master known")
)

// proxyCollector reads the proxy's state at scrape time.
type proxyCollector struct{ s *Server }

func proxyDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("synod_proxy_"+name, help, labels, nil)
}

var (
	pdConns        = proxyDesc("connections", "Client connections open now.")
	pdConnsTotal   = proxyDesc("connections_total", "Client connections accepted.")
	pdConnsRefused = proxyDesc("connections_refused_total", "Client connections answered BUSY at accept (--max-conns).")
	pdRequests     = proxyDesc("requests_total", "Client requests parsed, errors included.")
	pdReplies      = proxyDesc("replies_total", "Replies to client requests by code (OK, NOT_FOUND, CONFLICT, UNAVAILABLE, BUSY, TIMEOUT, BAD_REQUEST, …; ABORTED: a connection closed over a write of unknown outcome).", "code")
	pdRetries      = proxyDesc("retries_total", "Attempts that failed at a replica and were tried again.")
	pdFailovers    = proxyDesc("failovers_total", "Times the master the proxy follows changed to another replica.")
	pdOverflows    = proxyDesc("hold_overflows_total", "Requests refused UNAVAILABLE because the hold queue was full.")
	pdExpired      = proxyDesc("hold_expired_total", "Held requests whose hold window ended before a master could take them.")
	pdRebases      = proxyDesc("session_rebases_total", "Sessions moved to a fresh client id.")
	pdHeld         = proxyDesc("held_requests", "Requests waiting in the proxy now: reads in the hold queue, writes not sent yet.")
	pdHeldBytes    = proxyDesc("held_bytes", "Bytes of the requests waiting in the proxy now.")
	pdInflight     = proxyDesc("inflight_requests", "Requests admitted and not answered yet.")
	pdInflightB    = proxyDesc("inflight_bytes", "Bytes of requests and unwritten replies in flight (--max-inflight-bytes).")
	pdMaster       = proxyDesc("master_id", "Id of the master the proxy sends writes to, 0 if none is known.")
	pdMembers      = proxyDesc("members", "Replicas in the configuration the proxy follows.")
	pdRepUp        = proxyDesc("replica_up", "1 while the proxy is connected to the replica and its last poll answered.", "replica")
	pdRepMaster    = proxyDesc("replica_master", "1 for the replica the proxy takes as master.", "replica")
	pdRepEjected   = proxyDesc("replica_ejected", "1 while the replica gets no reads after a failed one.", "replica")
	pdRepApplied   = proxyDesc("replica_applied_index", "Highest command index the replica applied, as the proxy last saw.", "replica")
	pdRepLag       = proxyDesc("replica_lag_commands", "Commands the replica has still to apply to reach the master's commit index, as the proxy last saw.", "replica")
	pdRepReads     = proxyDesc("replica_reads_total", "Reads the replica answered for this proxy; each replica's share is its rate over the sum.", "replica")
	pdRepWrites    = proxyDesc("replica_writes_total", "Writes the replica answered for this proxy.", "replica")
	pdRepInflight  = proxyDesc("replica_inflight_requests", "Requests sent to the replica and not answered.", "replica")
	pdRepLatency   = proxyDesc("replica_latency_ewma_seconds", "The replica's reply latency estimate (median of its last replies, drifting toward the other followers' while idle), what read balancing compares; the name is kept for dashboards.", "replica")
	pdRepEjections = proxyDesc("replica_ejections_total", "Times the replica was taken out of read balancing.", "replica")
	pdRepFreeDisk  = proxyDesc("replica_disk_free_bytes", "Bytes free in the replica's data directory, as its last poll said.", "replica")
	pdWatches      = proxyDesc("watches", "Watches open now.")
	pdWatchEvents  = proxyDesc("watch_events_total", "Watch events handed to clients' connections.")
	pdWatchCuts    = proxyDesc("watch_cuts_total", "Watches cut because their client did not read (CANCELED ... SLOW).")
	pdWatchPolls   = proxyDesc("replica_watch_polls_total", "Watch polls the replica answered for this proxy.", "replica")
)

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pdConns, pdConnsTotal, pdConnsRefused, pdRequests, pdReplies, pdRetries,
		pdFailovers, pdOverflows, pdExpired, pdRebases, pdHeld, pdHeldBytes, pdInflight, pdInflightB, pdMaster,
		pdMembers, pdRepUp, pdRepMaster, pdRepEjected, pdRepApplied, pdRepLag, pdRepReads, pdRepWrites,
		pdRepInflight, pdRepLatency, pdRepEjections, pdRepFreeDisk, pdWatches, pdWatchEvents, pdWatchCuts, pdWatchPolls} {
		ch <- d
	}
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	cnt := s.cnt
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(pdConns, float64(max(cnt.conns.Load(), 0)))
	counter(pdConnsTotal, cnt.connsTotal.Load())
	counter(pdConnsRefused, cnt.connsRefused.Load())
	counter(pdRequests, cnt.requests.Load())
	counter(pdRetries, cnt.retries.Load())
	counter(pdFailovers, cnt.failovers.Load())
	counter(pdOverflows, cnt.bufferOverflows.Load())
	counter(pdExpired, cnt.bufferExpired.Load())
	counter(pdRebases, cnt.rebases.Load())
	gauge(pdWatches, float64(max(cnt.watches.Load(), 0)))
	counter(pdWatchEvents, cnt.watchEvents.Load())
	counter(pdWatchCuts, cnt.watchCuts.Load())
	gauge(pdInflightB, float64(max(s.mem.Load(), 0)))
	gauge(pdInflight, float64(s.rt.inflight.Load()))
	// Replies: the router's, plus the two refusals made before a request
	// reaches it (the parser's BAD_REQUEST, the byte budget's BUSY). Codes
	// without a name are summed as UNKNOWN.
	var unknown uint64
	for code := range maxCodes {
		v := s.prom.replies[code].Load()
		switch wire.Code(code) {
		case wire.CodeBadRequest:
			v += cnt.badRequests.Load()
		case wire.CodeBusy:
			v += cnt.memBusy.Load()
		}
		name := wire.Code(code).String()
		switch {
		case name == "UNKNOWN":
			unknown += v
		case v > 0 || alwaysShownCode(wire.Code(code)):
			counter(pdReplies, v, name)
		}
	}
	if unknown > 0 {
		counter(pdReplies, unknown, "UNKNOWN")
	}
	counter(pdReplies, s.prom.replies[abortSlot].Load(), "ABORTED")

	type fig struct {
		id                     string
		up, master, ej         bool
		applied, lag, freeDisk uint64
		reads, writes, ejects  uint64
		watchPolls             uint64
		inflight               int
		ewmaMs                 float64
	}
	now := time.Now()
	rt := s.rt
	rt.mu.Lock()
	var masterID, commit uint64
	if rt.master != nil {
		masterID, commit = rt.master.id, max(rt.master.status.Commit, rt.master.applied)
	}
	held, heldBytes, members := rt.held, rt.heldBytes, len(rt.reps)
	figs := make([]fig, 0, len(rt.reps))
	for _, rp := range rt.reps {
		applied := max(rp.applied, rp.status.Applied)
		f := fig{id: strconv.FormatUint(rp.id, 10), up: rp.alive, master: rp == rt.master, ej: rp.ejected,
			applied: applied, freeDisk: rp.status.FreeDisk, reads: rp.reads.Load(), writes: rp.writes.Load(),
			ejects: rp.ejections.Load(), inflight: rp.inflight, ewmaMs: rp.lat.value(now, rt.peerLatency(rp)), watchPolls: rp.watchPolls.Load()}
		if rt.master != nil && commit > applied {
			f.lag = commit - applied
		}
		figs = append(figs, f)
	}
	rt.mu.Unlock()
	gauge(pdMaster, float64(masterID))
	gauge(pdMembers, float64(members))
	gauge(pdHeld, float64(held))
	gauge(pdHeldBytes, float64(heldBytes))
	for _, f := range figs {
		gauge(pdRepUp, b2f(f.up), f.id)
		gauge(pdRepMaster, b2f(f.master), f.id)
		gauge(pdRepEjected, b2f(f.ej), f.id)
		gauge(pdRepApplied, float64(f.applied), f.id)
		gauge(pdRepLag, float64(f.lag), f.id)
		counter(pdRepReads, f.reads, f.id)
		counter(pdRepWrites, f.writes, f.id)
		gauge(pdRepInflight, float64(f.inflight), f.id)
		gauge(pdRepLatency, f.ewmaMs/1000, f.id)
		counter(pdRepEjections, f.ejects, f.id)
		counter(pdWatchPolls, f.watchPolls, f.id)
		if f.up {
			gauge(pdRepFreeDisk, float64(f.freeDisk), f.id)
		}
	}
}

// alwaysShownCode: the codes a dashboard plots are present from the first
// scrape, at 0, so a rate over them starts at once.
func alwaysShownCode(c wire.Code) bool {
	switch c {
	case wire.CodeOK, wire.CodeNotFound, wire.CodeConflict, wire.CodeUnavailable, wire.CodeBusy, wire.CodeTimeout, wire.CodeBadRequest:
		return true
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
