package nemesis

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConnectedMajority(t *testing.T) {
	all := []uint64{1, 2, 3, 4, 5}
	cutOf := func(pairs ...[2]uint64) func(x, y uint64) bool {
		return func(x, y uint64) bool {
			for _, p := range pairs {
				if p[0] == x && p[1] == y {
					return true
				}
			}
			return false
		}
	}
	none := cutOf()
	tests := []struct {
		name string
		up   []uint64
		cut  func(x, y uint64) bool
		want bool
	}{
		{"all up", all, none, true},
		{"two down", []uint64{1, 2, 3}, none, true},
		{"three down", []uint64{1, 2}, none, false},
		// 1 and 2 paused, 3 cut off from 4 one way: {3,4,5} is no clique.
		{"two down and a one-way cut", []uint64{3, 4, 5}, cutOf([2]uint64{3, 4}), false},
		// 1 down, 2 cut off both ways: {3,4,5} remain.
		{"one down, one cut off", []uint64{2, 3, 4, 5}, cutOf([2]uint64{2, 3}, [2]uint64{3, 2}, [2]uint64{2, 4}, [2]uint64{4, 2}, [2]uint64{2, 5}, [2]uint64{5, 2}), true},
		// a b | c | d e: {a,b,c} is connected.
		{"bridge", all, cutOf([2]uint64{1, 4}, [2]uint64{4, 1}, [2]uint64{1, 5}, [2]uint64{5, 1}, [2]uint64{2, 4}, [2]uint64{4, 2}, [2]uint64{2, 5}, [2]uint64{5, 2}), true},
		// the bridge paused as well: no three connected.
		{"bridge down", []uint64{1, 2, 4, 5}, cutOf([2]uint64{1, 4}, [2]uint64{4, 1}, [2]uint64{1, 5}, [2]uint64{5, 1}, [2]uint64{2, 4}, [2]uint64{4, 2}, [2]uint64{2, 5}, [2]uint64{5, 2}), false},
	}
	for _, tc := range tests {
		if got := connectedMajority(tc.up, 5, tc.cut); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLives(t *testing.T) {
	lv := newLives(Lives{ClockSkew: 0.05, SlowFsync: 0.5, FsyncMin: time.Millisecond, FsyncMax: 20 * time.Millisecond}, 1)
	edges, slow := 0, 0
	for i := 0; i < 600; i++ {
		l := lv.draw(uint64(1+i%5), 0, -1)
		if l.Rate < 0.95 || l.Rate > 1.05 {
			t.Fatalf("rate %v outside the drift bound", l.Rate)
		}
		if l.Rate == 0.95 || l.Rate == 1.05 {
			edges++
		}
		if l.Fsync > 0 {
			slow++
			if l.Fsync < time.Millisecond || l.Fsync > 20*time.Millisecond {
				t.Fatalf("fsync delay %v", l.Fsync)
			}
		}
		for _, f := range l.Flags() {
			if !strings.HasPrefix(f, "--test-clock-rate=") && !strings.HasPrefix(f, "--test-fsync-delay=") {
				t.Fatalf("flag %q", f)
			}
		}
	}
	if edges == 0 || slow == 0 || slow == 600 {
		t.Fatalf("%d starts at an edge, %d slow of 600", edges, slow)
	}
	if l := lv.draw(3, 1.05, 0); l.Rate != 1.05 || l.Fsync != 0 || len(l.Flags()) != 1 {
		t.Fatalf("forced life %+v, flags %v", l, l.Flags())
	}
	if cur := lv.current(3); cur.Rate != 1.05 {
		t.Fatalf("current %+v", cur)
	}
	if s := summarizeLives(lv.list()); !strings.Contains(s, "601 starts") || !strings.Contains(s, "0.95–1.05") {
		t.Fatalf("summary %q", s)
	}
	if l := newLives(Lives{}, 1).draw(1, 0, -1); l.Rate != 1 || l.Fsync != 0 || len(l.Flags()) != 0 {
		t.Fatalf("a life without skew or slow disk: %+v", l)
	}
}

func TestListedSegment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "SEGMENTS")
	if err := os.WriteFile(path, []byte("synod-segments 1 2264 1622 3107 08440692\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"00000000000000001622.log": true, "00000000000000003107.log": true,
		"00000000000000002264.log": false, "00000000000000000001.log": false, "junk": false,
	} {
		if got := listedSegment(path, name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if listedSegment(filepath.Join(t.TempDir(), "missing"), "00000000000000001622.log") {
		t.Error("a missing manifest lists a segment")
	}
}
