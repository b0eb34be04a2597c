package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"synod/wire/line"
)

// errCut is a reply stream that ends inside a reply.
var errCut = errors.New("reply cut short")

// expectation is the reply one request of a session must get.
type expectation struct {
	cmd  line.Cmd
	code string // the parser refused the request with this code
}

// expectedReplies parses a session the way the proxy must, with an
// independent Reader, and returns what each reply must be, and whether the
// server stops reading before the end of input (QUIT, a fatal error).
func expectedReplies(input []byte, lim line.Limits) (want []expectation, stopsEarly bool) {
	r := line.NewReader(bufio.NewReader(bytes.NewReader(input)), lim)
	for {
		req, err := r.ReadRequest()
		if err != nil {
			var pe *line.ProtoError
			if !errors.As(err, &pe) {
				return want, false
			}
			want = append(want, expectation{code: pe.Code})
			if pe.Fatal {
				return want, true
			}
			continue
		}
		want = append(want, expectation{cmd: req.Cmd})
		if req.Cmd == line.CmdQuit {
			return want, true
		}
	}
}

// checkReply reads one reply from br and checks it is the one e expects
// from a proxy with no replica up.
func checkReply(br *bufio.Reader, e expectation) error {
	first, err := readReplyLine(br)
	if err != nil {
		return err
	}
	wantPrefix := func(p string) error {
		if !strings.HasPrefix(first, p) {
			return errors.New("reply " + strconv.Quote(first) + ", want " + strconv.Quote(p) + "...")
		}
		return nil
	}
	untilEnd := func() error {
		for l := first; l != "END"; {
			if l, err = readReplyLine(br); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case e.code != "":
		return wantPrefix("ERR " + e.code + " ")
	case e.cmd == line.CmdPing:
		return wantPrefix("PONG")
	case e.cmd == line.CmdQuit:
		return wantPrefix("BYE")
	case e.cmd == line.CmdConsistency:
		return wantPrefix("OK")
	case e.cmd == line.CmdHelp:
		return untilEnd()
	case e.cmd == line.CmdStats:
		if err := wantPrefix("STAT "); err != nil {
			return err
		}
		return untilEnd()
	case e.cmd == line.CmdStatus:
		if err := wantPrefix("NODES 1"); err != nil {
			return err
		}
		_, err := readReplyLine(br)
		return err
	default: // reads and writes: nobody to serve them within the hold window
		return wantPrefix("ERR UNAVAILABLE ")
	}
}

func readReplyLine(br *bufio.Reader) (string, error) {
	s, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%w: %q", errCut, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		return "", errors.New("reply line without \\r\\n: " + strconv.Quote(s))
	}
	return strings.TrimSuffix(s, "\r\n"), nil
}

// FuzzSession feeds whole client sessions to a proxy and checks that every
// request the parser sees gets exactly its reply, in order, and nothing
// else, and that the proxy neither hangs nor crashes.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"PING\r\n",
		"HELP\r\nQUIT\r\n",
		"PUT k v\r\nGET k\r\nAPPEND k w\r\nDEL k\r\n",
		"PUT k $3\r\nabc\r\nGET k MIN 5\r\nCAS k 7 $2\r\nxy\r\n",
		"CONSISTENCY session\r\nGET x\r\nSTATUS\r\nSTATS\r\nconsistency STALE\r\nstat x\r\n",
		"FROB\r\n\x00\xff\r\nGET\r\nPUT k\r\n",
		"LIST\r\nLIST a/\r\nLIST a b\r\n",
		"PUT k $5\r\nab",
		"PUT k $3\r\nabcXY\r\nPING\r\n",
		"PUT k $100\r\n" + strings.Repeat("z", 100) + "\r\nPING\r\n",
		"\r\n\r\n  \t\r\nping\nPING\r\n",
		"QUIT\r\nPING\r\n",
		"MEMBER LIST\r\nMEMBER ADD 4 127.0.0.1:7104\r\nmember remove 3\r\nMEMBER PROMOTE 4\r\n",
		"PUT k v\r\nMEMBER LIST\r\nGET k\r\nMEMBER\r\nMEMBER ADD 0 h:1\r\nMEMBER ADD 4 h\r\n",
		strings.Repeat("x", 3000) + "\r\nPING\r\n",
		"PUT k v\r\nSNAPSHOT\r\nPING\r\nsnapshot 4096\r\nSNAPSHOT 1\r\nCONSISTENCY stale\r\nSNAPSHOT\r\n",
	} {
		f.Add([]byte(s))
	}
	var lim line.Limits
	_, addr := startServer(f, nil, func(c *Config) {
		c.Hold = time.Millisecond
		c.MaxValue = 64
		c.MaxLine = 2048
		lim = c.limits()
	})
	f.Fuzz(func(t *testing.T, input []byte) {
		want, stopsEarly := expectedReplies(input, lim)
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			nc.Write(input) // fails once the server closed after QUIT: fine
			nc.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(nc)
		// A server that closes with input unread resets the connection,
		// which can cost replies already sent: only a prefix is checked.
		reset := false
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("proxy hung: %d bytes of replies after 20 s", len(out))
			}
			if reset = stopsEarly && errors.Is(err, syscall.ECONNRESET); !reset {
				t.Fatalf("read replies: %v", err)
			}
		}
		br := bufio.NewReader(bytes.NewReader(out))
		for i, e := range want {
			if err := checkReply(br, e); err != nil {
				if reset && errors.Is(err, errCut) {
					return
				}
				t.Fatalf("reply %d of %d (%+v): %v\nreplies: %q", i+1, len(want), e, err, out)
			}
		}
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Fatalf("%d replies expected, then extra output %q", len(want), rest)
		}
	})
}
