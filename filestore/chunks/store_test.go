package chunks

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPutRead(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "chunks"))
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xa5}, MaxSize)
	for _, tc := range []struct {
		name string
		data []byte
		sum  func([]byte) Sum
		want error
	}{
		{"empty", nil, Of, nil},
		{"one byte", []byte{0}, Of, nil},
		{"binary", []byte("\x00\r\n\xff chunk"), Of, nil},
		{"largest", big, Of, nil},
		{"one over", append(big, 1), Of, ErrTooLarge},
		{"wrong sum", []byte("abc"), func([]byte) Sum { return Of([]byte("abd")) }, ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := tc.sum(tc.data)
			err := s.Put(sum, tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put: %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if s.Has(sum) {
					t.Fatal("a refused chunk is in the store")
				}
				return
			}
			// Twice is fine: the same name holds the same bytes.
			if err := s.Put(sum, tc.data); err != nil {
				t.Fatalf("second Put: %v", err)
			}
			got, err := s.Read(sum, 0)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("Read: %d bytes, %v", len(got), err)
			}
			// The file is plain: its name is its SHA-256.
			raw, err := os.ReadFile(filepath.Join(s.Dir(), sum.String()))
			if err != nil || !bytes.Equal(raw, tc.data) {
				t.Fatalf("chunk file: %v", err)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("some chunk bytes")
	sum := Of(data)
	if err := s.Put(sum, data); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(Of([]byte("absent")), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent chunk: %v, want ErrNotFound", err)
	}
	if _, err := s.Read(sum, len(data)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bounded read: %v, want ErrTooLarge", err)
	}
	// Damage on disk is found on read, never served.
	if err := os.WriteFile(s.Path(sum), []byte("Some chunk bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(sum, 0); !errors.Is(err, ErrChecksum) {
		t.Fatalf("damaged chunk: %v, want ErrChecksum", err)
	}
}

func TestOpenRemovesTemporaries(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, tmpPrefix+"0123456789abcdef-42")
	keep := filepath.Join(dir, Of(nil).String())
	for _, p := range []string{tmp, keep} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a crash's temporary file survived Open: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("a chunk was removed: %v", err)
	}
}

func TestParseSum(t *testing.T) {
	good := Of([]byte("x")).String()
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"good", good, true},
		{"upper case", strings.ToUpper(good), false},
		{"short", good[1:], false},
		{"long", good + "0", false},
		{"not hex", "g" + good[1:], false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSum([]byte(tc.in))
			if tc.ok != (err == nil) {
				t.Fatalf("ParseSum(%q): %v", tc.in, err)
			}
			if err != nil && !errors.Is(err, ErrBadSum) {
				t.Fatalf("error %v does not wrap ErrBadSum", err)
			}
			if err == nil && s.String() != tc.in {
				t.Fatalf("round trip: %s", s)
			}
		})
	}
}

func FuzzParseSum(f *testing.F) {
	f.Add([]byte(Of(nil).String()))
	f.Add([]byte("zz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSum(b)
		if err != nil {
			if !errors.Is(err, ErrBadSum) {
				t.Fatalf("error %v does not wrap ErrBadSum", err)
			}
			return
		}
		if s.String() != string(b) {
			t.Fatalf("not canonical: %q parses to %s", b, s)
		}
	})
}

// TestRemoveIfOlder: a chunk is removed only when it was last stored
// before the cutoff, and Put of a chunk already present makes it young
// again, so an upload sharing an old chunk keeps it.
func TestRemoveIfOlder(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old, young := []byte("an old chunk"), []byte("a young chunk")
	for _, b := range [][]byte{old, young} {
		if err := s.Put(Of(b), b); err != nil {
			t.Fatal(err)
		}
	}
	hourAgo := time.Now().Add(-time.Hour)
	for _, b := range [][]byte{old, young} {
		if err := os.Chtimes(s.Path(Of(b)), hourAgo, hourAgo); err != nil {
			t.Fatal(err)
		}
	}
	// The young one is stored again by a new upload: its age restarts.
	if err := s.Put(Of(young), young); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "not-a-chunk"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []Info
	if err := s.Each(func(i Info) bool { seen = append(seen, i); return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Fatalf("Each saw %d chunks, want 2 (other files are skipped)", len(seen))
	}
	cutoff := time.Now().Add(-time.Minute)
	for _, tc := range []struct {
		name string
		sum  Sum
		want bool
	}{
		{"old", Of(old), true},
		{"touched", Of(young), false},
		{"absent", Of([]byte("never stored")), false},
		{"old, removed already", Of(old), false},
	} {
		got, err := s.RemoveIfOlder(tc.sum, cutoff)
		if err != nil || got != tc.want {
			t.Fatalf("%s: RemoveIfOlder = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if s.Has(Of(old)) || !s.Has(Of(young)) {
		t.Fatalf("after removal: old present %v, young present %v", s.Has(Of(old)), s.Has(Of(young)))
	}
}

func TestHeldDurably(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b := []byte("held"), []byte("not held")
	if err := s.Put(Of(a), a); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sums []Sum
		want []bool
	}{
		{"none asked", nil, []bool{}},
		{"held", []Sum{Of(a)}, []bool{true}},
		{"missing", []Sum{Of(b)}, []bool{false}},
		{"both, twice", []Sum{Of(b), Of(a), Of(a)}, []bool{false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.HeldDurably(tt.sums)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("HeldDurably = %v, want %v", got, tt.want)
			}
		})
	}
}
