package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// elements parses doc as XML and counts its elements by name; a document
// that is not well formed fails the test.
func elements(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	n := map[string]int{}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			n[se.Name.Local]++
		}
	}
}

func TestWriteSVG(t *testing.T) {
	tl := Timeline{
		Title:      `synod <64 clients> & "kill"`,
		Subtitle:   "a subtitle",
		Step:       100 * time.Millisecond,
		Throughput: []float64{1000, 1200, 0, 0, 900, 1100},
		Errors:     []float64{0, 0, 30, 10, 0, 0},
		P99:        []float64{2, 3, math.NaN(), 0, 800, 4},
		Events:     []Event{{At: 200 * time.Millisecond, Label: "SIGKILL node1"}, {At: 450 * time.Millisecond, Label: "first write"}, {At: time.Hour, Label: "off the plot"}},
	}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, tl); err != nil {
		t.Fatal(err)
	}
	doc := buf.Bytes()
	n := elements(t, doc)
	// Throughput and errors are one step line each; p99 is broken into two
	// runs by the steps without a value.
	if n["svg"] != 1 || n["polyline"] != 4 {
		t.Fatalf("elements %v", n)
	}
	s := string(doc)
	for _, want := range []string{"synod &lt;64 clients&gt; &amp;", "a subtitle", "SIGKILL node1", "first write", "errors/s", "throughput, ops/s", "p99 latency, ms (log)"} {
		if !strings.Contains(s, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	for _, bad := range []string{"off the plot", "NaN", "Inf"} {
		if strings.Contains(s, bad) {
			t.Errorf("svg holds %q", bad)
		}
	}
	if c := strings.Count(s, `stroke-dasharray`); c != 2 {
		t.Errorf("%d event lines, want 2", c)
	}
}

func TestWriteSVGEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSVG(&buf, Timeline{}); err != nil {
		t.Fatal(err)
	}
	if n := elements(t, buf.Bytes()); n["svg"] != 1 || n["polyline"] != 0 {
		t.Fatalf("elements %v", n)
	}
	if strings.Contains(buf.String(), "NaN") {
		t.Fatal("NaN in an empty plot")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteSVGError(t *testing.T) {
	if err := WriteSVG(failWriter{}, Timeline{Throughput: make([]float64, 1000)}); err == nil {
		t.Fatal("write error not reported")
	}
}

func TestScales(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 0.5: 1, 1: 1, 1.5: 2, 3: 5, 7: 10, 10: 10, 11: 20, 12345: 20000, math.NaN(): 1} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
	for top, want := range map[float64][]float64{
		10:   {0, 2, 4, 6, 8, 10},
		5000: {0, 1000, 2000, 3000, 4000, 5000},
		1:    {0, 0.2, 0.4, 0.6, 0.8, 1},
		0:    {0},
	} {
		got := ticks(top)
		if len(got) != len(want) {
			t.Errorf("ticks(%v) = %v, want %v", top, got, want)
			continue
		}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Errorf("ticks(%v) = %v, want %v", top, got, want)
				break
			}
		}
	}
	for _, tc := range []struct {
		vs     []float64
		lo, hi float64
	}{
		{[]float64{2, 3, 800}, 0, 3},
		{[]float64{0.5}, -1, 0},
		{[]float64{10}, 1, 2},
		{nil, -1, 1},
		{[]float64{math.NaN(), -1, 0}, -1, 1},
	} {
		if lo, hi := decades(tc.vs); lo != tc.lo || hi != tc.hi {
			t.Errorf("decades(%v) = %v, %v; want %v, %v", tc.vs, lo, hi, tc.lo, tc.hi)
		}
	}
	for v, want := range map[float64]string{0: "0", 1000: "1k", 20000: "20k", 3e6: "3M", 0.1: "0.1", 1500: "1500", 0.30000000000000004: "0.3"} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
}
