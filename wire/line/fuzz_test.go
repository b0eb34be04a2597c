package line

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// fuzzLimits are small so that the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxLine: 200, MaxValue: 64, MaxKey: 32, MaxDiscard: 256}

var requestSeeds = []string{
	"PUT greeting hello world\r\n",
	"put k v\nGET k\nget k MIN 3\r\nDEL k\nSTAT k\n",
	"PUT k $5\r\na\r\nb\n\r\nPING\r\n",
	"CAS k 7 $3\nabc\nCAS k 0 x\r\n",
	"APPEND k $0\r\n\r\n",
	"LIST\r\nLIST docs/\nCONSISTENCY stale\nCONSISTENCY Session\r\n",
	"STATUS\r\nSTATS\r\nHELP\r\nQUIT\r\n",
	"\r\n\n   \n\tPING\r\n",
	"FOO bar\r\nPING\r\n",
	"PUT bad\x01key $4\r\nPING\r\nPING\r\n",
	"PUT k $abc\r\nPUT k $-1\r\nPUT k $\r\n",
	"PUT k $100\r\n" + strings.Repeat("x", 100) + "\r\nPING\r\n",
	"PUT k $300\r\nPING\r\n",
	"PUT k $3\r\nabcX\r\n",
	"PUT k " + strings.Repeat("v", 300) + "\r\n",
	"PING\r\nPIN",
	"GET café/日本\r\nGET a\u00a0b\r\n",
	"\x00\xff\xfe\r\n$5\r\n",
	"MEMBER LIST\r\nmember add 4 127.0.0.1:7104\r\nMEMBER REMOVE 3\nMEMBER PROMOTE 4\r\n",
	"AUTH alice s3cret pw\r\nUSER ADD bob pw\r\nROLE GRANT r read a/\r\nROLE GRANT r write *\r\nUSER LIST\r\n",
	"MEMBER\r\nMEMBER ADD 0 h:1\r\nMEMBER ADD 4 [::1]:7\r\nMEMBER ADD 4 h:99999\r\nMEMBER REMOVE x y\r\n",
	"WATCH k\r\nwatch a/* FROM 7 PREV\r\nWATCH * prev from 1\r\nWATCH k FROM 0\r\nWATCH k FROM 3 FROM 4\r\nWATCH\r\nUNWATCH 3\r\nUNWATCH 0\r\nWATCH a** PREV PREV\r\n",
	"PUTFILE big 5 " + strings.Repeat("ab", 32) + "\r\nhello\r\nPING\r\n",
	"PUTFILE big 3 " + strings.Repeat("ab", 32) + " VERSION 0\r\nabc\r\n",
	"putfile big 0 " + strings.Repeat("0", 64) + "\r\nPUTFILE big 99999999999999999999 x\r\n",
	"GET big RANGE 0 10\r\nget big MIN 3 range 5 8388608\r\nGET big RANGE 0 0\r\nGET big RANGE 1\r\n",
	"SNAPSHOT\r\nsnapshot 4096\r\nSNAPSHOT 4194304\nSNAPSHOT 4095\r\nSNAPSHOT 1 2\r\nSNAPSHOT x\r\n",
}

// FuzzReadRequest checks that the parser never panics, that every error is
// either resumable or sticky-fatal, that it always makes progress, and that
// every request it accepts survives a trip through the client's encoder.
func FuzzReadRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 16), fuzzLimits)
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("%d results from %d bytes: no progress", i, len(data))
			}
			req, err := r.ReadRequest()
			if err == io.EOF {
				return
			}
			if err != nil {
				checkReplyable(t, err)
				if IsFatal(err) {
					if _, again := r.ReadRequest(); again != err {
						t.Fatalf("fatal error %v not sticky: then %v", err, again)
					}
					return
				}
				continue
			}
			checkRoundTrip(t, req)
		}
	})
}

// checkReplyable: a protocol error makes exactly one reply line.
func checkReplyable(t *testing.T, err error) {
	var pe *ProtoError
	if !errors.As(err, &pe) {
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error type: %v", err)
		}
		return
	}
	if pe.Code != CodeBadRequest && pe.Code != CodeTooLarge || pe.Msg == "" {
		t.Fatalf("bad ProtoError %+v", pe)
	}
	var out bytes.Buffer
	w := NewWriter(bufio.NewWriter(&out))
	w.ReplyError(err)
	w.Flush()
	line := out.String()
	if !strings.HasPrefix(line, "ERR "+pe.Code+" ") || strings.IndexAny(line, "\r\n") != len(line)-2 {
		t.Fatalf("error reply %q is not one line", line)
	}
}

func checkRoundTrip(t *testing.T, req Request) {
	if req.Cmd.hasValue() && len(req.Value) > fuzzLimits.MaxValue {
		t.Fatalf("value of %d bytes over the limit", len(req.Value))
	}
	if req.Cmd.hasKey() && (!ValidKey(req.Key, fuzzLimits.MaxKey)) {
		t.Fatalf("accepted invalid key %q", req.Key)
	}
	if req.Cmd.IsMemberChange() != (req.MemberID != 0) || (req.Cmd == CmdMemberAdd) != (req.MemberAddr != "") ||
		(req.MemberAddr != "" && !ValidMemberAddr(req.MemberAddr)) {
		t.Fatalf("accepted member request %+v", req)
	}
	enc, err := AppendRequest(nil, req)
	if err != nil {
		t.Fatalf("encode accepted request %+v: %v", req, err)
	}
	r := NewReader(bufio.NewReader(bytes.NewReader(enc)), fuzzLimits)
	back, err := r.ReadRequest()
	if err != nil || !equalRequest(back, req) {
		t.Fatalf("%+v encoded as %q parsed back as %+v, %v", req, enc, back, err)
	}
	if _, err := r.ReadRequest(); err != io.EOF {
		t.Fatalf("%q: more than one request: %v", enc, err)
	}
}

var replySeeds = []struct {
	cmd Cmd
	in  string
}{
	{CmdPut, "OK 12\r\nOK 13\r\n"},
	{CmdGet, "VALUE 3 9\r\na\nb\r\nNOT_FOUND\r\n"},
	{CmdStat, "STAT 3 9\r\n"},
	{CmdList, "KEYS 2\r\na\r\nb\r\n"},
	{CmdStatus, "NODES 1\r\nid=1 addr=h:1 role=master ballot=1.1 commit=3 applied=3 x=y\r\n"},
	{CmdStats, "STAT a 1\r\nSTAT b two words\r\nEND\r\n"},
	{CmdHelp, "one\r\nEND\r\n"},
	{CmdCAS, "ERR CONFLICT version 41\r\nERR BUSY x\r\n"},
	{CmdPing, "PONG\r\n"},
	{CmdGet, "VALUE 99999999999999999999 1\r\n"},
	{CmdList, "KEYS 99999999\r\n"},
	{CmdMemberList, "MEMBERS 2 7\r\nid=1 addr=h:1 role=voter\r\nid=2 addr=h:2 role=learner\r\n"},
	{CmdMemberList, "MEMBERS 99999999 1\r\nMEMBERS 1 x\r\n"},
	{CmdMemberAdd, "OK 9\r\nERR BUSY one change at a time\r\n"},
	{CmdGetRange, "RANGE 3 9 10 " + strings.Repeat("ab", 32) + "\r\nabc\r\nERR TOO_LARGE x\r\n"},
	{CmdGetRange, "RANGE 11 9 10 " + strings.Repeat("ab", 32) + "\r\n"},
	{CmdPutFile, "OK 12\r\nERR BAD_REQUEST checksum mismatch\r\n"},
}

// FuzzClientReply checks that the client's reply parser never panics and
// keeps within its limits, whatever a server sends.
func FuzzClientReply(f *testing.F) {
	for _, s := range replySeeds {
		f.Add(byte(s.cmd), []byte(s.in))
	}
	opts := tinyOpts.withDefaults()
	f.Fuzz(func(t *testing.T, cmdByte byte, data []byte) {
		cmd := Cmd(cmdByte%byte(CmdGetRange)) + 1
		rr := replyReader{br: bufio.NewReaderSize(bytes.NewReader(data), 16), opts: opts}
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("%d replies from %d bytes: no progress", i, len(data))
			}
			rep, err := rr.read(cmd)
			var se *ServerError
			if errors.As(err, &se) {
				if !validCode(se.Code) {
					t.Fatalf("server error with bad code %q", se.Code)
				}
				continue
			}
			if err != nil {
				return
			}
			if rep.Cmd != cmd || len(rep.Value) > opts.MaxValue || len(rep.Keys) > opts.MaxKeys ||
				len(rep.Nodes) > opts.MaxLines || len(rep.Stats) > opts.MaxLines || len(rep.Lines) > opts.MaxLines ||
				len(rep.Members) > opts.MaxLines {
				t.Fatalf("reply over the limits: %+v", rep)
			}
			for _, m := range rep.Members {
				if m.ID == 0 {
					t.Fatalf("member without an id: %+v", rep)
				}
			}
		}
	})
}
