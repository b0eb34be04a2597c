package wal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// seedLines returns real record lines and torn prefixes of them.
func seedLines() [][]byte {
	rng := rand.New(rand.NewPCG(11, 11))
	var lines [][]byte
	for range 20 {
		r := genRecord(rng)
		line, _ := AppendRecord(nil, r)
		lines = append(lines, line, line[:len(line)/2], line[:len(line)-1])
	}
	return lines
}

func FuzzParseLine(f *testing.F) {
	for _, l := range seedLines() {
		f.Add(l)
	}
	f.Add(withCRC("A 1 2.3 cmds 1 \\e"))
	f.Add(withCRC("C 0"))
	f.Fuzz(func(t *testing.T, line []byte) {
		checkParseLine(t, line)
		// The fuzzer rarely forges a CRC, so also try the input as the
		// content of a line with a correct one, to reach the field parser.
		checkParseLine(t, withCRC(string(bytes.TrimSuffix(line, []byte("\n")))))
	})
}

func checkParseLine(t *testing.T, line []byte) {
	r, err := ParseLine(line)
	if err != nil {
		if !errors.Is(err, ErrBadLine) {
			t.Fatalf("error %v does not wrap ErrBadLine", err)
		}
		return
	}
	again, err := AppendRecord(nil, r)
	if err != nil {
		t.Fatalf("parsed record %+v does not encode: %v", r, err)
	}
	if !bytes.Equal(again, line) {
		t.Fatalf("%q re-encodes as %q", line, again)
	}
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`\e`, `a\sb`, `\x00\xff`, `\\`, `\x4`, `\x41`, `docs/a`, "", " ", `\n\r\t`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		raw, err := Unescape(nil, tok)
		if err != nil {
			if !errors.Is(err, ErrBadEscape) {
				t.Fatalf("error %v does not wrap ErrBadEscape", err)
			}
		} else if again := Escape(nil, raw); !bytes.Equal(again, tok) {
			t.Fatalf("%q unescapes to %q, which escapes to %q", tok, raw, again)
		}
		// And the other way: anything escapes to a token that round-trips.
		esc := Escape(nil, tok)
		if bytes.ContainsAny(esc, " \n") {
			t.Fatalf("Escape(%q) = %q holds a separator", tok, esc)
		}
		back, err := Unescape(nil, esc)
		if err != nil || !bytes.Equal(back, tok) {
			t.Fatalf("Escape(%q) = %q unescapes to %q, %v", tok, esc, back, err)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	body := append(withCRC("C 1"), withCRC("C 2")...)
	h := appendHeader(nil, 2, body)
	f.Add(h)
	f.Add(h[:len(h)-3])
	f.Add(withCRC("B 99999999999999999999 1 00000000"))
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := parseHeader(line)
		if err != nil {
			return
		}
		if h.lines == 0 || h.bytes/minRecordLen < h.lines {
			t.Fatalf("accepted impossible header %+v", h)
		}
		// Anything accepted is canonical: it re-encodes to the same bytes.
		again := []byte("B ")
		again = strconv.AppendUint(again, h.lines, 10)
		again = append(again, ' ')
		again = strconv.AppendUint(again, h.bytes, 10)
		again = append(again, ' ')
		again = appendCRC(appendHex32(again, h.crc), 0)
		if !bytes.Equal(again, line) {
			t.Fatalf("%q parses to %+v, which encodes as %q", line, h, again)
		}
	})
}

func FuzzParseAcceptor(f *testing.F) {
	f.Add(withCRC("synod-acceptor 2 7.2 voter"))
	f.Add(withCRC("synod-acceptor 1 7.2"))
	f.Add([]byte("synod-acceptor 2 7.2 learner"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseAcceptor(data)
		if err != nil {
			return
		}
		again := st.Promise.append([]byte(acceptorPrefix1))
		if st.Membership != "" {
			again = append(append(st.Promise.append([]byte(acceptorPrefix)), ' '), st.Membership...)
		}
		if again = appendCRC(again, 0); !bytes.Equal(again, data) {
			t.Fatalf("%q parses to %+v, which encodes as %q", data, st, again)
		}
	})
}

func FuzzParseIdentity(f *testing.F) {
	f.Add(withCRC("synod-identity 1 prod 3"))
	f.Add(withCRC(`synod-identity 1 a\sb 18446744073709551615`))
	f.Add([]byte("synod-identity 1 prod 3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, n, err := parseIdentity(data)
		if err != nil {
			return
		}
		if c == "" || len(c) > maxClusterLen {
			t.Fatalf("accepted cluster of %d bytes", len(c))
		}
		again := Escape([]byte(identityPrefix), []byte(c))
		again = appendCRC(strconv.AppendUint(append(again, ' '), n, 10), 0)
		if !bytes.Equal(again, data) {
			t.Fatalf("%q parses to %q %d, which encodes as %q", data, c, n, again)
		}
	})
}

// FuzzRecover opens arbitrary bytes as the only segment of a log. Open must
// not panic; what it accepts must reopen to the same records, and Repair
// must always produce a log that opens.
func FuzzRecover(f *testing.F) {
	var seg []byte
	seg = append(seg, versionLine...)
	for i := range 3 {
		body := appendRecord(nil, &smallBatch(uint64(i))[0])
		body = appendRecord(body, &smallBatch(uint64(i))[1])
		seg = append(append(seg, appendHeader(nil, 2, body)...), body...)
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-7])
	f.Add(seg[:40])
	f.Add(append(bytes.Clone(seg), make([]byte, 100)...))
	f.Add([]byte(versionLine))
	f.Add([]byte("synod-wal 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		for _, repair := range []bool{false, true} {
			dir := fuzzDir(t)
			path := filepath.Join(dir, segmentFile(1))
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			opts := Options{Repair: repair, MaxLine: 1 << 12, MaxBatchBytes: 1 << 14}
			l, rec, got, err := openCollect(t, dir, opts)
			if err != nil {
				var ce *CorruptError
				if repair && errors.As(err, &ce) {
					t.Fatalf("Open with Repair still reports corruption: %v", err)
				}
				if !errors.As(err, &ce) && !errors.Is(err, ErrVersion) {
					t.Fatalf("Open: unexpected error %v", err)
				}
				continue
			}
			if rec.Records != len(got) {
				t.Fatalf("Recovery counts %d records, replay saw %d", rec.Records, len(got))
			}
			mustClose(t, l)
			opts.Repair = false
			l, again, got2 := mustOpen(t, dir, opts)
			checkRecords(t, got2, got)
			if again.TornBytes != 0 || again.Repaired {
				t.Fatalf("recovered log still damaged: %+v", again)
			}
			mustClose(t, l)
		}
	})
}

// fuzzDir returns a new directory for one fuzz run, on tmpfs where there is
// one: the files and fsyncs are real, but fast enough for the fuzzer to
// minimize its inputs (each run fsyncs a few times).
func fuzzDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "walfuzz"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func FuzzParseJoin(f *testing.F) {
	f.Add(withCRC(`synod-join 1 12 c1 v\s1\s127.0.0.1:7101 l\s4\s127.0.0.1:7104`))
	f.Add([]byte("synod-join 1 0 c1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		slot, cmds, err := parseJoin(data)
		if err != nil {
			return
		}
		line := strconv.AppendUint([]byte(joinPrefix), slot, 10)
		for _, c := range cmds {
			line = Escape(append(line, ' '), c)
		}
		if again := appendCRC(line, 0); !bytes.Equal(again, data) {
			t.Fatalf("%q parses to %d %q, which encodes as %q", data, slot, cmds, again)
		}
	})
}
