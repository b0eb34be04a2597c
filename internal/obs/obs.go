// Package obs serves a synod process's observability endpoints on an
// address of their own (--metrics-listen), apart from the data traffic:
//
//	/metrics       Prometheus text format, from the process's registry
//	/healthz       200 "ok" while the process serves HTTP at all (liveness)
//	/readyz        200 "ready", or 503 and the reason (readiness)
//	/debug/pprof/  Go's profiler, only when asked for (--pprof)
//
// Goroutines: Start runs the HTTP server on one goroutine of its own (and
// net/http one per connection); Close stops it and waits for it.
package obs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options say what a Server serves.
type Options struct {
	// Registry holds the process's metrics.
	Registry *prometheus.Registry
	// Ready returns nil when the process is ready to take traffic, or why
	// not; nil Ready means always ready.
	Ready func() error
	// Pprof serves /debug/pprof/.
	Pprof bool
}

// Server is a running observability endpoint.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan error
}

// Start listens on addr and serves opts there until Close.
func Start(addr string, opts Options) (*Server, error) {
	if opts.Registry == nil {
		return nil, errors.New("obs: no registry")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("obs: listen %s: %w", addr, err)
	}
	s := &Server{ln: ln, done: make(chan error, 1)}
	s.srv = &http.Server{Handler: Handler(opts), ReadHeaderTimeout: 10 * time.Second}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Handler is the mux Start serves, for tests and for embedding.
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are rare: a slow one must not pile up behind another.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if opts.Ready != nil {
			if err := opts.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, giving scrapes in progress a second, and waits
// for its goroutine.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("obs: close: %w", err)
	}
	return nil
}
