package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestUpMetrics(t *testing.T) {
	base := upConfig{Nodes: 3, Dir: "data", Listen: "127.0.0.1:7000", BasePort: 7100, Cluster: "c1", Grace: 1, LogLevel: "info", LogFormat: "json", MetricsBase: 7200}
	for _, tc := range []struct {
		name   string
		change func(*upConfig)
		err    string // "" for valid
	}{
		{"default", func(*upConfig) {}, ""},
		{"off", func(u *upConfig) { u.MetricsBase = 0 }, ""},
		{"negative", func(u *upConfig) { u.MetricsBase = -1 }, "--metrics-base-port"},
		{"overflow", func(u *upConfig) { u.MetricsBase = 65530 }, "--metrics-base-port"},
		{"on the replicas", func(u *upConfig) { u.MetricsBase = 7098 }, "replica 1's address"},
		{"on the proxy", func(u *upConfig) { u.MetricsBase = 6995 }, "--listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := base
			tc.change(&u)
			err := u.validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("validate() = %v, want %q", err, tc.err)
			}
		})
	}

	specs := base.children()
	for _, sp := range specs {
		want := fmt.Sprintf("--metrics-listen 127.0.0.1:%d", 7200+sp.id)
		if got := strings.Join(sp.args, " "); !strings.Contains(got, want) {
			t.Errorf("%s: args %q lack %q", sp.name, got, want)
		}
	}
	b := banner(base, 1, "synod")
	for _, want := range []string{
		"metrics   proxy=127.0.0.1:7200 1=127.0.0.1:7201 2=127.0.0.1:7202 3=127.0.0.1:7203",
		`targets: ["127.0.0.1:7200", "127.0.0.1:7201", "127.0.0.1:7202", "127.0.0.1:7203"]`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q:\n%s", want, b)
		}
	}
	off := base
	off.MetricsBase = 0
	if b := banner(off, 1, "synod"); strings.Contains(b, "metrics") {
		t.Errorf("banner with metrics off mentions them:\n%s", b)
	}
	for _, sp := range off.children() {
		if strings.Contains(strings.Join(sp.args, " "), "--metrics-listen") {
			t.Errorf("%s: --metrics-listen with metrics off", sp.name)
		}
	}
}
