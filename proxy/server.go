package proxy

// server.go: the listener and the set of connections. Serve's goroutine
// accepts; each connection runs in goroutines of its own (conn.go);
// Shutdown and Close may be called from anywhere.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"synod/wire/line"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Accept errors back off this long at first, doubling up to maxAcceptDelay,
// so a listener out of file descriptors does not spin.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// busyReply is written to a connection over Config.MaxConns before closing
// it.
const busyReply = "ERR " + line.CodeBusy + " too many connections\r\n"

// busyRESP is busyReply for a connection whose first byte says it speaks
// Redis's protocol.
const busyRESP = "-BUSY too many connections\r\n"

// Server is the client-facing proxy: it serves the line protocol, sends
// writes to the master and reads to the followers, and holds requests
// through a failover. Create it with New; it polls the replicas from then
// on, until Shutdown or Close.
type Server struct {
	cfg  Config
	log  zerolog.Logger
	rt   *router
	cnt  *counters
	auth *authority   // users and permissions (auth.go)
	mem  atomic.Int64 // bytes of requests and replies in flight (MaxInflightBytes)

	backups atomic.Int32 // backups being streamed (backup.go)
	uploads uploadLimits // uploads in progress per client (uploadlimit.go)

	prom *promMetrics // Prometheus figures (metrics.go), the router's

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[*conn]struct{}
	closed bool
	done   chan struct{} // closed by Shutdown and Close
	wg     sync.WaitGroup
}

// New validates cfg and starts polling the replicas.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nodes := make(map[uint64]string, len(cfg.Nodes))
	for id, addr := range cfg.Nodes {
		nodes[id] = addr
	}
	cfg.Nodes = nodes
	cfg.Seeds = slices.Clone(cfg.Seeds)
	s := &Server{
		cfg: cfg, log: cfg.Logger, cnt: newCounters(),
		lns: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{},
		done: make(chan struct{}),
	}
	s.rt = newRouter(&s.cfg, s.cnt)
	s.prom = s.rt.prom
	s.prom.reg.MustRegister(&proxyCollector{s: s})
	s.rt.start()
	s.startAuth()
	return s, nil
}

// ListenAndServe listens on Config.Listen and serves it.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy: listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ln)
}

// Serve accepts client connections on ln and serves each in goroutines of
// its own, until Shutdown or Close (then it returns ErrServerClosed) or a
// permanent accept error. Accept errors are retried after 5 ms, doubling up
// to 1 s. Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	ln = s.cfg.wrapListener(ln)
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("proxy: accept: %w", err)
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			s.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
			t := time.NewTimer(delay)
			select {
			case <-s.done:
				t.Stop()
				return ErrServerClosed
			case <-t.C:
			}
			continue
		}
		delay = 0
		s.admit(nc)
	}
}

// admit serves nc, or answers BUSY and closes it when MaxConns are served.
func (s *Server) admit(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return
	}
	s.wg.Add(1)
	if len(s.conns) >= s.cfg.MaxConns {
		s.cnt.connsRefused.Add(1)
		go func() {
			defer s.wg.Done()
			defer nc.Close()
			// Answer in the client's protocol: a Redis client that sent its
			// first command in the next 200 ms gets a RESP error.
			reply := busyReply
			nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			var first [1]byte
			if n, _ := nc.Read(first[:]); n == 1 && first[0] == '*' {
				reply = busyRESP
			}
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte(reply))
		}()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.cnt.conns.Add(1)
	s.cnt.connsTotal.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.cnt.conns.Add(-1)
	}()
}

// Shutdown stops accepting, stops reading requests, and waits until the
// replies to every request already read are written or ctx ends; then it
// closes everything as Close does. It returns ctx's error if ctx ended
// first.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.stopAccepting() {
		return nil
	}
	s.mu.Lock()
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		for {
			s.mu.Lock()
			n := len(s.conns)
			s.mu.Unlock()
			if n == 0 {
				close(idle)
				return
			}
			select {
			case <-ctx.Done():
				close(idle)
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	<-idle
	s.closeAll()
	return ctx.Err()
}

// Close closes the listeners and every connection at once. Requests in
// flight are answered UNAVAILABLE where nothing can have been applied; a
// connection with a write whose fate is unknown is just closed.
func (s *Server) Close() error {
	if s.stopAccepting() {
		s.closeAll()
	}
	return nil
}

// stopAccepting marks the server closed and closes its listeners; false if
// it already was.
func (s *Server) stopAccepting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	close(s.done)
	for ln := range s.lns {
		ln.Close()
	}
	return true
}

func (s *Server) closeAll() {
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.rt.close()
	s.wg.Wait()
}

// tryCharge adds n in-flight bytes if they fit MaxInflightBytes.
func (s *Server) tryCharge(n int64) bool {
	for {
		cur := s.mem.Load()
		if cur+n > s.cfg.MaxInflightBytes {
			return false
		}
		if s.mem.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// InflightBytes returns the bytes of requests and unwritten replies the
// proxy holds now (what MaxInflightBytes bounds).
func (s *Server) InflightBytes() int64 { return s.mem.Load() }

// Nodes returns every replica as the proxy sees it, as STATUS shows them.
func (s *Server) Nodes() []line.NodeStatus { return s.rt.nodes() }

// Stats returns the figures STATS shows.
func (s *Server) Stats() []line.Stat { return s.stats() }

func (s *Server) stats() []line.Stat {
	c := s.cnt
	u := func(name string, v uint64) line.Stat { return line.Stat{Name: name, Value: strconv.FormatUint(v, 10)} }
	out := []line.Stat{
		u("uptime_s", uint64(time.Since(c.started)/time.Second)),
		u("connections", uint64(max(c.conns.Load(), 0))),
		u("connections_total", c.connsTotal.Load()),
		u("connections_refused", c.connsRefused.Load()),
		u("requests", c.requests.Load()),
		u("bad_requests", c.badRequests.Load()),
		u("reads", c.reads.Load()),
		u("writes", c.writes.Load()),
		u("unavailable", c.unavailable.Load()),
		u("busy", c.busy.Load()),
		u("timeouts", c.timeouts.Load()),
		u("aborted_connections", c.aborts.Load()),
		u("retries", c.retries.Load()),
		u("buffer_overflows", c.bufferOverflows.Load()),
		u("buffer_expired", c.bufferExpired.Load()),
		u("failovers", c.failovers.Load()),
		u("busy_bytes", c.memBusy.Load()),
		u("inflight_bytes", uint64(max(s.mem.Load(), 0))),
		u("pipeline_stalls", c.stalls.Load()),
		u("session_read_redos", c.readRedos.Load()),
		u("member_changes", c.memberChanges.Load()),
		u("members_added", c.membersAdded.Load()),
		u("members_removed", c.membersRemoved.Load()),
		u("watches", uint64(max(c.watches.Load(), 0))),
		u("watches_total", c.watchesTotal.Load()),
		u("watch_polls", c.watchPolls.Load()),
		u("watch_events", c.watchEvents.Load()),
		u("watch_cuts", c.watchCuts.Load()),
		u("watch_moves", c.watchMoves.Load()),
		u("uploads", uint64(max(s.uploads.active.Load(), 0))),
		u("uploads_refused", s.uploads.refused.Load()),
	}
	for _, l := range []struct {
		name string
		lat  *latency
	}{{"read", c.readLat}, {"write", c.writeLat}} {
		n, p50, p99, p999, mx := l.lat.figures()
		out = append(out,
			u(l.name+"_count", uint64(n)),
			line.Stat{Name: l.name + "_p50_ms", Value: fmtMs(p50)},
			line.Stat{Name: l.name + "_p99_ms", Value: fmtMs(p99)},
			line.Stat{Name: l.name + "_p999_ms", Value: fmtMs(p999)},
			line.Stat{Name: l.name + "_max_ms", Value: fmtMs(mx)},
		)
	}
	return s.rt.stats(out)
}
