package cpu

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseProcessStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want time.Duration
		err  bool
	}{
		{"plain", "1234 (synod) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 8 0 100 0 0", 2800 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a) b) (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, false},
		{"no paren", "1234 synod S 1 2 3", 0, true},
		{"too few fields", "1 (x) S 1 2 3 4 5 6 7 8 9 10", 0, true},
		{"not a number", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s", 0, true},
		{"negative", "1 (x) S 1 2 3 4 5 6 7 8 9 10 -1 2", 0, true},
		{"overflow", "1 (x) S 1 2 3 4 5 6 7 8 9 10 9223372036854775000 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProcessStat([]byte(tc.in))
			if tc.err {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("got %v, %v; want ErrFormat", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestParseMachineStat(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          string
		busy, total time.Duration
		err         bool
	}{
		{"full", "cpu  100 5 50 800 20 3 2 0 7 1\ncpu0 1 2 3 4\n", 160 * 10 * time.Millisecond, 980 * 10 * time.Millisecond, false},
		{"old kernel", "cpu 10 0 10 80", 200 * time.Millisecond, time.Second, false},
		{"per-cpu line first", "cpu0 1 2 3 4 5", 0, 0, true},
		{"short", "cpu 1 2", 0, 0, true},
		{"garbage", "cpu a b c d", 0, 0, true},
		{"empty", "", 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMachineStat([]byte(tc.in))
			if tc.err {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("got %+v, %v; want ErrFormat", got, err)
				}
				return
			}
			if err != nil || got.Busy != tc.busy || got.Total != tc.total {
				t.Fatalf("got %+v, %v; want busy %v total %v", got, err, tc.busy, tc.total)
			}
		})
	}
}

func TestPercent(t *testing.T) {
	m := Machine{Busy: time.Second, Total: 2 * time.Second}
	if got := m.Percent(2); got != 100 {
		t.Fatalf("Percent = %v, want 100", got)
	}
	if got := (Machine{}).Percent(2); got != 0 {
		t.Fatalf("Percent of nothing = %v", got)
	}
	d := Machine{Busy: 3 * time.Second, Total: 4 * time.Second}.Sub(m)
	if d.Busy != 2*time.Second || d.Total != 2*time.Second {
		t.Fatalf("Sub = %+v", d)
	}
}

// TestLive reads this very process: a Linux-only check that the parsers
// match what the kernel writes, after burning some CPU so the counters move.
func TestLive(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	self0, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	proc0, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	m0, err := ReadMachine()
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for s, _ := Self(); ; {
		for i := range 1000000 {
			x += i
		}
		if now, _ := Self(); now-s > 50*time.Millisecond {
			break
		}
	}
	_ = x
	self1, _ := Self()
	proc1, _ := Process(os.Getpid())
	m1, _ := ReadMachine()
	if self1 <= self0 || proc1 < proc0 || m1.Total <= m0.Total || m1.Busy < m0.Busy {
		t.Fatalf("counters did not move: self %v→%v proc %v→%v machine %+v→%+v", self0, self1, proc0, proc1, m0, m1)
	}
	if _, err := Process(1 << 30); err == nil {
		t.Fatal("Process of a pid that cannot exist: no error")
	}
}

func FuzzParseProcessStat(f *testing.F) {
	f.Add([]byte("1234 (synod) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 8 0 100 0 0"))
	f.Add([]byte("7 (a) b) (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseProcessStat(b)
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v", d)
		}
	})
}

func FuzzParseMachineStat(f *testing.F) {
	f.Add([]byte("cpu  100 5 50 800 20 3 2 0 7 1\ncpu0 1 2 3 4\n"))
	f.Add([]byte("cpu 10 0 10 80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMachineStat(b)
		if err == nil && (m.Busy < 0 || m.Busy > m.Total) {
			t.Fatalf("busy %v total %v", m.Busy, m.Total)
		}
	})
}
