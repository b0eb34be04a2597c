package line

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// outcome is what one ReadRequest call should return.
type outcome struct {
	req   Request
	code  string // "" for a request, else the ProtoError's code
	fatal bool
	is    error // an extra sentinel the error must match, or nil
}

func ok(req Request) outcome { return outcome{req: req} }
func bad() outcome           { return outcome{code: CodeBadRequest} }
func badKey() outcome        { return outcome{code: CodeBadRequest, is: ErrInvalidKey} }
func tooLarge() outcome      { return outcome{code: CodeTooLarge} }

var (
	ping = ok(Request{Cmd: CmdPing})
	put  = func(k, v string) outcome { return ok(Request{Cmd: CmdPut, Key: k, Value: []byte(v)}) }
)

// smallLimits make the size errors cheap to reach.
var smallLimits = Limits{MaxLine: 200, MaxValue: 10, MaxKey: 16, MaxDiscard: 100}

func TestReadRequest(t *testing.T) {
	long := strings.Repeat("k", 1025)
	tests := []struct {
		name string
		in   string // {EOL} is replaced by "\n" and by "\r\n"
		lim  Limits
		want []outcome
		end  error // what follows the outcomes; nil means io.EOF
	}{
		{name: "put inline with spaces", in: "PUT greeting hello world{EOL}",
			want: []outcome{put("greeting", "hello world")}},
		{name: "value keeps every space after the one", in: "PUT k  two  spaces {EOL}",
			want: []outcome{put("k", " two  spaces ")}},
		{name: "empty inline value", in: "PUT k {EOL}", want: []outcome{put("k", "")}},
		{name: "leading and repeated spaces", in: "   PUT    k v{EOL}", want: []outcome{put("k", "v")}},
		{name: "value with tabs and dollar inside", in: "PUT k a\tb $5{EOL}", want: []outcome{put("k", "a\tb $5")}},
		{name: "case-insensitive", in: "put a 1{EOL}Put b 2{EOL}pUT c 3{EOL}",
			want: []outcome{put("a", "1"), put("b", "2"), put("c", "3")}},
		{name: "append", in: "APPEND log/1 line one{EOL}",
			want: []outcome{ok(Request{Cmd: CmdAppend, Key: "log/1", Value: []byte("line one")})}},
		{name: "cas", in: "CAS k 7 new value{EOL}cas k 0 x{EOL}",
			want: []outcome{
				ok(Request{Cmd: CmdCAS, Key: "k", Version: 7, Value: []byte("new value")}),
				ok(Request{Cmd: CmdCAS, Key: "k", Version: 0, Value: []byte("x")}),
			}},
		{name: "cas max version", in: "CAS k 18446744073709551615 v{EOL}",
			want: []outcome{ok(Request{Cmd: CmdCAS, Key: "k", Version: 1<<64 - 1, Value: []byte("v")})}},
		{name: "del get stat", in: "DEL a/b{EOL}get a/b{EOL}Stat a/b{EOL}",
			want: []outcome{
				ok(Request{Cmd: CmdDel, Key: "a/b"}),
				ok(Request{Cmd: CmdGet, Key: "a/b"}),
				ok(Request{Cmd: CmdStat, Key: "a/b"}),
			}},
		{name: "get min", in: "GET k MIN 42{EOL}get k min 0{EOL}GET  k  Min  7  {EOL}",
			want: []outcome{
				ok(Request{Cmd: CmdGet, Key: "k", MinIndex: 42}),
				ok(Request{Cmd: CmdGet, Key: "k"}),
				ok(Request{Cmd: CmdGet, Key: "k", MinIndex: 7}),
			}},
		{name: "unicode key", in: "GET café/naïve/日本{EOL}",
			want: []outcome{ok(Request{Cmd: CmdGet, Key: "café/naïve/日本"})}},
		{name: "list", in: "LIST{EOL}list docs/{EOL}LIST {EOL}",
			want: []outcome{ok(Request{Cmd: CmdList}), ok(Request{Cmd: CmdList, Prefix: "docs/"}), ok(Request{Cmd: CmdList})}},
		{name: "consistency", in: "CONSISTENCY linearizable{EOL}consistency SESSION{EOL}Consistency Stale{EOL}",
			want: []outcome{
				ok(Request{Cmd: CmdConsistency, Level: LevelLinearizable}),
				ok(Request{Cmd: CmdConsistency, Level: LevelSession}),
				ok(Request{Cmd: CmdConsistency, Level: LevelStale}),
			}},
		{name: "no-argument commands", in: "STATUS{EOL}stats{EOL}Ping{EOL}HELP {EOL}quit{EOL}",
			want: []outcome{ok(Request{Cmd: CmdStatus}), ok(Request{Cmd: CmdStats}), ping, ok(Request{Cmd: CmdHelp}), ok(Request{Cmd: CmdQuit})}},
		{name: "member commands", in: "MEMBER LIST{EOL}member add 4 127.0.0.1:7104{EOL}Member Remove 3{EOL}MEMBER  promote  4 {EOL}" +
			"MEMBER ADD 5 [::1]:7105{EOL}MEMBER ADD 6 db-6.example.com:7000{EOL}",
			want: []outcome{
				ok(Request{Cmd: CmdMemberList}),
				ok(Request{Cmd: CmdMemberAdd, MemberID: 4, MemberAddr: "127.0.0.1:7104"}),
				ok(Request{Cmd: CmdMemberRemove, MemberID: 3}),
				ok(Request{Cmd: CmdMemberPromote, MemberID: 4}),
				ok(Request{Cmd: CmdMemberAdd, MemberID: 5, MemberAddr: "[::1]:7105"}),
				ok(Request{Cmd: CmdMemberAdd, MemberID: 6, MemberAddr: "db-6.example.com:7000"}),
			}},
		{name: "blank lines skipped", in: "{EOL}{EOL}   {EOL}\t \t{EOL}PING{EOL}{EOL}",
			want: []outcome{ping}},
		{name: "empty input", in: "", want: nil},
		{name: "block", in: "PUT k $5{EOL}a\r\nb\n{EOL}PING{EOL}",
			want: []outcome{put("k", "a\r\nb\n"), ping}},
		{name: "block with bare LF end", in: "PUT k $3{EOL}abc\nPING{EOL}",
			want: []outcome{put("k", "abc"), ping}},
		{name: "empty block", in: "PUT k $0{EOL}{EOL}PING{EOL}", want: []outcome{put("k", ""), ping}},
		{name: "block with leading zeros", in: "PUT k $003{EOL}abc{EOL}", want: []outcome{put("k", "abc")}},
		{name: "cas and append blocks", in: "CAS k 3 $3{EOL}a b{EOL}APPEND k $1{EOL}${EOL}",
			want: []outcome{
				ok(Request{Cmd: CmdCAS, Key: "k", Version: 3, Value: []byte("a b")}),
				ok(Request{Cmd: CmdAppend, Key: "k", Value: []byte("$")}),
			}},
		{name: "block holding a request", in: "PUT k $6{EOL}PING\r\n{EOL}PING{EOL}",
			want: []outcome{put("k", "PING\r\n"), ping}},

		// Resumable errors: the next request parses.
		{name: "unknown command", in: "FOO bar{EOL}PING{EOL}", want: []outcome{bad(), ping}},
		{name: "binary garbage", in: "\x00\xff\xfe\x01{EOL}\x80{EOL}PING{EOL}", want: []outcome{bad(), bad(), ping}},
		{name: "missing key", in: "PUT{EOL}PUT  {EOL}DEL{EOL}GET{EOL}STAT{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), bad(), ping}},
		{name: "missing value", in: "PUT k{EOL}APPEND k{EOL}CAS k 1{EOL}CAS k{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), ping}},
		{name: "bad version", in: "CAS k x v{EOL}CAS k -1 v{EOL}CAS k 18446744073709551616 v{EOL}CAS k  {EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), ping}},
		{name: "extra arguments", in: "DEL a b{EOL}STAT a b{EOL}LIST a b{EOL}PING x{EOL}STATUS x{EOL}STATS x{EOL}QUIT x{EOL}HELP x{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), bad(), bad(), bad(), bad(), ping}},
		{name: "bad MIN", in: "GET k MIN{EOL}GET k MAX 3{EOL}GET k MIN x{EOL}GET k MIN 99999999999999999999{EOL}GET k MIN 1 2{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), bad(), ping}},
		{name: "bad consistency", in: "CONSISTENCY{EOL}CONSISTENCY strong{EOL}CONSISTENCY stale x{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), ping}},
		{name: "bad member commands", in: "MEMBER{EOL}MEMBER JOIN 4{EOL}MEMBER LIST x{EOL}MEMBER ADD 4{EOL}MEMBER ADD 4 h:1 x{EOL}" +
			"MEMBER REMOVE{EOL}MEMBER REMOVE 1 2{EOL}MEMBER PROMOTE{EOL}MEMBERS{EOL}MEMBERLIST{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), bad(), bad(), bad(), bad(), bad(), bad(), ping}},
		{name: "bad member ids", in: "MEMBER REMOVE 0{EOL}MEMBER REMOVE x{EOL}MEMBER PROMOTE -1{EOL}MEMBER ADD 18446744073709551616 h:1{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), ping}},
		{name: "bad member addresses", in: "MEMBER ADD 4 127.0.0.1{EOL}MEMBER ADD 4 :7104{EOL}MEMBER ADD 4 h:0{EOL}MEMBER ADD 4 h:65536{EOL}" +
			"MEMBER ADD 4 h:http{EOL}MEMBER ADD 4 h\x01:1{EOL}MEMBER ADD 4 a:b:1{EOL}MEMBER ADD 4 " + strings.Repeat("h", 256) + ":1{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), bad(), bad(), bad(), bad(), ping}},
		{name: "bad keys", in: "GET bad\x01key{EOL}GET " + long + "{EOL}GET k\xff{EOL}GET a\u00a0b{EOL}GET a\u2028b{EOL}GET a\x7fb{EOL}LIST \x01{EOL}PING{EOL}",
			want: []outcome{badKey(), badKey(), badKey(), badKey(), badKey(), badKey(), badKey(), ping}},
		{name: "bad key with inline value", in: "PUT bad\x01key v{EOL}PING{EOL}", want: []outcome{badKey(), ping}},
		{name: "bad key with block: block still consumed", in: "PUT bad\x01key $6{EOL}PING\r\n{EOL}PING{EOL}",
			want: []outcome{badKey(), ping}},
		{name: "bad version with block: block still consumed", in: "CAS k x $4{EOL}QUIT{EOL}PING{EOL}",
			want: []outcome{bad(), ping}},
		{name: "malformed block headers", in: "PUT k $abc{EOL}PUT k $-1{EOL}PUT k ${EOL}PUT k $5 x{EOL}PUT k $+5{EOL}PING{EOL}",
			want: []outcome{bad(), bad(), bad(), bad(), bad(), ping}},
		{name: "inline value too large", lim: smallLimits, in: "PUT k 01234567890{EOL}PUT k 0123456789{EOL}",
			want: []outcome{tooLarge(), put("k", "0123456789")}},
		{name: "block too large is drained", lim: smallLimits, in: "PUT k $20{EOL}PING\r\nPING\r\nPING\r\nPI{EOL}PING{EOL}",
			want: []outcome{tooLarge(), ping}},
		{name: "block at MaxDiscard is drained", lim: smallLimits, in: "PUT k $100{EOL}" + strings.Repeat("x", 100) + "{EOL}PING{EOL}",
			want: []outcome{tooLarge(), ping}},
		{name: "key at MaxKey", lim: smallLimits, in: "GET " + strings.Repeat("k", 16) + "{EOL}GET " + strings.Repeat("k", 17) + "{EOL}",
			want: []outcome{ok(Request{Cmd: CmdGet, Key: strings.Repeat("k", 16)}), badKey()}},

		// Fatal errors: the same error ever after.
		{name: "block over MaxDiscard", lim: smallLimits, in: "PUT k $101{EOL}PING{EOL}",
			want: []outcome{{code: CodeTooLarge, fatal: true}}},
		{name: "block size overflows", in: "PUT k $99999999999999999999999{EOL}PING{EOL}",
			want: []outcome{{code: CodeTooLarge, fatal: true}}},
		{name: "block not followed by line end", in: "PUT k $3{EOL}abcX{EOL}PING{EOL}",
			want: []outcome{{code: CodeBadRequest, fatal: true}}},
		{name: "block followed by CR alone", in: "PUT k $3{EOL}abc\rPING{EOL}",
			want: []outcome{{code: CodeBadRequest, fatal: true}}},
		{name: "bad key then broken block", in: "PUT \x01 $3{EOL}abcX{EOL}",
			want: []outcome{{code: CodeBadRequest, fatal: true}}},
		{name: "line over MaxLine", lim: smallLimits, in: "PING{EOL}PUT k " + strings.Repeat("v", 300) + "{EOL}PING{EOL}",
			want: []outcome{ping, {code: CodeTooLarge, fatal: true, is: ErrLineTooLong}}},
		{name: "blank line over MaxLine", lim: smallLimits, in: strings.Repeat(" ", 201) + "{EOL}PING{EOL}",
			want: []outcome{{code: CodeTooLarge, fatal: true, is: ErrLineTooLong}}},

		// Input that ends early.
		{name: "half line then EOF", in: "PING{EOL}PIN", want: []outcome{ping}, end: io.ErrUnexpectedEOF},
		{name: "half header then EOF", in: "PUT k $5", end: io.ErrUnexpectedEOF},
		{name: "block cut short", in: "PUT k $10{EOL}abc", end: io.ErrUnexpectedEOF},
		{name: "block without its line end", in: "PUT k $3{EOL}abc", end: io.ErrUnexpectedEOF},
		{name: "block without LF", in: "PUT k $3{EOL}abc\r", end: io.ErrUnexpectedEOF},
		{name: "drained block cut short", lim: smallLimits, in: "PUT k $50{EOL}abc", end: io.ErrUnexpectedEOF},
		{name: "trailing blanks then EOF", in: "PING{EOL}  \t", want: []outcome{ping}},
	}
	for _, tt := range tests {
		for _, eol := range []string{"\n", "\r\n"} {
			for _, bufSize := range []int{16, 4096} {
				name := tt.name + map[string]string{"\n": "/LF", "\r\n": "/CRLF"}[eol]
				if bufSize == 16 {
					name += "/smallbuf"
				}
				t.Run(name, func(t *testing.T) {
					in := strings.ReplaceAll(tt.in, "{EOL}", eol)
					r := NewReader(bufio.NewReaderSize(strings.NewReader(in), bufSize), tt.lim)
					checkOutcomes(t, r, tt.want, tt.end)
				})
			}
		}
	}
}

// checkOutcomes reads len(want) requests, then expects end (io.EOF if nil)
// unless the last outcome was fatal, in which case it expects that same error
// again.
func checkOutcomes(t *testing.T, r *Reader, want []outcome, end error) {
	t.Helper()
	var fatalErr error
	for i, w := range want {
		req, err := r.ReadRequest()
		if w.code == "" {
			if err != nil {
				t.Fatalf("request %d: unexpected error %v", i, err)
			}
			if !equalRequest(req, w.req) {
				t.Fatalf("request %d: got %+v, want %+v", i, req, w.req)
			}
			continue
		}
		var pe *ProtoError
		if !errors.As(err, &pe) {
			t.Fatalf("request %d: got (%+v, %v), want a ProtoError %s", i, req, err, w.code)
		}
		if pe.Code != w.code || pe.Fatal != w.fatal {
			t.Fatalf("request %d: got %v (fatal %v), want %s (fatal %v)", i, err, pe.Fatal, w.code, w.fatal)
		}
		if IsFatal(err) != w.fatal {
			t.Fatalf("request %d: IsFatal = %v, want %v", i, IsFatal(err), w.fatal)
		}
		if !errors.Is(err, codeSentinel(w.code)) {
			t.Fatalf("request %d: %v does not match its code's sentinel", i, err)
		}
		if w.is != nil && !errors.Is(err, w.is) {
			t.Fatalf("request %d: %v does not match %v", i, err, w.is)
		}
		if pe.Msg == "" {
			t.Fatalf("request %d: empty message", i)
		}
		if w.fatal {
			fatalErr = err
		}
	}
	_, err := r.ReadRequest()
	switch {
	case fatalErr != nil:
		if err != fatalErr {
			t.Fatalf("after a fatal error: got %v, want the same error %v", err, fatalErr)
		}
	case end == nil:
		if err != io.EOF {
			t.Fatalf("at the end: got %v, want io.EOF", err)
		}
	default:
		if !errors.Is(err, end) || !IsFatal(err) {
			t.Fatalf("at the end: got %v, want %v", err, end)
		}
	}
}

func equalRequest(a, b Request) bool {
	if a.Cmd.hasValue() && a.Value == nil {
		return false // values of writes are never nil
	}
	return a.Cmd == b.Cmd && a.Key == b.Key && bytes.Equal(a.Value, b.Value) &&
		a.Version == b.Version && a.MinIndex == b.MinIndex && a.Prefix == b.Prefix && a.Level == b.Level &&
		a.MemberID == b.MemberID && a.MemberAddr == b.MemberAddr && a.Chunk == b.Chunk &&
		a.WatchPrefix == b.WatchPrefix && a.From == b.From && a.Prev == b.Prev && a.WatchID == b.WatchID &&
		a.Size == b.Size && a.Sum == b.Sum && a.Offset == b.Offset && a.Length == b.Length && a.CAS == b.CAS
}

// TestReadRequestEveryByte sends a block holding every byte value, twice
// over so "\r\n" appears inside it, in pipelined requests.
func TestReadRequestEveryByte(t *testing.T) {
	val := make([]byte, 512)
	for i := range val {
		val[i] = byte(i)
	}
	for _, eol := range []string{"\n", "\r\n"} {
		var in bytes.Buffer
		for i := range 3 {
			in.WriteString("PUT bin $512" + eol)
			in.Write(val)
			in.WriteString(eol)
			if i == 1 {
				in.WriteString("CAS bin 9 $0" + eol + eol)
			}
		}
		r := NewReader(bufio.NewReaderSize(&in, 100), Limits{})
		for i := range 4 {
			req, err := r.ReadRequest()
			if err != nil {
				t.Fatalf("eol %q request %d: %v", eol, i, err)
			}
			want := Request{Cmd: CmdPut, Key: "bin", Value: val}
			if i == 2 {
				want = Request{Cmd: CmdCAS, Key: "bin", Version: 9, Value: []byte{}}
			}
			if !equalRequest(req, want) {
				t.Fatalf("eol %q request %d: got %+v", eol, i, req)
			}
		}
		if _, err := r.ReadRequest(); err != io.EOF {
			t.Fatalf("eol %q: got %v at the end, want io.EOF", eol, err)
		}
	}
}

// TestReadRequestLineLimit checks the boundary: a line of exactly MaxLine
// bytes is accepted, one more is fatal, whatever the buffer size.
func TestReadRequestLineLimit(t *testing.T) {
	const maxLine = 300
	lim := Limits{MaxLine: maxLine, MaxValue: 1000}
	for _, eol := range []string{"\n", "\r\n"} {
		for _, bufSize := range []int{16, 299, 300, 301, 302, 4096} {
			for _, extra := range []int{0, 1} {
				value := strings.Repeat("v", maxLine-len("PUT k ")+extra)
				in := "PUT k " + value + eol + "PING" + eol
				r := NewReader(bufio.NewReaderSize(strings.NewReader(in), bufSize), lim)
				req, err := r.ReadRequest()
				if extra == 0 {
					if err != nil || string(req.Value) != value {
						t.Fatalf("eol %q buf %d: line of MaxLine bytes: %v", eol, bufSize, err)
					}
					if req, err := r.ReadRequest(); err != nil || req.Cmd != CmdPing {
						t.Fatalf("eol %q buf %d: after the long line: %+v, %v", eol, bufSize, req, err)
					}
					continue
				}
				if !errors.Is(err, ErrLineTooLong) || !IsFatal(err) {
					t.Fatalf("eol %q buf %d: line of MaxLine+1 bytes: got %v", eol, bufSize, err)
				}
			}
		}
	}
}

// TestReadRequestIOError passes a read failure through, wrapped and fatal.
func TestReadRequestIOError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(bufio.NewReader(io.MultiReader(strings.NewReader("PING\nPI"), &failReader{boom})), Limits{})
	if req, err := r.ReadRequest(); err != nil || req.Cmd != CmdPing {
		t.Fatalf("first request: %+v, %v", req, err)
	}
	_, err := r.ReadRequest()
	if !errors.Is(err, boom) || !IsFatal(err) {
		t.Fatalf("got %v, want a fatal error wrapping boom", err)
	}
	if _, err2 := r.ReadRequest(); err2 != err {
		t.Fatalf("not sticky: %v then %v", err, err2)
	}
}

type failReader struct{ err error }

func (f *failReader) Read([]byte) (int, error) { return 0, f.err }

// TestReaderBuffered reports pipelined input still waiting, which is what a
// server flushes on.
func TestReaderBuffered(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("PING\r\nPING\r\n")), Limits{})
	if _, err := r.ReadRequest(); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != len("PING\r\n") {
		t.Fatalf("Buffered after the first of two = %d, want %d", got, len("PING\r\n"))
	}
	if _, err := r.ReadRequest(); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != 0 {
		t.Fatalf("Buffered after both = %d, want 0", got)
	}
}

// TestReaderAdmit: a block the admission function refuses is drained, not
// kept, and answered BUSY; the stream goes on with the next request, and
// inline values and admitted blocks are unaffected.
func TestReaderAdmit(t *testing.T) {
	in := "PUT a $5\r\nhello\r\nPUT b $3\r\nabc\r\nPUT c inline\r\nCAS d 0 $4\r\nwxyz\r\nPING\r\n"
	var asked []int
	r := NewReader(bufio.NewReader(strings.NewReader(in)), Limits{})
	r.SetAdmit(func(n int) error {
		asked = append(asked, n)
		if n == 5 {
			return errors.New("memory budget full")
		}
		return nil
	})
	tests := []struct {
		cmd   Cmd
		value string
		busy  bool
	}{
		{busy: true},
		{cmd: CmdPut, value: "abc"},
		{cmd: CmdPut, value: "inline"},
		{cmd: CmdCAS, value: "wxyz"},
		{cmd: CmdPing},
	}
	for i, tt := range tests {
		req, err := r.ReadRequest()
		if tt.busy {
			var pe *ProtoError
			if !errors.As(err, &pe) || pe.Code != CodeBusy || pe.Fatal || pe.Msg != "memory budget full" || !errors.Is(err, ErrBusy) {
				t.Fatalf("request %d: %v, want a non-fatal BUSY", i, err)
			}
			continue
		}
		if err != nil || req.Cmd != tt.cmd || string(req.Value) != tt.value {
			t.Fatalf("request %d: %+v, %v", i, req, err)
		}
	}
	if len(asked) != 3 || asked[0] != 5 || asked[1] != 3 || asked[2] != 4 {
		t.Fatalf("asked about %v, want the three blocks", asked)
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		lim  Limits
		fail bool
	}{
		{Limits{}, false},
		{DefaultLimits(), false},
		{Limits{MaxValue: 128 << 20}, false}, // MaxDiscard defaults up to MaxValue
		{Limits{MaxLine: 100}, true},         // below MaxKey+64
		{Limits{MaxLine: 100, MaxKey: 36}, false},
		{Limits{MaxValue: 10, MaxDiscard: 5}, true},
		{Limits{MaxValue: -1}, true},
	}
	for _, tt := range tests {
		if err := tt.lim.Validate(); (err != nil) != tt.fail {
			t.Errorf("%+v: Validate() = %v, want failure %v", tt.lim, err, tt.fail)
		}
	}
}
