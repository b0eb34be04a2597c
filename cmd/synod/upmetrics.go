package main

// This file owns the metrics side of `synod up`: with --metrics-base-port
// (7200 by default, 0 turns it off) the proxy serves /metrics, /healthz
// and /readyz on 127.0.0.1:<base> and replica i on 127.0.0.1:<base>+i, and
// the banner lists them with a Prometheus scrape configuration to paste.
// Everything here runs on up's command goroutine.

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// metricsAddr is the metrics address of replica id (0: the proxy), "" when
// metrics are off.
func (u upConfig) metricsAddr(id int) string {
	if u.MetricsBase == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(u.MetricsBase+id))
}

// metricsArgs is the --metrics-listen flag for replica id (0: the proxy),
// none when metrics are off.
func (u upConfig) metricsArgs(id int) []string {
	if a := u.metricsAddr(id); a != "" {
		return []string{"--metrics-listen", a}
	}
	return nil
}

// validateMetrics checks the metrics ports fit and clash with no other.
func (u upConfig) validateMetrics() error {
	if u.MetricsBase == 0 {
		return nil
	}
	last := u.MetricsBase + maxUpNodes
	if u.MetricsBase < 1 || last > 65535 {
		return usageError("--metrics-base-port %d: metrics ports %d..%d must lie in 1..65535 (0 turns metrics off)", u.MetricsBase, u.MetricsBase, last)
	}
	taken := map[string]string{u.Listen: "--listen"}
	for i := 1; i <= maxUpNodes; i++ {
		taken[u.replicaAddr(i)] = fmt.Sprintf("replica %d's address", i)
	}
	for i := 0; i <= maxUpNodes; i++ {
		if what, ok := taken[u.metricsAddr(i)]; ok {
			return usageError("--metrics-base-port %d: port %s is also %s", u.MetricsBase, u.metricsAddr(i), what)
		}
	}
	return nil
}

// metricsBanner is the banner's metrics part: where each process serves,
// and the scrape configuration for Prometheus.
func (u upConfig) metricsBanner() string {
	if u.MetricsBase == 0 {
		return ""
	}
	var b strings.Builder
	targets := []string{`"` + u.metricsAddr(0) + `"`}
	reps := []string{}
	for _, id := range u.ids() {
		reps = append(reps, fmt.Sprintf("%d=%s", id, u.metricsAddr(id)))
		targets = append(targets, `"`+u.metricsAddr(id)+`"`)
	}
	fmt.Fprintf(&b, "  metrics   proxy=%s %s  (/metrics /healthz /readyz)\n", u.metricsAddr(0), strings.Join(reps, " "))
	fmt.Fprintf(&b, "  scrape    - job_name: synod\n")
	fmt.Fprintf(&b, "              static_configs: [{targets: [%s]}]\n", strings.Join(targets, ", "))
	return b.String()
}
