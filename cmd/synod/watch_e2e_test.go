package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"synod/internal/cluster"
	"synod/wire/line"
)

// TestWatchVerb runs synod watch against a real cluster: the events of a
// prefix from an index, as text and as JSON, with previous values, and the
// usage errors.
func TestWatchVerb(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := cluster.New(t, cluster.Options{NodeFlags: []string{"--heartbeat=20ms", "--election-timeout=200ms"}})
	if _, err := c.WaitMaster(ctx); err != nil {
		t.Fatal(err)
	}
	px := c.StartProxy(t)
	cl, err := line.Dial(ctx, px.Addr, line.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var first uint64
	for i, w := range []struct{ op, key, value string }{
		{"put", "app/a", "one"}, {"put", "other", "x"}, {"append", "app/a", "+two"}, {"put", "app/b", "two\nlines"}, {"del", "app/b", ""},
	} {
		var idx uint64
		switch w.op {
		case "put":
			idx, err = cl.Put(ctx, w.key, []byte(w.value))
		case "append":
			idx, err = cl.Append(ctx, w.key, []byte(w.value))
		case "del":
			idx, err = cl.Del(ctx, w.key)
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = idx
		}
	}
	from := func(d uint64) string { return strconv.FormatUint(first+d, 10) }
	tests := []struct {
		args []string
		out  string
		err  string
		code int
	}{
		{args: []string{"watch", "--from", from(0), "--count", "4", "app/*"},
			out: from(0) + " PUT app/a one\n" + from(2) + " APPEND app/a +two\n" + from(3) + ` PUT app/b "two\nlines"` + "\n" + from(4) + " DEL app/b\n"},
		{args: []string{"watch", "--from", from(0), "--count", "2", "--prev", "app/a"},
			out: from(0) + " PUT app/a one (new)\n" + from(2) + " APPEND app/a +two (was one)\n"},
		{args: []string{"watch", "--from", from(1), "--count", "2", "--json", "--prev", "*"},
			out: `{"index":` + from(1) + `,"op":"PUT","key":"other","value":"x"}` + "\n" +
				`{"index":` + from(2) + `,"op":"APPEND","key":"app/a","value":"+two","prev":"one"}` + "\n"},
		{args: []string{"watch"}, err: "watch takes KEY or PREFIX* (quote the * from the shell)", code: exitUsage},
		{args: []string{"watch", "a", "b"}, err: "watch takes KEY or PREFIX* (quote the * from the shell)", code: exitUsage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errText, code := runVerb(t, px.Addr, "", tt.args...)
			if out != tt.out || errText != tt.err || code != tt.code {
				t.Fatalf("stdout %q, error %q, exit %d\nwant   %q, error %q, exit %d", out, errText, code, tt.out, tt.err, tt.code)
			}
		})
	}
}
