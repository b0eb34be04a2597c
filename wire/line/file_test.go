package line

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

var testSum = strings.Repeat("0123456789abcdef", 4)

func TestParsePutFile(t *testing.T) {
	lim := Limits{MaxFileSize: 1000}
	for _, tc := range []struct {
		name, in string
		want     Request
		code     string // "" for success; every refusal is fatal
	}{
		{"good", "PUTFILE big/f 10 " + testSum, Request{Cmd: CmdPutFile, Key: "big/f", Size: 10, Sum: testSum}, ""},
		{"lower case verb", "putfile k 1000 " + testSum, Request{Cmd: CmdPutFile, Key: "k", Size: 1000, Sum: testSum}, ""},
		{"version", "PUTFILE k 10 " + testSum + " VERSION 7", Request{Cmd: CmdPutFile, Key: "k", Size: 10, Sum: testSum, CAS: true, Version: 7}, ""},
		{"must not exist", "PUTFILE k 10 " + testSum + " version 0", Request{Cmd: CmdPutFile, Key: "k", Size: 10, Sum: testSum, CAS: true}, ""},
		{"bad version", "PUTFILE k 10 " + testSum + " VERSION x", Request{}, CodeBadRequest},
		{"not VERSION", "PUTFILE k 10 " + testSum + " FOO 7", Request{}, CodeBadRequest},
		{"over the limit", "PUTFILE k 1001 " + testSum, Request{}, CodeTooLarge},
		{"empty file", "PUTFILE k 0 " + testSum, Request{}, CodeBadRequest},
		{"no sum", "PUTFILE k 10", Request{}, CodeBadRequest},
		{"upper-case sum", "PUTFILE k 10 " + strings.ToUpper(testSum), Request{}, CodeBadRequest},
		{"short sum", "PUTFILE k 10 abc", Request{}, CodeBadRequest},
		{"bad size", "PUTFILE k -1 " + testSum, Request{}, CodeBadRequest},
		{"bad key", "PUTFILE k\x01 10 " + testSum, Request{}, CodeBadRequest},
		{"extra field", "PUTFILE k 10 " + testSum + " x", Request{}, CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bufio.NewReader(strings.NewReader(tc.in+"\r\n")), lim)
			req, err := r.ReadRequest()
			if tc.code == "" {
				if err != nil || !equalRequest(req, tc.want) {
					t.Fatalf("got %+v, %v; want %+v", req, err, tc.want)
				}
				return
			}
			var pe *ProtoError
			if !errors.As(err, &pe) || pe.Code != tc.code || !pe.Fatal {
				t.Fatalf("got %v, want a fatal %s", err, tc.code)
			}
		})
	}
}

func TestPutFileBody(t *testing.T) {
	body := "ab\r\ncd\r\n\x00"
	in := "PUTFILE k 9 " + testSum + "\r\n" + body + "\r\nPING\r\n"
	r := NewReader(bufio.NewReaderSize(strings.NewReader(in), 16), Limits{})
	req, err := r.ReadRequest()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r.Body(req.Size))
	if err != nil || string(got) != body {
		t.Fatalf("body %q, %v", got, err)
	}
	if err := r.EndBody(); err != nil {
		t.Fatal(err)
	}
	if req, err := r.ReadRequest(); err != nil || req.Cmd != CmdPing {
		t.Fatalf("after the body: %+v, %v", req, err)
	}
	// Bytes where the line end should be: the stream is lost.
	r = NewReader(bufio.NewReader(strings.NewReader("PUTFILE k 2 "+testSum+"\r\nabcd\r\n")), Limits{})
	req, _ = r.ReadRequest()
	io.ReadAll(r.Body(req.Size))
	if err := r.EndBody(); !IsFatal(err) {
		t.Fatalf("EndBody after a longer body: %v, want fatal", err)
	}
}

func TestParseGetRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Request
		ok   bool
	}{
		{"GET k RANGE 0 10", Request{Cmd: CmdGetRange, Key: "k", Length: 10}, true},
		{"get k min 7 range 5 8388608", Request{Cmd: CmdGetRange, Key: "k", MinIndex: 7, Offset: 5, Length: MaxRange}, true},
		{"GET k RANGE 5 0", Request{}, false},
		{"GET k RANGE 5 8388609", Request{}, false},
		{"GET k RANGE x 1", Request{}, false},
		{"GET k MIN 1 RANGE 0", Request{}, false},
		{"GET k FOO 1 RANGE 0 1", Request{}, false},
		{"GET k a b c RANGE 0 1", Request{}, false}, // more fields than any form: found by FuzzReadRequest
	} {
		t.Run(tc.in, func(t *testing.T) {
			r := NewReader(bufio.NewReader(strings.NewReader(tc.in+"\r\n")), Limits{})
			req, err := r.ReadRequest()
			if tc.ok != (err == nil) || tc.ok && !equalRequest(req, tc.want) {
				t.Fatalf("got %+v, %v", req, err)
			}
			if err != nil && IsFatal(err) {
				t.Fatalf("a bad GET RANGE is fatal: %v", err)
			}
			if tc.ok {
				enc, err := AppendRequest(nil, req)
				if err != nil || string(enc) != strings.ToUpper(tc.in[:3])+tc.in[3:]+"\r\n" && !strings.EqualFold(string(enc), tc.in+"\r\n") {
					t.Fatalf("encoded as %q, %v", enc, err)
				}
			}
		})
	}
}

func TestRangeReply(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(bufio.NewWriter(&out))
	w.Range([]byte("a\r\nb"), 9, 100, testSum)
	w.Flush()
	if want := "RANGE 4 9 100 " + testSum + "\r\na\r\nb\r\n"; out.String() != want {
		t.Fatalf("wrote %q, want %q", out.String(), want)
	}
	rr := replyReader{br: bufio.NewReader(&out), opts: Options{}.withDefaults()}
	rep, err := rr.read(CmdGetRange)
	if err != nil || string(rep.Value) != "a\r\nb" || rep.Version != 9 || rep.Len != 100 || rep.Sum != testSum {
		t.Fatalf("read back %+v, %v", rep, err)
	}
	for _, bad := range []string{
		"RANGE 4 9 3 " + testSum + "\r\nabcd\r\n", // more bytes than the file
		"RANGE 4 9 100 xyz\r\nabcd\r\n",
		"RANGE 4 9 100\r\nabcd\r\n",
		"RANGE 9999999999 9 99999999999 " + testSum + "\r\n",
	} {
		rr := replyReader{br: bufio.NewReader(strings.NewReader(bad)), opts: Options{}.withDefaults()}
		if _, err := rr.read(CmdGetRange); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}
