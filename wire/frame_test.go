package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadFrame(t *testing.T) {
	frame := func(body string) string { return string(AppendFrame(nil, []byte(body))) }
	tests := []struct {
		name   string
		stream string
		max    int
		bodies []string // frames expected before the error
		want   error    // error after them
	}{
		{"empty stream", "", 0, nil, io.EOF},
		{"one frame", frame("abc"), 0, []string{"abc"}, io.EOF},
		{"zero length", frame(""), 0, []string{""}, io.EOF},
		{"two frames", frame("a") + frame("bc"), 0, []string{"a", "bc"}, io.EOF},
		{"partial header", "\x00\x00\x00", 0, nil, ErrTruncated},
		{"partial second header", frame("a") + "\x00", 0, []string{"a"}, ErrTruncated},
		{"partial body", "\x00\x00\x00\x05abc", 0, nil, ErrTruncated},
		{"header only", "\x00\x00\x00\x05", 0, nil, ErrTruncated},
		{"exactly max", frame("abcd"), 4, []string{"abcd"}, io.EOF},
		{"over max", frame("abcde"), 4, nil, ErrFrameTooLarge},
		{"over default max", "\x01\x00\x00\x01", 0, nil, ErrFrameTooLarge},
		{"max uint32", "\xff\xff\xff\xff", 0, nil, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = strings.NewReader(tt.stream)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			var got []string
			var err error
			for {
				var b []byte
				b, err = ReadFrame(r, tt.max, nil)
				if err != nil {
					break
				}
				got = append(got, string(b))
			}
			if !equalStrings(got, tt.bodies) || !errors.Is(err, tt.want) {
				t.Errorf("%s (one byte %v): got %q, %v; want %q, %v", tt.name, oneByte, got, err, tt.bodies, tt.want)
			}
			if errors.Is(err, ErrTruncated) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s: %v does not match io.ErrUnexpectedEOF", tt.name, err)
			}
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadFrameOtherErrors(t *testing.T) {
	errBoom := errors.New("boom")
	for _, stream := range []string{"", "\x00\x00", "\x00\x00\x00\x09abc"} {
		r := io.MultiReader(strings.NewReader(stream), iotest.ErrReader(errBoom))
		_, err := ReadFrame(r, 0, nil)
		if !errors.Is(err, errBoom) || errors.Is(err, ErrTruncated) {
			t.Errorf("%q: got %v, want boom, not truncated", stream, err)
		}
	}
}

func TestReadFrameReusesBuffer(t *testing.T) {
	buf := make([]byte, 0, 16)
	b, err := ReadFrame(bytes.NewReader(AppendFrame(nil, []byte("hello"))), 0, buf)
	if err != nil || string(b) != "hello" {
		t.Fatalf("got %q, %v", b, err)
	}
	if &b[0] != &buf[:1][0] {
		t.Error("body does not reuse buf")
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFrameOversizeReadsNothingMore(t *testing.T) {
	stream := append(binary.BigEndian.AppendUint32(nil, 1000), make([]byte, 1000)...)
	cr := &countingReader{r: iotest.OneByteReader(bytes.NewReader(stream))}
	if _, err := ReadFrame(cr, 999, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatal(err)
	}
	if cr.n != HeaderSize {
		t.Fatalf("read %d bytes, want only the header", cr.n)
	}
}

// TestReadFrameAllocatesWhatArrives checks that a frame announced at the
// maximum but cut short costs memory in proportion to what arrived, not
// to what was announced.
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	stream := append(binary.BigEndian.AppendUint32(nil, DefaultMaxFrame), make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(stream), 0, nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*growStep {
		t.Fatalf("allocated %d bytes for a 100-byte partial frame", got)
	}
}

func TestReadFrameNoAllocs(t *testing.T) {
	stream := AppendFrame(nil, bytes.Repeat([]byte("x"), 1000))
	buf := make([]byte, 0, 2000)
	hdr := make([]byte, HeaderSize)
	r := bytes.NewReader(stream)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(stream)
		if _, err := readFrame(r, 0, buf, hdr, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
}

func TestAppendFrame(t *testing.T) {
	got := AppendFrame([]byte("pre"), []byte("body"))
	if want := "pre\x00\x00\x00\x04body"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
