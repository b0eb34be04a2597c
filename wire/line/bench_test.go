package line

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

// cycleReader replays buf forever, so a benchmark parses without refilling.
type cycleReader struct {
	buf []byte
	off int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, c.buf[c.off:])
	c.off = (c.off + n) % len(c.buf)
	return n, nil
}

// BenchmarkReadRequestPut parses pipelined PUTs of 100-byte values, inline
// and as blocks, from a 4 KiB buffer as a server would.
func BenchmarkReadRequestPut(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	for _, form := range []string{"inline", "block"} {
		b.Run(form, func(b *testing.B) {
			var in []byte
			for i := range 1000 {
				key := fmt.Sprintf("bench/key-%04d", i)
				if form == "inline" {
					in = fmt.Appendf(in, "PUT %s %s\r\n", key, value)
				} else {
					in, _ = AppendRequest(in, Request{Cmd: CmdPut, Key: key, Value: value})
				}
			}
			r := NewReader(bufio.NewReaderSize(&cycleReader{buf: in}, 4096), Limits{})
			b.SetBytes(int64(len(in) / 1000))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, err := r.ReadRequest()
				if err != nil || len(req.Value) != 100 {
					b.Fatalf("%+v, %v", req, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkWriteValue writes 100-byte VALUE replies, flushed in batches of
// 64 as a server answering pipelined GETs would.
func BenchmarkWriteValue(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	w := NewWriter(bufio.NewWriterSize(io.Discard, 32<<10))
	b.SetBytes(int64(len("VALUE 100 123456\r\n") + 100 + 2))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Value(value, 123456); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			w.Flush()
		}
	}
	w.Flush()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "replies/s")
}

// BenchmarkClientPipelinedPut measures one connection to the test server
// over loopback TCP with 64 PUTs in flight: the client's and the
// Reader/Writer's costs together.
func BenchmarkClientPipelinedPut(b *testing.B) {
	s := startTestServer(b, Limits{})
	c, err := Dial(context.Background(), s.addr(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	value := bytes.Repeat([]byte("v"), 100)
	const depth = 64
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(depth, b.N-done)
		for i := range n {
			if err := c.Send(Request{Cmd: CmdPut, Key: fmt.Sprintf("k%d", i), Value: value}); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for range n {
			if _, err := c.Recv(); err != nil {
				b.Fatal(err)
			}
		}
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
