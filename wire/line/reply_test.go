package line

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// tinyOpts make the client's limits cheap to reach.
var tinyOpts = Options{MaxLine: 40, MaxValue: 10, MaxKeys: 3, MaxLines: 4}

func TestReadReply(t *testing.T) {
	const (
		okay = iota
		server
		malformed
		tooLarge
		eof
	)
	tests := []struct {
		name string
		cmd  Cmd
		in   string
		kind int
		want string // okay: the Reply as %+v; server: the ServerError as %+v
	}{
		{"ok index", CmdPut, "OK 12\r\n", okay, "{Cmd:PUT Index:12 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:0}"},
		{"ok index LF", CmdDel, "OK 12\n", okay, "{Cmd:DEL Index:12 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:0}"},
		{"value", CmdGet, "VALUE 3 9\r\na\nb\r\n", okay, "{Cmd:GET Index:0 Value:[97 10 98] Version:9 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:0}"},
		{"stat", CmdStat, "STAT 3 9\r\n", okay, "{Cmd:STAT Index:0 Value:[] Version:9 Len:3 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:0}"},
		{"keys", CmdList, "KEYS 2\r\na\r\nb\r\n", okay, "{Cmd:LIST Index:0 Value:[] Version:0 Len:0 Sum: Keys:[a b] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:0}"},
		{"nodes lenient", CmdStatus, "NODES 1\r\nid=x role=down commit=? lone extra=1\r\n", okay,
			"{Cmd:STATUS Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[{ID:0 Addr: Role:down Ballot: Commit:0 Applied:0 Extra:map[commit:? extra:1 id:x lone:]}] Stats:map[] Lines:[] Members:[] ConfigSlot:0}"},
		{"stats", CmdStats, "STAT a 1\r\nSTAT b two words\r\nEND\r\n", okay,
			"{Cmd:STATS Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[a:1 b:two words] Lines:[] Members:[] ConfigSlot:0}"},
		{"help", CmdHelp, "one\r\ntwo\r\nEND\r\n", okay, "{Cmd:HELP Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[one two] Members:[] ConfigSlot:0}"},
		{"members", CmdMemberList, "MEMBERS 2 41\r\nid=1 addr=h:1 role=voter\r\nrole=learner future=x addr=h:4  id=4\r\n", okay,
			"{Cmd:MEMBER LIST Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[{ID:1 Addr:h:1 Voter:true} {ID:4 Addr:h:4 Voter:false}] ConfigSlot:41}"},
		{"no members", CmdMemberList, "MEMBERS 0 0\r\n", okay,
			"{Cmd:MEMBER LIST Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:0}"},
		{"member added", CmdMemberAdd, "OK 42\r\n", okay,
			"{Cmd:MEMBER ADD Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:42}"},
		{"member removed", CmdMemberRemove, "OK 43\r\n", okay,
			"{Cmd:MEMBER REMOVE Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:43}"},
		{"member promoted", CmdMemberPromote, "OK 44\r\n", okay,
			"{Cmd:MEMBER PROMOTE Index:0 Value:[] Version:0 Len:0 Sum: Keys:[] Nodes:[] Stats:map[] Lines:[] Members:[] ConfigSlot:44}"},
		{"change refused", CmdMemberAdd, "ERR BUSY one change at a time\r\n", server,
			"{Code:BUSY Msg:one change at a time Version:0}"},
		{"not found", CmdGet, "NOT_FOUND\r\n", server, "{Code:NOT_FOUND Msg: Version:0}"},
		{"conflict", CmdCAS, "ERR CONFLICT version 41\r\n", server, "{Code:CONFLICT Msg:version 41 Version:41}"},
		{"conflict without version", CmdCAS, "ERR CONFLICT\r\n", server, "{Code:CONFLICT Msg: Version:0}"},
		{"err to stats", CmdStats, "ERR BUSY slow down\r\n", server, "{Code:BUSY Msg:slow down Version:0}"},

		{"unexpected line", CmdPut, "PONG\r\n", malformed, ""},
		{"ok without index", CmdPut, "OK\r\n", malformed, ""},
		{"ok with bad index", CmdPut, "OK x\r\n", malformed, ""},
		{"err without code", CmdPut, "ERR\r\n", malformed, ""},
		{"err with bad code", CmdPut, "ERR bad code\r\n", malformed, ""},
		{"value without version", CmdGet, "VALUE 3\r\nabc\r\n", malformed, ""},
		{"value without line end", CmdGet, "VALUE 3 1\r\nabcd\r\n", malformed, ""},
		{"keys bad count", CmdList, "KEYS -1\r\n", malformed, ""},
		{"stats bad line", CmdStats, "STAT a 1\r\nbogus\r\nEND\r\n", malformed, ""},
		{"nodes bad count", CmdStatus, "NODES x\r\n", malformed, ""},
		{"members without slot", CmdMemberList, "MEMBERS 1\r\nid=1 addr=h:1 role=voter\r\n", malformed, ""},
		{"members bad count", CmdMemberList, "MEMBERS x 1\r\n", malformed, ""},
		{"member without role", CmdMemberList, "MEMBERS 1 1\r\nid=1 addr=h:1\r\n", malformed, ""},
		{"member bad role", CmdMemberList, "MEMBERS 1 1\r\nid=1 addr=h:1 role=king\r\n", malformed, ""},
		{"member id 0", CmdMemberList, "MEMBERS 1 1\r\nid=0 addr=h:1 role=voter\r\n", malformed, ""},
		{"member bad id", CmdMemberList, "MEMBERS 1 1\r\nid=x addr=h:1 role=voter\r\n", malformed, ""},
		{"change without slot", CmdMemberAdd, "OK\r\n", malformed, ""},
		{"change answered MEMBERS", CmdMemberRemove, "MEMBERS 0 1\r\n", malformed, ""},

		{"line too long", CmdPing, strings.Repeat("P", 41) + "\r\n", tooLarge, ""},
		{"value too large", CmdGet, "VALUE 11 1\r\n", tooLarge, ""},
		{"too many keys", CmdList, "KEYS 4\r\n", tooLarge, ""},
		{"too many nodes", CmdStatus, "NODES 5\r\n", tooLarge, ""},
		{"too many members", CmdMemberList, "MEMBERS 5 1\r\n", tooLarge, ""},
		{"too many stats", CmdStats, strings.Repeat("STAT a 1\r\n", 5) + "END\r\n", tooLarge, ""},
		{"endless help", CmdHelp, strings.Repeat("x\r\n", 5), tooLarge, ""},

		{"nothing", CmdPing, "", eof, ""},
		{"half line", CmdPing, "PON", eof, ""},
		{"value cut", CmdGet, "VALUE 5 1\r\nab", eof, ""},
		{"keys cut", CmdList, "KEYS 2\r\na\r\n", eof, ""},
		{"members cut", CmdMemberList, "MEMBERS 2 1\r\nid=1 addr=h:1 role=voter\r\n", eof, ""},
		{"stats cut", CmdStats, "STAT a 1\r\n", eof, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := replyReader{br: bufio.NewReaderSize(strings.NewReader(tt.in), 16), opts: tinyOpts.withDefaults()}
			rep, err := rr.read(tt.cmd)
			var se *ServerError
			switch tt.kind {
			case okay:
				if got := fmt.Sprintf("%+v", rep); err != nil || got != tt.want {
					t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
				}
			case server:
				if !errors.As(err, &se) || fmt.Sprintf("%+v", *se) != tt.want {
					t.Fatalf("got %+v, want %s", err, tt.want)
				}
			case malformed:
				if !errors.Is(err, ErrBadReply) {
					t.Fatalf("got %+v, %v; want ErrBadReply", rep, err)
				}
			case tooLarge:
				if !errors.Is(err, ErrTooLarge) || errors.As(err, &se) {
					t.Fatalf("got %+v, %v; want a client-side ErrTooLarge", rep, err)
				}
			case eof:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("got %+v, %v; want io.ErrUnexpectedEOF", rep, err)
				}
			}
		})
	}
}

// cannedServer accepts one connection, writes reply at once, then drains
// what the client sends until it closes.
func cannedServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte(reply))
		conn.(*net.TCPConn).CloseWrite() // the client sees the end of the reply
		io.Copy(io.Discard, conn)
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestClientBoundsReplies: a server announcing more than the client's limits
// gets an error, not an allocation, and the connection is given up.
func TestClientBoundsReplies(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		call  func(c *Client) error
		want  error
	}{
		{"huge value", "VALUE 99999999999 1\r\n", func(c *Client) error { _, _, err := c.Get(context.Background(), "k", 0); return err }, ErrTooLarge},
		{"many keys", "KEYS 99999999999\r\n", func(c *Client) error { _, err := c.List(context.Background(), ""); return err }, ErrTooLarge},
		{"endless line", strings.Repeat("x", 1000), func(c *Client) error { return c.Ping(context.Background()) }, ErrTooLarge},
		{"garbage", "\x00\xff\r\n", func(c *Client) error { return c.Ping(context.Background()) }, ErrBadReply},
		{"closed early", "OK 1", func(c *Client) error { _, err := c.Put(context.Background(), "k", nil); return err }, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialTest(t, cannedServer(t, tt.reply), Options{MaxLine: 100, MaxValue: 1000, MaxKeys: 10})
			if err := tt.call(c); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err := c.Ping(context.Background()); !errors.Is(err, tt.want) {
				t.Fatalf("the next call: got %v, want the sticky %v", err, tt.want)
			}
			c.Close()
		})
	}
}
