package line

// watch.go owns the line protocol's watches: parsing WATCH and UNWATCH
// (the proxy's connection reader goroutine), writing a watch's stream
// (WATCHING, EVENT, PROGRESS, CANCELED, UNWATCHED: the proxy's connection
// writer goroutine), and reading that stream back (WatchReader, and
// Client.Watch for one watch on a connection of its own: the caller's
// goroutine).
//
// The stream, interleaved with the replies of the connection's other
// requests (which keep their order among themselves):
//
//	WATCHING <id> <from>                     the reply to WATCH: events from <from> on
//	EVENT <id> <index> PUT|APPEND|DEL <key> <len>[ PREV <plen>|PREV NONE]
//	<len bytes>                              PUT: the new value; APPEND: the bytes appended; DEL: none
//	[<plen bytes>]                           with PREV: the value before
//	PROGRESS <id> <index>                    no more events through <index>
//	CANCELED <id> <next> <CODE> <message>    the watch ended: resume FROM <next>
//	UNWATCHED <id>                           the reply to UNWATCH: no event of <id> follows
//
// Each block ends with \r\n, as VALUE's does.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// parseWatch parses the arguments of WATCH <key>|<prefix>* [FROM <index>]
// [PREV] or UNWATCH <id>. Neither has a block, so a refusal leaves the
// stream in sync.
func (r *Reader) parseWatch(cmd Cmd, rest []byte) (Request, error) {
	var args [5][]byte
	n := fields(rest, args[:])
	req := Request{Cmd: cmd}
	if cmd == CmdUnwatch {
		if n != 1 {
			return Request{}, badRequest("usage: UNWATCH <id>")
		}
		id, ok := parseUint(args[0])
		if !ok || id == 0 {
			return Request{}, badRequest("watch id %.32q is not a positive decimal number", args[0])
		}
		req.WatchID = id
		return req, nil
	}
	const usage = "usage: WATCH <key>|<prefix>* [FROM <index>] [PREV]"
	if n < 1 || n > 4 {
		return Request{}, badRequest(usage)
	}
	tok := args[0]
	if l := len(tok); tok[l-1] == '*' {
		req.WatchPrefix, tok = true, tok[:l-1]
	}
	if len(tok) > 0 || !req.WatchPrefix {
		key, perr := r.key(tok)
		if perr != nil {
			return Request{}, perr
		}
		req.Key = key
	}
	for i := 1; i < n; i++ {
		switch {
		case equalFold(args[i], "PREV") && !req.Prev:
			req.Prev = true
		case equalFold(args[i], "FROM") && req.From == 0 && i+1 < n:
			v, ok := parseUint(args[i+1])
			if !ok || v == 0 {
				return Request{}, badRequest("FROM index %.32q is not a positive decimal number", args[i+1])
			}
			req.From = v
			i++
		default:
			return Request{}, badRequest(usage)
		}
	}
	return req, nil
}

// appendWatchRequest encodes WATCH or UNWATCH (see AppendRequest).
func appendWatchRequest(dst []byte, req Request) ([]byte, error) {
	if req.Cmd == CmdUnwatch {
		if req.WatchID == 0 {
			return dst, fmt.Errorf("line: encode UNWATCH: watch id 0: %w", ErrBadRequest)
		}
		dst = append(dst, "UNWATCH "...)
		dst = strconv.AppendUint(dst, req.WatchID, 10)
		return append(dst, "\r\n"...), nil
	}
	if (req.Key != "" || !req.WatchPrefix) && !ValidKey(req.Key, 0) {
		return dst, fmt.Errorf("line: encode WATCH: key %.64q: %w: %w", req.Key, ErrBadRequest, ErrInvalidKey)
	}
	if !req.WatchPrefix && req.Key[len(req.Key)-1] == '*' {
		return dst, fmt.Errorf("line: encode WATCH: key %.64q ends in '*', which watches a prefix: %w", req.Key, ErrBadRequest)
	}
	dst = append(dst, "WATCH "...)
	dst = append(dst, req.Key...)
	if req.WatchPrefix {
		dst = append(dst, '*')
	}
	if req.From > 0 {
		dst = append(dst, " FROM "...)
		dst = strconv.AppendUint(dst, req.From, 10)
	}
	if req.Prev {
		dst = append(dst, " PREV"...)
	}
	return append(dst, "\r\n"...), nil
}

// EventOp is what a watched change did: "PUT" (a PUT or a CAS that
// swapped), "APPEND" or "DEL".
type EventOp string

// The ops an EVENT line names.
const (
	EventPut    EventOp = "PUT"
	EventAppend EventOp = "APPEND"
	EventDel    EventOp = "DEL"
)

// Event is one change a watch reports.
type Event struct {
	Index uint64
	Op    EventOp
	Key   string
	// Value is the new value after a PUT, the bytes appended after an
	// APPEND, empty after a DEL.
	Value []byte
	// WithPrev: the watch asked for previous values; then HadPrev tells
	// whether the file existed before, and Prev is its value.
	WithPrev bool
	HadPrev  bool
	Prev     []byte
}

func validEventOp(op EventOp) bool { return op == EventPut || op == EventAppend || op == EventDel }

// Watching writes "WATCHING <id> <from>", the reply to WATCH.
func (w *Writer) Watching(id, from uint64) error {
	return w.idLine("WATCHING ", id, from, true)
}

// Progress writes "PROGRESS <id> <index>".
func (w *Writer) Progress(id, index uint64) error {
	return w.idLine("PROGRESS ", id, index, true)
}

// Unwatched writes "UNWATCHED <id>", the reply to UNWATCH.
func (w *Writer) Unwatched(id uint64) error {
	return w.idLine("UNWATCHED ", id, 0, false)
}

func (w *Writer) idLine(head string, id, index uint64, withIndex bool) error {
	w.buf = append(w.buf[:0], head...)
	w.buf = strconv.AppendUint(w.buf, id, 10)
	if withIndex {
		w.buf = append(w.buf, ' ')
		w.buf = strconv.AppendUint(w.buf, index, 10)
	}
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// Canceled writes "CANCELED <id> <next> <code> <msg>": the watch ended,
// and FROM <next> resumes it. code and msg are cleaned as Err cleans them.
func (w *Writer) Canceled(id, next uint64, code, msg string) error {
	if !validCode(code) {
		code = CodeInternal
	}
	w.buf = append(w.buf[:0], "CANCELED "...)
	w.buf = strconv.AppendUint(w.buf, id, 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, next, 10)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, code...)
	w.buf = append(w.buf, ' ')
	w.buf = appendCleanMsg(w.buf, msg)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// appendCleanMsg appends msg as one printable line of at most 512 bytes.
func appendCleanMsg(dst []byte, msg string) []byte {
	for i := 0; i < len(msg) && i < 512; i++ {
		c := msg[i]
		if c < ' ' || c == 0x7f {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// Event writes one EVENT of watch id. A key the protocol could not carry,
// or an op other than PUT, APPEND and DEL, is refused with ErrBadRequest
// and nothing is written.
func (w *Writer) Event(id uint64, ev Event) error {
	if !ValidKey(ev.Key, 0) || !validEventOp(ev.Op) {
		return fmt.Errorf("line: write EVENT %d: key %.64q op %.16q: %w", ev.Index, ev.Key, ev.Op, ErrBadRequest)
	}
	w.buf = append(w.buf[:0], "EVENT "...)
	w.buf = strconv.AppendUint(w.buf, id, 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, ev.Index, 10)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, ev.Op...)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, ev.Key...)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, uint64(len(ev.Value)), 10)
	if ev.WithPrev {
		if ev.HadPrev {
			w.buf = append(w.buf, " PREV "...)
			w.buf = strconv.AppendUint(w.buf, uint64(len(ev.Prev)), 10)
		} else {
			w.buf = append(w.buf, " PREV NONE"...)
		}
	}
	w.buf = append(w.buf, "\r\n"...)
	if err := w.writeBuf(); err != nil {
		return err
	}
	if err := w.block(ev.Value); err != nil {
		return err
	}
	if ev.WithPrev && ev.HadPrev {
		return w.block(ev.Prev)
	}
	return nil
}

func (w *Writer) block(b []byte) error {
	if err := w.write(b); err != nil {
		return err
	}
	return w.writeString("\r\n")
}

// WatchKind says what a WatchMessage is.
type WatchKind uint8

// The lines of a watch stream.
const (
	WatchStarted   WatchKind = iota + 1 // WATCHING: Index is the first index the watch covers
	WatchEvent                          // EVENT: Event
	WatchProgress                       // PROGRESS: no events through Index
	WatchCanceled                       // CANCELED: resume FROM Index; Code and Msg say why
	WatchUnwatched                      // UNWATCHED
)

// WatchMessage is one item of a watch stream.
type WatchMessage struct {
	Kind  WatchKind
	ID    uint64
	Index uint64
	Event Event // WatchEvent; Event.Index equals Index
	Code  string
	Msg   string
}

// WatchReader parses a watch stream within a client's limits. ERR lines
// (a WATCH refused) come back as a *ServerError and leave the stream in
// sync; anything else that is not a stream line is ErrBadReply. Not safe
// for concurrent use.
type WatchReader struct {
	br   *bufio.Reader
	opts Options
	acc  []byte
}

// NewWatchReader returns a WatchReader of br; zero fields of opts take
// their defaults (MaxValue bounds each value block).
func NewWatchReader(br *bufio.Reader, opts Options) *WatchReader {
	return &WatchReader{br: br, opts: opts.withDefaults()}
}

func badWatch(format string, args ...any) error {
	return fmt.Errorf("line: watch stream: %s: %w", fmt.Sprintf(format, args...), ErrBadReply)
}

// Next reads the next item of the stream.
func (wr *WatchReader) Next() (WatchMessage, error) {
	l, err := readLine(wr.br, wr.opts.MaxLine, &wr.acc)
	switch {
	case err == errLong:
		return WatchMessage{}, fmt.Errorf("line: watch stream: line over %d bytes: %w", wr.opts.MaxLine, ErrTooLarge)
	case err == io.EOF:
		return WatchMessage{}, fmt.Errorf("line: watch stream: %w", io.ErrUnexpectedEOF)
	case err != nil:
		return WatchMessage{}, fmt.Errorf("line: watch stream: %w", err)
	}
	head, rest, _ := cut(l)
	var args [8][]byte
	switch string(head) {
	case "ERR":
		return WatchMessage{}, parseErrLine(CmdWatch, rest)
	case "WATCHING", "PROGRESS":
		id, idx, ok := twoUints(rest)
		if !ok {
			return WatchMessage{}, badWatch("%.64q", l)
		}
		kind := WatchStarted
		if string(head) == "PROGRESS" {
			kind = WatchProgress
		}
		return WatchMessage{Kind: kind, ID: id, Index: idx}, nil
	case "UNWATCHED":
		id, ok := parseUint(rest)
		if !ok {
			return WatchMessage{}, badWatch("%.64q", l)
		}
		return WatchMessage{Kind: WatchUnwatched, ID: id}, nil
	case "CANCELED":
		idTok, r1, _ := cut(rest)
		nextTok, r2, _ := cut(r1)
		code, msg, _ := cut(r2)
		id, ok1 := parseUint(idTok)
		next, ok2 := parseUint(nextTok)
		if !ok1 || !ok2 || !validCode(string(code)) {
			return WatchMessage{}, badWatch("%.64q", l)
		}
		return WatchMessage{Kind: WatchCanceled, ID: id, Index: next, Code: string(code), Msg: string(appendCleanMsg(nil, string(msg)))}, nil
	case "EVENT":
		n := fields(rest, args[:])
		if n != 5 && n != 7 {
			return WatchMessage{}, badWatch("%.64q", l)
		}
		id, ok1 := parseUint(args[0])
		idx, ok2 := parseUint(args[1])
		size, ok3 := parseUint(args[4])
		op := EventOp(args[2])
		if !ok1 || !ok2 || !ok3 || !validEventOp(op) || !ValidKey(string(args[3]), 0) {
			return WatchMessage{}, badWatch("%.64q", l)
		}
		ev := Event{Index: idx, Op: op, Key: string(args[3])}
		var psize uint64
		if n == 7 {
			if !equalFold(args[5], "PREV") {
				return WatchMessage{}, badWatch("%.64q", l)
			}
			ev.WithPrev = true
			if !equalFold(args[6], "NONE") {
				v, ok := parseUint(args[6])
				if !ok {
					return WatchMessage{}, badWatch("%.64q", l)
				}
				ev.HadPrev, psize = true, v
			}
		}
		if ev.Value, err = wr.block(size); err != nil {
			return WatchMessage{}, err
		}
		if ev.HadPrev {
			if ev.Prev, err = wr.block(psize); err != nil {
				return WatchMessage{}, err
			}
		}
		return WatchMessage{Kind: WatchEvent, ID: id, Index: idx, Event: ev}, nil
	}
	return WatchMessage{}, badWatch("unexpected %.64q", l)
}

// block reads n bytes and their \r\n.
func (wr *WatchReader) block(n uint64) ([]byte, error) {
	if n > uint64(wr.opts.MaxValue) {
		return nil, fmt.Errorf("line: watch stream: value of %d bytes over the client's limit %d: %w", n, wr.opts.MaxValue, ErrTooLarge)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(wr.br, b); err != nil {
		return nil, fmt.Errorf("line: watch stream: read value: %w", unexpected(err))
	}
	ok, err := readEOL(wr.br)
	if err != nil {
		return nil, fmt.Errorf("line: watch stream: %w", err)
	}
	if !ok {
		return nil, badWatch("value not followed by \\r\\n")
	}
	return b, nil
}

// Watch is one watch on a Client's connection, which it has to itself
// from Client.Watch on: read its stream with Next, end it with Close.
type Watch struct {
	c    *Client
	wr   *WatchReader
	id   uint64
	from uint64
}

// ID is the watch's id on its connection.
func (w *Watch) ID() uint64 { return w.id }

// From is the first index the watch covers.
func (w *Watch) From() uint64 { return w.from }

// Watch sends WATCH (req.Cmd is set to CmdWatch) and waits for its reply;
// from then on the connection carries this watch's stream alone, and the
// Client's request methods must not be used. A refusal (ERR COMPACTED:
// errors.Is(err, ErrCompacted)) is a *ServerError. ctx bounds the WATCH's
// round trip only.
func (c *Client) Watch(ctx context.Context, req Request) (*Watch, error) {
	req.Cmd = CmdWatch
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if c.Pending() > 0 {
		return nil, ErrPipelineBusy
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.Send(req); err != nil {
		return nil, err
	}
	c.pop() // the stream, not Recv, reads the reply
	if err := c.Flush(); err != nil {
		return nil, err
	}
	wr := &WatchReader{br: c.rr.br, opts: c.rr.opts}
	m, err := wr.Next()
	if err == nil && m.Kind != WatchStarted {
		err = badWatch("WATCH answered with kind %d", m.Kind)
	}
	if !stop() && ctx.Err() != nil {
		return nil, c.fail(fmt.Errorf("line: WATCH: %w", ctx.Err()))
	}
	_ = c.conn.SetDeadline(time.Time{})
	if err != nil {
		if !isServerError(err) {
			return nil, c.fail(err)
		}
		return nil, err
	}
	return &Watch{c: c, wr: wr, id: m.ID, from: m.Index}, nil
}

// Next returns the watch's next item: an event or a progress mark. A
// CANCELED line returns its message with an error matching
// ErrWatchCanceled (Index is where to resume); any other error leaves the
// connection unusable. It blocks until something comes or the connection
// is closed.
func (w *Watch) Next() (WatchMessage, error) {
	m, err := w.wr.Next()
	if err != nil {
		return m, w.c.fail(err)
	}
	switch {
	case m.ID != w.id:
		return m, w.c.fail(badWatch("a line of watch %d on watch %d's connection", m.ID, w.id))
	case m.Kind == WatchCanceled:
		return m, fmt.Errorf("line: watch %d cut (%s %s), resume from %d: %w", m.ID, m.Code, m.Msg, m.Index, ErrWatchCanceled)
	case m.Kind == WatchEvent || m.Kind == WatchProgress:
		return m, nil
	}
	return m, w.c.fail(badWatch("unexpected kind %d", m.Kind))
}

// Close ends the watch by closing its connection.
func (w *Watch) Close() error { return w.c.Close() }

// IsCompacted reports whether err is a WATCH refused for an index older
// than the history, and returns the oldest index the server named.
func IsCompacted(err error) (oldest uint64, ok bool) {
	var se *ServerError
	if !errors.As(err, &se) || se.Code != CodeCompacted {
		return 0, false
	}
	tok, _, _ := cut([]byte(se.Msg))
	oldest, _ = parseUint(tok)
	return oldest, true
}
