package line

// This file tests the SNAPSHOT stream (snapshot.go): the request's
// parsing, the Writer's stream read back by the client, every way a
// server can break the stream, and a fuzz target for the client's stream
// parser. It runs on the test's goroutine (and, for Client.Snapshot, a
// fake server's).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
)

func TestParseSnapshotRequest(t *testing.T) {
	tests := []struct {
		in    string
		chunk uint64
		err   string // a BAD_REQUEST's message starts so
	}{
		{"SNAPSHOT", 0, ""},
		{"snapshot 4096", 4096, ""},
		{"SNAPSHOT 4194304", 4 << 20, ""},
		{"SNAPSHOT 4095", 0, "SNAPSHOT chunk"},
		{"SNAPSHOT 4194305", 0, "SNAPSHOT chunk"},
		{"SNAPSHOT x", 0, "SNAPSHOT chunk"},
		{"SNAPSHOT 1 2", 0, "usage: SNAPSHOT"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r := NewReader(bufio.NewReader(strings.NewReader(tt.in+"\r\n")), Limits{})
			req, err := r.ReadRequest()
			if tt.err != "" {
				var pe *ProtoError
				if !errors.As(err, &pe) || pe.Code != CodeBadRequest || pe.Fatal || !strings.HasPrefix(pe.Msg, tt.err) {
					t.Fatalf("got %+v, %v; want BAD_REQUEST %q", req, err, tt.err)
				}
				return
			}
			if err != nil || req.Cmd != CmdSnapshot || req.Chunk != tt.chunk {
				t.Fatalf("got %+v, %v", req, err)
			}
			enc, err := AppendRequest(nil, req)
			if err != nil || !strings.EqualFold(string(enc), tt.in+"\r\n") {
				t.Fatalf("encoded as %q, %v", enc, err)
			}
		})
	}
	if _, err := AppendRequest(nil, Request{Cmd: CmdSnapshot, Chunk: 1}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("a chunk of 1 byte encoded: %v", err)
	}
}

// writeStream writes a whole stream of file in pieces of chunk bytes.
func writeStream(t *testing.T, h SnapshotHeader, file []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(bufio.NewWriter(&out))
	w.SnapshotBegin(h)
	for rest := file; len(rest) > 0; {
		k := min(chunk, len(rest))
		w.SnapshotBlock(rest[:k])
		rest = rest[k:]
	}
	w.SnapshotEnd(uint64(len(file)), crc32.Checksum(file, castagnoli))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestSnapshotStream(t *testing.T) {
	h := SnapshotHeader{Index: 42, Slot: 17, Keys: 3, Bytes: 99, Digest: strings.Repeat("ab", 32), Replica: 2}
	file := bytes.Repeat([]byte("F key 1 value 0000abcd\n"), 1000)
	good := writeStream(t, h, file, 4096)
	head := good[:bytes.Index(good, []byte("\r\n"))+2]
	end := good[bytes.LastIndex(good, []byte("END ")):]
	body := good[len(head) : len(good)-len(end)]
	tests := []struct {
		name   string
		stream string
		limit  int
		server string // the ERR code expected, "" for success
		broken bool   // an error that breaks the stream
	}{
		{"whole", string(good), 4096, "", false},
		{"refused", "ERR UNAVAILABLE no replica can take a backup\r\n", 4096, CodeUnavailable, false},
		{"broke off", string(head) + string(body[:len("$4096\r\n")+4096+2]) + "ERR UNAVAILABLE replica 2 went away\r\n", 4096, CodeUnavailable, false},
		{"cut", string(good[:len(good)-5]), 4096, "", true},
		{"block over the limit", string(good), 1024, "", true},
		{"wrong size", string(head) + string(body) + "END 1 00000000\r\n", 4096, "", true},
		{"wrong crc", string(head) + string(body) + "END 23000 00000000\r\n", 4096, "", true},
		{"bad header", "SNAPSHOT 1 2 3\r\n", 4096, "", true},
		{"bad digest", "SNAPSHOT 1 2 3 4 XYZ 1\r\nEND 0 00000000\r\n", 4096, "", true},
		{"no digest", "SNAPSHOT 1 2 0 0 - 1\r\nEND 0 00000000\r\n", 4096, "", false},
		{"block without its end", string(head) + "$3\r\nabcX\r\n", 4096, "", true},
		{"junk", string(head) + "VALUE 1 1\r\n", 4096, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := replyReader{br: bufio.NewReader(strings.NewReader(tt.stream)), opts: Options{}.withDefaults()}
			var got bytes.Buffer
			var calls int
			info, err := rr.snapshot(tt.limit, &got, func(SnapshotHeader, uint64) { calls++ })
			var se *ServerError
			switch {
			case tt.server != "":
				if !errors.As(err, &se) || se.Code != tt.server {
					t.Fatalf("got %v, want ERR %s", err, tt.server)
				}
			case tt.broken:
				if err == nil || errors.As(err, &se) {
					t.Fatalf("got %+v, %v; want a broken stream", info, err)
				}
			case err != nil:
				t.Fatal(err)
			case tt.name == "whole":
				if info.SnapshotHeader != h || info.Size != uint64(len(file)) || !bytes.Equal(got.Bytes(), file) ||
					info.CRC != crc32.Checksum(file, castagnoli) || calls != 1+(len(file)+4095)/4096 {
					t.Fatalf("got %+v after %d calls, %d bytes", info, calls, got.Len())
				}
			}
		})
	}
}

// TestClientSnapshot runs Client.Snapshot against a fake server: the
// request on the wire, the file written, and a connection still usable
// after a refusal.
func TestClientSnapshot(t *testing.T) {
	h := SnapshotHeader{Index: 5, Slot: 4, Keys: 1, Bytes: 1, Digest: "00ff", Replica: 3}
	file := []byte("a backup\n")
	cn, sn := net.Pipe()
	defer sn.Close()
	go func() {
		br := bufio.NewReader(sn)
		for _, answer := range []string{"ERR BUSY this replica already streams 2 backups\r\n", string(writeStream(t, h, file, 4))} {
			l, err := br.ReadString('\n')
			if err != nil || l != "SNAPSHOT 4096\r\n" {
				return
			}
			io.WriteString(sn, answer)
		}
	}()
	c := NewClient(cn, Options{})
	defer c.Close()
	var got bytes.Buffer
	if _, err := c.Snapshot(context.Background(), 4096, &got, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("first: %v, want ERR BUSY", err)
	}
	info, err := c.Snapshot(context.Background(), 4096, &got, nil)
	if err != nil || info.SnapshotHeader != h || got.String() != string(file) {
		t.Fatalf("second: %+v, %v, %q", info, err, got.String())
	}
}

// FuzzSnapshotStream feeds arbitrary bytes to the client's stream parser:
// no panic, no block over the limit, and a success only for a stream whose
// bytes match its END.
func FuzzSnapshotStream(f *testing.F) {
	f.Add([]byte("SNAPSHOT 1 2 3 4 ab 1\r\n$3\r\nabc\r\nEND 3 364b3fb7\r\n"))
	f.Add([]byte("SNAPSHOT 1 2 3 4 - 1\r\n$2\r\nab\r\nERR UNAVAILABLE gone\r\n"))
	f.Add([]byte("ERR BUSY x\r\n"))
	f.Add([]byte("SNAPSHOT 1 2 3 4 ab 1\r\n$99999999999999999999\r\n"))
	f.Add([]byte("SNAPSHOT 1 2 3 4 ab 1\r\nEND 0 00000000\r\n"))
	const limit = 64
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := replyReader{br: bufio.NewReaderSize(bytes.NewReader(data), 16), opts: tinyOpts.withDefaults()}
		var got bytes.Buffer
		info, err := rr.snapshot(limit, &got, nil)
		if err != nil {
			var se *ServerError
			if errors.As(err, &se) && !validCode(se.Code) {
				t.Fatalf("server error with bad code %q", se.Code)
			}
			return
		}
		if info.Size != uint64(got.Len()) || info.CRC != crc32.Checksum(got.Bytes(), castagnoli) {
			t.Fatalf("accepted %+v for %d bytes", info, got.Len())
		}
	})
}
