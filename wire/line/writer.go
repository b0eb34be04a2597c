package line

// This file owns Writer, the server's reply writer (OK, VALUE, KEYS, NODES,
// MEMBERS, STAT, ERR and the rest), and the STATUS, MEMBER and STATS line
// types it writes. Not safe for concurrent use: the proxy's connection
// writer goroutine (writeLoop) alone uses it.

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// NodeStatus is one replica's line of a STATUS reply:
// "id=1 addr=127.0.0.1:7101 role=master ballot=3.1 commit=42 applied=42",
// then any Extra pairs sorted by key.
type NodeStatus struct {
	ID      uint64
	Addr    string
	Role    string // master, follower or down
	Ballot  string // as the replica prints it, e.g. "3.1" (round.node)
	Commit  uint64
	Applied uint64
	// Extra holds further key=value pairs. When parsing, a known numeric
	// field whose value is not a number lands here too, keeping the raw text.
	Extra map[string]string
}

// Member is one line of a MEMBERS reply (MEMBER LIST): a replica of the
// configuration in force, "id=4 addr=127.0.0.1:7104 role=learner".
type Member struct {
	ID    uint64
	Addr  string
	Voter bool // false: a learner, which receives the log but does not vote
}

// Role is the member's role as the protocol writes it: voter or learner.
func (m Member) Role() string {
	if m.Voter {
		return "voter"
	}
	return "learner"
}

// Stat is one "STAT <name> <value>" line of a STATS reply.
type Stat struct {
	Name  string
	Value string
}

// helpLines is the HELP reply, before its END.
var helpLines = []string{
	"PUT <key> <value>|$<n>            store a value             -> OK <index>",
	"APPEND <key> <value>|$<n>         append to a value         -> OK <index>",
	"CAS <key> <version> <value>|$<n>  replace if at version (0 = must not exist) -> OK <index> | ERR CONFLICT version <v>",
	"DEL <key>                         delete                    -> OK <index> | NOT_FOUND",
	"GET <key> [MIN <index>]           read                      -> VALUE <len> <version> + bytes | NOT_FOUND",
	"GET <key> [MIN <index>] RANGE <offset> <length>   a piece of a file -> RANGE <n> <version> <size> <sha256> + bytes",
	"PUTFILE <key> <size> <sha256> [VERSION <v>]   upload a large file: then size raw bytes and \\r\\n -> OK <index> | ERR CONFLICT version <v>",
	"STAT <key>                        size and version          -> STAT <len> <version> | NOT_FOUND",
	"LIST [<prefix>]                   keys                      -> KEYS <n> + one key per line",
	"CONSISTENCY linearizable|session|stale   read level of this connection -> OK",
	"STATUS                            replicas                  -> NODES <n> + one line each",
	"STATS                             counters                  -> STAT <name> <value> lines + END",
	"MEMBER LIST                       the configuration in force -> MEMBERS <n> <config-slot> + one line each",
	"MEMBER ADD <id> <host:port>       add a replica as a learner -> OK <config-slot>",
	"MEMBER REMOVE <id>                remove a replica          -> OK <config-slot>",
	"MEMBER PROMOTE <id>               make a learner a voter    -> OK <config-slot>",
	"SNAPSHOT [<chunk-bytes>]          a backup of the whole store -> SNAPSHOT <index> <slot> <keys> <bytes> <digest> <replica>, $<n> blocks, END <size> <crc32c>",
	"WATCH <key>|<prefix>* [FROM <index>] [PREV]  stream changes   -> WATCHING <id> <from>, then EVENT/PROGRESS/CANCELED lines | ERR COMPACTED <oldest> ...",
	"UNWATCH <id>                      end a watch               -> UNWATCHED <id>",
	"AUTH <user> <password>            authenticate (proxies with --auth) -> OK | ERR NOPERM",
	"USER ADD|PASSWD <user> <password> | USER DEL <user> | USER GRANT|REVOKE <user> <role> | USER LIST   (admin)",
	"ROLE ADD|DEL <role> | ROLE GRANT|REVOKE <role> read|write|readwrite <prefix|*> | ROLE LIST        (admin)",
	"PING | QUIT | HELP                -> PONG | BYE | this text + END",
	"A value is the rest of the line after one space, or $<n> then \\r\\n, n raw bytes and \\r\\n.",
}

// Writer writes replies, always ending lines with "\r\n". Replies are
// buffered: call Flush once per batch of pipelined replies, for example when
// Reader.Buffered is 0. Once a write fails, every later call returns that
// error. Not safe for concurrent use.
type Writer struct {
	bw  *bufio.Writer
	buf []byte // scratch for one reply's lines
	err error
}

// NewWriter returns a Writer of replies to bw.
func NewWriter(bw *bufio.Writer) *Writer {
	return &Writer{bw: bw, buf: make([]byte, 0, 128)}
}

// Flush writes the buffered replies to the connection.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("line: flush replies: %w", err)
	}
	return w.err
}

// Buffered returns how many reply bytes await Flush.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

func (w *Writer) write(b []byte) error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("line: write reply: %w", err)
	}
	return w.err
}

// writeString writes a constant; WriteString, unlike Write([]byte(s)),
// does not allocate.
func (w *Writer) writeString(s string) error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.bw.WriteString(s); err != nil {
		w.err = fmt.Errorf("line: write reply: %w", err)
	}
	return w.err
}

// writeBuf writes the scratch buffer and empties it.
func (w *Writer) writeBuf() error {
	err := w.write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// OK writes "OK", the reply to CONSISTENCY.
func (w *Writer) OK() error { return w.writeString("OK\r\n") }

// OKIndex writes "OK <index>", the reply to a write; and to a membership
// change, whose <index> is the slot of the configuration in force.
func (w *Writer) OKIndex(index uint64) error {
	w.buf = append(w.buf, "OK "...)
	w.buf = strconv.AppendUint(w.buf, index, 10)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Value writes "VALUE <len> <version>", the value's bytes and "\r\n".
func (w *Writer) Value(value []byte, version uint64) error {
	w.buf = append(w.buf, "VALUE "...)
	w.buf = strconv.AppendUint(w.buf, uint64(len(value)), 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, version, 10)
	w.buf = append(w.buf, "\r\n"...)
	w.writeBuf()
	w.write(value)
	return w.writeString("\r\n")
}

// NotFound writes "NOT_FOUND".
func (w *Writer) NotFound() error { return w.writeString("NOT_FOUND\r\n") }

// Stat writes "STAT <len> <version>", the reply to STAT <key>.
func (w *Writer) Stat(length, version uint64) error {
	w.buf = append(w.buf, "STAT "...)
	w.buf = strconv.AppendUint(w.buf, length, 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, version, 10)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Keys writes "KEYS <n>" and one key per line. A key that could break the
// framing (it would fail ValidKey) has its unprintable runes replaced.
func (w *Writer) Keys(keys []string) error {
	w.buf = append(w.buf, "KEYS "...)
	w.buf = strconv.AppendUint(w.buf, uint64(len(keys)), 10)
	w.buf = append(w.buf, "\r\n"...)
	w.writeBuf()
	for _, k := range keys {
		if validKeyChars(k) {
			w.buf = append(w.buf, k...)
		} else {
			w.buf = appendClean(w.buf, k, DefaultMaxLine, '_')
		}
		w.buf = append(w.buf, "\r\n"...)
		w.writeBuf()
	}
	return w.err
}

// Nodes writes "NODES <n>" and one line per replica.
func (w *Writer) Nodes(nodes []NodeStatus) error {
	w.buf = append(w.buf, "NODES "...)
	w.buf = strconv.AppendUint(w.buf, uint64(len(nodes)), 10)
	w.buf = append(w.buf, "\r\n"...)
	w.writeBuf()
	for i := range nodes {
		w.buf = appendNode(w.buf, &nodes[i])
		w.buf = append(w.buf, "\r\n"...)
		w.writeBuf()
	}
	return w.err
}

// Members writes "MEMBERS <n> <config-slot>" and one line per member, the
// reply to MEMBER LIST.
func (w *Writer) Members(members []Member, configSlot uint64) error {
	w.buf = append(w.buf, "MEMBERS "...)
	w.buf = strconv.AppendUint(w.buf, uint64(len(members)), 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, configSlot, 10)
	w.buf = append(w.buf, "\r\n"...)
	w.writeBuf()
	for _, m := range members {
		w.buf = append(w.buf, "id="...)
		w.buf = strconv.AppendUint(w.buf, m.ID, 10)
		w.buf = append(w.buf, " addr="...)
		w.buf = appendClean(w.buf, m.Addr, maxField, '_')
		w.buf = append(w.buf, " role="...)
		w.buf = append(w.buf, m.Role()...)
		w.buf = append(w.buf, "\r\n"...)
		w.writeBuf()
	}
	return w.err
}

// maxField bounds one text field of a STATUS or STATS line.
const maxField = 256

func appendNode(dst []byte, n *NodeStatus) []byte {
	dst = append(dst, "id="...)
	dst = strconv.AppendUint(dst, n.ID, 10)
	dst = append(dst, " addr="...)
	dst = appendClean(dst, n.Addr, maxField, '_')
	dst = append(dst, " role="...)
	dst = appendClean(dst, n.Role, maxField, '_')
	dst = append(dst, " ballot="...)
	dst = appendClean(dst, n.Ballot, maxField, '_')
	dst = append(dst, " commit="...)
	dst = strconv.AppendUint(dst, n.Commit, 10)
	dst = append(dst, " applied="...)
	dst = strconv.AppendUint(dst, n.Applied, 10)
	keys := make([]string, 0, len(n.Extra))
	for k := range n.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = append(dst, ' ')
		dst = appendCleanKey(dst, k)
		dst = append(dst, '=')
		dst = appendClean(dst, n.Extra[k], maxField, '_')
	}
	return dst
}

// appendCleanKey writes a key of a key=value pair: no '=' inside, never empty.
func appendCleanKey(dst []byte, k string) []byte {
	start := len(dst)
	dst = appendClean(dst, k, maxField, '_')
	for i := start; i < len(dst); i++ {
		if dst[i] == '=' {
			dst[i] = '_'
		}
	}
	if len(dst) == start {
		dst = append(dst, '_')
	}
	return dst
}

// Stats writes one "STAT <name> <value>" line per stat, then "END". Spaces in
// a name become '_'; a value is one line of text.
func (w *Writer) Stats(stats []Stat) error {
	for _, s := range stats {
		w.buf = append(w.buf, "STAT "...)
		start := len(w.buf)
		w.buf = appendClean(w.buf, s.Name, maxField, '_')
		if len(w.buf) == start {
			w.buf = append(w.buf, '_')
		}
		w.buf = append(w.buf, ' ')
		w.buf = appendClean(w.buf, s.Value, maxField, ' ')
		w.buf = append(w.buf, "\r\n"...)
		w.writeBuf()
	}
	return w.writeString("END\r\n")
}

// Pong writes "PONG".
func (w *Writer) Pong() error { return w.writeString("PONG\r\n") }

// Bye writes "BYE", the reply to QUIT; the server closes after flushing it.
func (w *Writer) Bye() error { return w.writeString("BYE\r\n") }

// Help writes the command list, one line each, then "END".
func (w *Writer) Help() error {
	for _, l := range helpLines {
		w.buf = append(w.buf, l...)
		w.buf = append(w.buf, "\r\n"...)
	}
	w.buf = append(w.buf, "END\r\n"...)
	return w.writeBuf()
}

// Err writes "ERR <code> <msg>". A code other than upper-case letters, digits
// and '_' becomes INTERNAL; msg is cut to one printable line of at most 512
// bytes, so no text can break the reply stream.
func (w *Writer) Err(code, msg string) error {
	if !validCode(code) {
		code = CodeInternal
	}
	w.buf = append(w.buf, "ERR "...)
	w.buf = append(w.buf, code...)
	if msg != "" {
		w.buf = append(w.buf, ' ')
		w.buf = appendClean(w.buf, msg, maxErrMsg, ' ')
	}
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Conflict writes "ERR CONFLICT version <v>", a CAS that found version v.
func (w *Writer) Conflict(version uint64) error {
	w.buf = append(w.buf, "ERR CONFLICT version "...)
	w.buf = strconv.AppendUint(w.buf, version, 10)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// ReplyError writes the reply for err: a *ProtoError or *ServerError keeps
// its code and message (NOT_FOUND and CONFLICT in their own forms); any
// other error is answered "ERR INTERNAL" with its text.
func (w *Writer) ReplyError(err error) error {
	var pe *ProtoError
	if errors.As(err, &pe) {
		return w.Err(pe.Code, pe.Msg)
	}
	var se *ServerError
	if errors.As(err, &se) {
		switch se.Code {
		case CodeNotFound:
			return w.NotFound()
		case CodeConflict:
			return w.Conflict(se.Version)
		}
		return w.Err(se.Code, se.Msg)
	}
	return w.Err(CodeInternal, err.Error())
}

// validCode reports whether code is a non-empty run of A-Z, 0-9 and '_'.
func validCode(code string) bool {
	if code == "" || len(code) > 32 {
		return false
	}
	for i := range len(code) {
		c := code[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
