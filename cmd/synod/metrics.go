package main

// This file owns the observability flags that `synod node` and `synod
// proxy` share (--metrics-listen, --pprof) and starting their endpoint
// (internal/obs) on the command's goroutine; the endpoint serves on a
// goroutine of its own until the command stops it.

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"synod/internal/obs"
)

func metricsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics-listen", Usage: "address for /metrics (Prometheus), /healthz and /readyz, apart from the data port; off unless set", EnvVars: env("metrics-listen")},
		&cli.BoolFlag{Name: "pprof", Usage: "also serve Go's profiler under /debug/pprof/ on --metrics-listen", EnvVars: env("pprof")},
	}
}

// startMetrics serves reg and ready on --metrics-listen, if set; the
// returned stop function (never nil) closes it.
func startMetrics(c *cli.Context, lg zerolog.Logger, reg *prometheus.Registry, ready func() error) (func(), error) {
	addr := c.String("metrics-listen")
	if addr == "" {
		if c.Bool("pprof") {
			return nil, usageError("--pprof needs --metrics-listen")
		}
		return func() {}, nil
	}
	srv, err := obs.Start(addr, obs.Options{Registry: reg, Ready: ready, Pprof: c.Bool("pprof")})
	if err != nil {
		return nil, err
	}
	lg.Info().Str("addr", srv.Addr().String()).Bool("pprof", c.Bool("pprof")).Msg("metrics serving")
	return func() {
		if err := srv.Close(); err != nil {
			lg.Warn().Err(err).Msg("stopping the metrics endpoint")
		}
	}, nil
}
