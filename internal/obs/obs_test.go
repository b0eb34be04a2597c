package obs_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"synod/internal/obs"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "synod_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	notReady := errors.New("no master known")
	for _, tc := range []struct {
		name   string
		opts   obs.Options
		path   string
		status int
		body   string
	}{
		{"metrics", obs.Options{}, "/metrics", 200, "synod_test_things_total 3"},
		{"healthz", obs.Options{Ready: func() error { return notReady }}, "/healthz", 200, "ok"},
		{"ready", obs.Options{Ready: func() error { return nil }}, "/readyz", 200, "ready"},
		{"ready without a check", obs.Options{}, "/readyz", 200, "ready"},
		{"not ready", obs.Options{Ready: func() error { return notReady }}, "/readyz", 503, "not ready: no master known"},
		{"pprof off", obs.Options{}, "/debug/pprof/", 404, ""},
		{"pprof on", obs.Options{Pprof: true}, "/debug/pprof/", 200, "goroutine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Registry = reg
			srv, err := obs.Start("127.0.0.1:0", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			resp, err := httpc.Get("http://" + srv.Addr().String() + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
				t.Fatalf("GET %s: %d %q, want %d containing %q", tc.path, resp.StatusCode, b, tc.status, tc.body)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := obs.Start("127.0.0.1:0", obs.Options{}); err == nil {
		t.Error("no registry: no error")
	}
	srv, err := obs.Start("127.0.0.1:0", obs.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := obs.Start(srv.Addr().String(), obs.Options{Registry: prometheus.NewRegistry()}); err == nil {
		t.Error("address in use: no error")
	}
}
