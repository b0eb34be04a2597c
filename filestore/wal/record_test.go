package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"synod/paxos"
)

// TestFormatGolden pins the on-disk format to the example in the package
// comment: if this fails, the format changed and needs a version bump.
func TestFormatGolden(t *testing.T) {
	recs := []Record{
		{Kind: KindAccept, Slot: 42, Ballot: Ballot{7, 2}, Value: paxos.ValueCmds, Cmds: [][]byte{[]byte("put 17 4 0 docs/a hello world"), []byte("del 17 5 0 docs/b")}},
		{Kind: KindAccept, Slot: 43, Ballot: Ballot{7, 2}, Value: paxos.ValueNoop},
		{Kind: KindAccept, Slot: 44, Ballot: Ballot{7, 2}, Value: paxos.ValueCmds, Cmds: [][]byte{{}, {0, 1, 0xff, '\t', '\\'}}},
		{Kind: KindCommit, Slot: 43},
	}
	const want = "synod-wal 1\n" +
		"B 4 167 1e7472d2 0f7e87b3\n" +
		`A 42 7.2 cmds 2 put\s17\s4\s0\sdocs/a\shello\sworld del\s17\s5\s0\sdocs/b cf9d91ff` + "\n" +
		"A 43 7.2 noop 0 e4f3e2c8\n" +
		`A 44 7.2 cmds 2 \e \x00\x01\xff\t\\ b61bbdca` + "\n" +
		"C 43 4dd0af17\n"
	dir := t.TempDir()
	l, _, _ := mustOpen(t, dir, Options{})
	mustAppend(t, l, recs)
	mustClose(t, l)
	if got := string(readFile(t, filepath.Join(dir, "00000000000000000042.log"))); got != want {
		t.Fatalf("segment:\n%s\nwant:\n%s", got, want)
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `\e`},
		{"docs/a", "docs/a"},
		{"hello world", `hello\sworld`},
		{"a\\b", `a\\b`},
		{"\n\r\t", `\n\r\t`},
		{"\x00\x7f\x80\xff", `\x00\x7f\x80\xff`},
		{"~!", "~!"},
		{"e", "e"},
		{`\e`, `\\e`},
		{"héllo", `h\xc3\xa9llo`},
	}
	for _, tc := range tests {
		got := Escape(nil, []byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := Unescape([]byte("prefix"), got)
		if err != nil || string(back) != "prefix"+tc.in {
			t.Errorf("Unescape(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
}

func TestEscapeEveryByte(t *testing.T) {
	all := make([]byte, 256)
	for i := range 256 {
		all[i] = byte(i)
		one := []byte{byte(i)}
		esc := Escape(nil, one)
		for _, c := range esc {
			if c < 0x21 || c > 0x7e {
				t.Fatalf("Escape(%#x) = %q holds byte %#x", i, esc, c)
			}
		}
		back, err := Unescape(nil, esc)
		if err != nil || !bytes.Equal(back, one) {
			t.Fatalf("byte %#x: %q -> %q, %v", i, esc, back, err)
		}
	}
	back, err := Unescape(nil, Escape(nil, all))
	if err != nil || !bytes.Equal(back, all) {
		t.Fatalf("all bytes: %v", err)
	}
}

func TestUnescapeRejects(t *testing.T) {
	for _, in := range []string{
		"",     // empty token
		"a b",  // raw space
		"a\nb", // raw newline
		"\x00", // raw control byte
		"\xff", // raw high byte
		`\`,    // lone backslash
		`a\`,   // trailing backslash
		`\q`,   // unknown escape
		`\x4`,  // short hex
		`\x`,   // short hex
		`\xA0`, // upper-case hex
		`\xg0`, // not hex
		`\x41`, // 'A' is written verbatim
		`\x20`, // space is written \s
		`\x0a`, // newline is written \n
		`\x5c`, // backslash is written \\
		`a\e`,  // \e only as the whole token
		`\e\e`, // likewise
		`\ea`,  // likewise
		`\S`,   // escapes are lower case
	} {
		if got, err := Unescape(nil, []byte(in)); !errors.Is(err, ErrBadEscape) {
			t.Errorf("Unescape(%q) = %q, %v; want ErrBadEscape", in, got, err)
		}
	}
}

// withCRC appends " <crc>\n" to content, making a line whose checksum is
// right, so the tests below reach the field checks.
func withCRC(content string) []byte {
	return appendCRC([]byte(content), 0)
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want Record
	}{
		{"C 0", Record{Kind: KindCommit}},
		{"C 18446744073709551615", Record{Kind: KindCommit, Slot: 1<<64 - 1}},
		{"A 1 2.3 noop 0", Record{Kind: KindAccept, Slot: 1, Ballot: Ballot{2, 3}, Value: paxos.ValueNoop}},
		{"A 1 2.3 cmds 0", Record{Kind: KindAccept, Slot: 1, Ballot: Ballot{2, 3}, Value: paxos.ValueCmds}},
		{`A 9 0.0 config 2 \e x\sy`, Record{Kind: KindAccept, Slot: 9, Value: paxos.ValueConfig, Cmds: [][]byte{{}, []byte("x y")}}},
	}
	for _, tc := range tests {
		line := withCRC(tc.line)
		got, err := ParseLine(line)
		if err != nil {
			t.Errorf("ParseLine(%q): %v", line, err)
			continue
		}
		if !sameRecord(got, tc.want) {
			t.Errorf("ParseLine(%q) = %+v, want %+v", line, got, tc.want)
		}
		again, err := AppendRecord(nil, got)
		if err != nil || !bytes.Equal(again, line) {
			t.Errorf("re-encoding %q gave %q, %v", line, again, err)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	good := withCRC("A 1 2.3 cmds 1 x")
	tests := []struct {
		name string
		line []byte
	}{
		{"empty", nil},
		{"no newline", good[:len(good)-1]},
		{"bad crc", append([]byte("A 1 2.3 cmds 1 y"), good[len(good)-10:]...)},
		{"upper-case crc", []byte(strings.ToUpper(string(withCRC("C 1"))))},
		{"no crc", []byte("C 1\n")},
		{"crc not separated", bytes.Replace(withCRC("C 1"), []byte(" "), []byte("\t"), 2)},
		{"unknown kind", withCRC("X 1")},
		{"header is not a record", withCRC("B 1 13 00000000")},
		{"lower-case kind", withCRC("a 1 2.3 cmds 0")},
		{"leading zero", withCRC("C 01")},
		{"sign", withCRC("C +1")},
		{"overflow", withCRC("C 18446744073709551616")},
		{"commit with extra field", withCRC("C 1 2")},
		{"double space", withCRC("C  1")},
		{"leading space", withCRC(" C 1")},
		{"trailing space", withCRC("A 1 2.3 cmds 1 x ")},
		{"missing ballot", withCRC("A 1")},
		{"ballot without node", withCRC("A 1 2 cmds 0")},
		{"ballot with two dots", withCRC("A 1 2.3.4 cmds 0")},
		{"unknown value", withCRC("A 1 2.3 data 0")},
		{"count too high", withCRC("A 1 2.3 cmds 2 x")},
		{"huge count", withCRC("A 1 2.3 cmds 18446744073709551615 x")},
		{"count too low", withCRC("A 1 2.3 cmds 1 x y")},
		{"noop with commands", withCRC("A 1 2.3 noop 1 x")},
		{"bad escape", withCRC(`A 1 2.3 cmds 1 \x41`)},
		{"embedded newline", withCRC("A 1 2.3 cmds 1 a\nb")},
		{"two lines", append(withCRC("C 1"), withCRC("C 2")...)},
	}
	for _, tc := range tests {
		if r, err := ParseLine(tc.line); !errors.Is(err, ErrBadLine) {
			t.Errorf("%s: ParseLine(%q) = %+v, %v; want ErrBadLine", tc.name, tc.line, r, err)
		}
	}
}

func TestAppendRecordRejects(t *testing.T) {
	for _, r := range []Record{
		{},
		{Kind: 'X', Slot: 1},
		{Kind: KindAccept, Slot: 1, Value: 4},
		{Kind: KindAccept, Slot: 1, Value: paxos.ValueNoop, Cmds: [][]byte{{}}},
		{Kind: KindCommit, Slot: 1, Ballot: Ballot{Round: 1}},
		{Kind: KindCommit, Slot: 1, Value: paxos.ValueConfig},
		{Kind: KindCommit, Slot: 1, Cmds: [][]byte{[]byte("x")}},
	} {
		if got, err := AppendRecord([]byte("keep"), r); !errors.Is(err, ErrInvalidRecord) || string(got) != "keep" {
			t.Errorf("AppendRecord(%+v) = %q, %v; want ErrInvalidRecord and dst unchanged", r, got, err)
		}
	}
}

func TestParseHeader(t *testing.T) {
	body := []byte("C 1 00000000\n")
	h, err := parseHeader(appendHeader(nil, 1, body))
	if err != nil || h.lines != 1 || h.bytes != uint64(len(body)) || h.crc != crc32.Checksum(body, CRC32C) {
		t.Fatalf("parseHeader(appendHeader) = %+v, %v", h, err)
	}
	for _, bad := range [][]byte{
		withCRC("B 0 13 00000000"),   // no lines
		withCRC("B 2 13 00000000"),   // more lines than bytes allow
		withCRC("B 1 13 0000000"),    // short crc
		withCRC("B 1 13 00000000 x"), // extra field
		withCRC("B 1 013 00000000"),  // leading zero
		withCRC("C 1"),               // a record
		withCRC("B 99999999999999999999 18446744073709551615 00000000"), // too long
		[]byte("B 1 13 00000000 00000000\n"),                            // bad crc
	} {
		if h, err := parseHeader(bad); err == nil {
			t.Errorf("parseHeader(%q) = %+v, want an error", bad, h)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Ballot{7, 2}.String(), "7.2"},
		{KindAccept.String(), "A"},
		{KindCommit.String(), "C"},
		{RecordKind(0).String(), "RecordKind(0)"},
		{paxos.ValueConfig.String(), "config"},
		{paxos.ValueKind(9).String(), "ValueKind(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// escapeBytewise is Escape as it was written before its word-at-a-time
// fast path: the reference the fast path must match.
func escapeBytewise(dst, src []byte) []byte {
	if len(src) == 0 {
		return append(dst, '\\', 'e')
	}
	for _, b := range src {
		switch e := escapeAs[b]; e {
		case 0:
			dst = append(dst, b)
		case 'x':
			dst = append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xf])
		default:
			dst = append(dst, '\\', e)
		}
	}
	return dst
}

func TestWordNeedsEscape(t *testing.T) {
	for b := range 256 {
		for lane := range 8 {
			w := []byte("aaaaaaaa")
			w[lane] = byte(b)
			got := wordNeedsEscape(binary.LittleEndian.Uint64(w))
			if want := escapeAs[b] != 0; got != want {
				t.Fatalf("byte %#x in lane %d: %v, want %v", b, lane, got, want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		w := rng.Uint64()
		want := false
		for lane := range 8 {
			want = want || escapeAs[byte(w>>(8*lane))] != 0
		}
		if got := wordNeedsEscape(w); got != want {
			t.Fatalf("word %#016x: %v, want %v", w, got, want)
		}
	}
}

func TestEscapeMatchesBytewise(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	special := []byte{0, ' ', '\\', '\n', 0x7f, 0x80, 0xff, 0x20, 0x21, 0x7e}
	for range 20000 {
		src := make([]byte, rng.IntN(70))
		for i := range src {
			src[i] = byte('!' + rng.IntN(0x7e-'!'+1))
			if rng.IntN(8) == 0 {
				src[i] = special[rng.IntN(len(special))]
			}
		}
		got, want := Escape([]byte("p"), src), escapeBytewise([]byte("p"), src)
		if !bytes.Equal(got, want) {
			t.Fatalf("Escape(%q) = %q, want %q", src, got, want)
		}
	}
	long := bytes.Repeat([]byte{'v'}, 100)
	for i := range long {
		for _, b := range special {
			src := bytes.Clone(long)
			src[i] = b
			if got, want := Escape(nil, src), escapeBytewise(nil, src); !bytes.Equal(got, want) {
				t.Fatalf("byte %#x at %d: %q, want %q", b, i, got, want)
			}
		}
	}
}
