package main

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"synod/wire/line"
)

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name      string
		prev, cur map[float64]float64
		q         float64
		want      float64
		ok        bool
	}{
		{"empty", nil, map[float64]float64{}, 0.99, 0, false},
		{"nothing new", map[float64]float64{0.1: 5, inf: 5}, map[float64]float64{0.1: 5, inf: 5}, 0.99, 0, false},
		{"all in the first bucket", nil, map[float64]float64{0.1: 100, 1: 100, inf: 100}, 0.5, 0.05, true},
		{"interpolated", nil, map[float64]float64{0.1: 0, 0.2: 100, inf: 100}, 0.99, 0.199, true},
		{"only the delta counts", map[float64]float64{0.1: 1000, 0.2: 1000, inf: 1000}, map[float64]float64{0.1: 1000, 0.2: 1100, inf: 1100}, 0.5, 0.15, true},
		{"beyond the last bound", nil, map[float64]float64{0.1: 0, inf: 10}, 0.99, 0.1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := quantile(tc.q, tc.prev, tc.cur)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("quantile = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTopFrame(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 14, 30, 0, 0, time.UTC)
	nodes := []line.NodeStatus{
		{ID: 1, Addr: "127.0.0.1:7101", Role: "follower", Ballot: "2.2", Commit: 110, Applied: 100},
		{ID: 2, Addr: "127.0.0.1:7102", Role: "master", Ballot: "2.2", Commit: 110, Applied: 110},
		{ID: 3, Addr: "127.0.0.1:7103", Role: "down"},
	}
	prev := topSample{at: t0, nodes: nodes, stats: map[string]string{"reads": "100", "writes": "50", "node.1.reads": "100", "node.2.reads": "0"}}
	cur := topSample{at: t0.Add(2 * time.Second), nodes: nodes, stats: map[string]string{
		"reads": "300", "writes": "250", "master": "2", "buffered": "4", "inflight": "7", "connections": "3", "failovers": "1",
		"read_p99_ms": "1.500", "write_p99_ms": "3.250",
		"node.1.reads": "250", "node.2.reads": "50", "node.1.ewma_ms": "0.420", "node.2.ewma_ms": "0.300", "node.3.ewma_ms": "0.000",
	}}
	inf := math.Inf(1)
	for _, tc := range []struct {
		name     string
		prev     topSample
		cur      topSample
		windowed bool
		want     []string
		not      []string
	}{
		{"rates from STATS", prev, cur, false, []string{
			"synod top   proxy 127.0.0.1:7000   14:30:02",
			"master 2   ops/s 200 (reads 100, writes 100)   p99 read 1.500 ms*  write 3.250 ms*",
			"held 4   in flight 7   connections 3   failovers 1",
			"1   127.0.0.1:7101  follower  2.2     100      10   75       75%    0.420 ms",
			"2   127.0.0.1:7102  master    2.2     110      0    25       25%    0.300 ms",
			"3   127.0.0.1:7103  down      -       0        -    0        0%     -",
			"* p99 since the proxy started",
		}, nil},
		{"windowed p99", func() topSample {
			p := prev
			p.hist = map[string]map[float64]float64{"read": {0.001: 0, inf: 0}, "write": {0.002: 0, 0.004: 0, inf: 0}}
			return p
		}(), func() topSample {
			c := cur
			c.hist = map[string]map[float64]float64{"read": {0.001: 200, inf: 200}, "write": {0.002: 0, 0.004: 100, inf: 100}}
			return c
		}(), true, []string{"p99 read 0.99 ms  write 3.98 ms"}, []string{"since the proxy started"}},
		{"no master", prev, topSample{at: cur.at, nodes: nodes, stats: map[string]string{"master": "0"}}, false, []string{"master none"}, nil},
		{"proxy unreachable", prev, topSample{at: cur.at, err: errors.New("cannot reach the proxy at 127.0.0.1:7000: refused")}, false,
			[]string{"cannot reach the proxy at 127.0.0.1:7000: refused", "retrying"}, []string{"ADDRESS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := topFrame(tc.prev, tc.cur, "127.0.0.1:7000", tc.windowed)
			for _, w := range tc.want {
				if !strings.Contains(f, w) {
					t.Errorf("frame lacks %q:\n%s", w, f)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(f, w) {
					t.Errorf("frame has %q:\n%s", w, f)
				}
			}
		})
	}
}
