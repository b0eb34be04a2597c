package proxy

// resp.go: the Redis front door. A client connection whose first byte is
// '*' speaks RESP2 (wire/resp) for its whole life. Its reader goroutine
// (readRESP, in place of readLoop) parses each command and translates it
// into the line requests the connection already executes (remote: the
// same budgets, pipeline order, sessions, hold queue and retries as the
// line protocol); a multi-key command becomes several of them, "parts" of
// one respCmd. The writer goroutine (writeLoop) writes nothing for a part
// and renders the whole command's reply, from every part's result, when it
// reaches the last: so replies stay in request order and a multi-key reply
// is written once all of its parts are answered.
//
// The few commands that need one answer before they can ask the next (SET
// with XX or GET, GETSET: read the version, then CAS against it) wait for
// that part on the reader goroutine; every other command is pipelined.

import (
	"bufio"
	"errors"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"synod/wire"
	"synod/wire/line"
	"synod/wire/resp"
)

// respCmd is one RESP command: the calls it was translated into, in
// order, and how its reply is written from them. final is the last call;
// the writer renders the reply when it reaches it, and writes nothing for
// the others. Set by the reader before the calls are pushed; read by the
// writer.
type respCmd struct {
	parts  []*call
	final  *call
	render func(w *resp.Writer, parts []*call) error
}

// respClientIDs numbers RESP connections for CLIENT ID.
var respClientIDs atomic.Int64

// respState is a RESP connection's own state. Reader-owned.
type respState struct {
	id      int64
	name    string
	libName string
	libVer  string
}

// sniffRESP reports whether the client's first byte is '*': it speaks
// RESP. It waits for that byte within the idle timeout; an error is left
// for the line reader to meet again.
func (c *conn) sniffRESP(br *bufio.Reader) bool {
	if !c.armRead() {
		return false
	}
	b, err := br.Peek(1)
	return err == nil && b[0] == '*'
}

// respLimits bounds what a RESP client may send: bulk strings up to the
// proxy's --max-value (keys are shorter), inline and header lines up to
// its request line limit.
func (c *conn) respLimits() resp.Limits {
	lim := c.s.cfg.limits()
	return resp.Limits{
		MaxBulk:    max(lim.MaxValue, lim.MaxKey),
		MaxInline:  lim.MaxLine,
		MaxRequest: max(resp.DefaultMaxRequest, 2*lim.MaxValue),
	}
}

// readRESP is the reader goroutine of a RESP connection.
func (c *conn) readRESP(br *bufio.Reader) {
	st := &respState{id: respClientIDs.Add(1)}
	r := resp.NewReader(br, c.respLimits())
	// A large bulk string is counted in the server's in-flight bytes before
	// it is read, as the line protocol's blocks are (admitBlock), so many
	// connections sending large requests at once cannot outgrow the budget
	// while they parse. Once parsed, the request's parts charge themselves
	// (remote) and the admission is given back.
	r.SetAdmit(c.admitBlock)
	for c.armRead() {
		c.blockGot = 0
		args, err := r.ReadRequest()
		c.chargeGlobal(-c.blockGot, false)
		c.blockGot = 0
		if err != nil {
			var re *resp.RefusedError
			if errors.As(err, &re) {
				c.s.cnt.requests.Add(1)
				msg := re.Err.Error()
				if !c.respLocal(false, func(w *resp.Writer) error { return w.Error("BUSY", msg) }) {
					return
				}
				continue
			}
			var pe *resp.ProtoError
			if !errors.As(err, &pe) {
				return // the client left, stalled or broke the connection: nobody to answer
			}
			c.s.cnt.requests.Add(1)
			c.s.cnt.badRequests.Add(1)
			c.respLocal(true, func(w *resp.Writer) error { return w.Error("ERR", pe.Msg) })
			return
		}
		c.s.cnt.requests.Add(1)
		if !c.respCommand(st, args) {
			return
		}
	}
}

// respLocal answers on the spot with render, closing after it if close.
func (c *conn) respLocal(close bool, render func(w *resp.Writer) error) bool {
	cl := &call{done: answered, close: close}
	cl.rc = &respCmd{final: cl, render: func(w *resp.Writer, _ []*call) error { return render(w) }}
	return c.push(cl) && !close
}

// respError answers with "-<code> <msg>".
func (c *conn) respError(code, msg string) bool {
	c.s.cnt.badRequests.Add(1)
	return c.respLocal(false, func(w *resp.Writer) error { return w.Error(code, msg) })
}

// respOps starts reqs as the parts of one command whose reply render
// writes once all are answered.
func (c *conn) respOps(reqs []line.Request, render func(w *resp.Writer, parts []*call) error) bool {
	if ok, more := c.respGate(reqs); !ok {
		return more
	}
	rc := &respCmd{render: render, parts: make([]*call, len(reqs))}
	for i, req := range reqs {
		rc.parts[i] = &call{req: req, rc: rc}
	}
	rc.final = rc.parts[len(reqs)-1]
	for _, cl := range rc.parts {
		if !c.remote(cl) {
			return false
		}
	}
	return true
}

// respWait starts req as a silent part of rc and waits for its answer on
// the reader goroutine, for a command whose next request depends on it.
// The part is never redone for session monotonicity (monotonic skips
// waited calls): its result is read here.
//
// A read here is linearizable whatever the connection's level: its
// version is what the CAS after it compares against, and a stale one would
// only make the CAS fail again.
func (c *conn) respWait(rc *respCmd, req line.Request) (result, bool) {
	cl := &call{req: req, rc: rc, waited: true}
	rc.parts = append(rc.parts, cl)
	level := c.level
	if !req.Cmd.IsWrite() {
		c.level = line.LevelLinearizable
	}
	started := c.remote(cl)
	c.level = level
	if !started {
		return result{}, false
	}
	<-cl.done
	return cl.res, true
}

// replyRESP writes the reply of cl's command if cl is its last call.
// Writer-owned.
func (c *conn) replyRESP(cl *call) error {
	if cl != cl.rc.final {
		return nil
	}
	return cl.rc.render(c.rw, cl.rc.parts)
}

// respFailed writes the error a part's result carries and reports whether
// it did: anything but OK, NOT_FOUND and (if conflictOK) CONFLICT.
func respFailed(w *resp.Writer, res result, conflictOK bool) (bool, error) {
	switch res.rep.Code {
	case wire.CodeOK, wire.CodeNotFound:
		return false, nil
	case wire.CodeConflict:
		if conflictOK {
			return false, nil
		}
	}
	return true, respWriteErr(w, res)
}

// respWriteErr writes a replica's or the proxy's refusal with synod's
// error word: UNAVAILABLE, BUSY and TIMEOUT are transient (nothing was
// applied), CONFLICT is a CAS that lost; bad requests and size limits are
// Redis's ERR.
func respWriteErr(w *resp.Writer, res result) error {
	rep := res.rep
	msg := rep.Msg
	if msg == "" {
		msg = "replica refused the request"
	}
	switch rep.Code {
	case wire.CodeConflict:
		return w.Error("CONFLICT", "version "+strconv.FormatUint(rep.Version, 10))
	case wire.CodeNotFound:
		return w.Error("ERR", "no such key")
	case wire.CodeBadRequest, wire.CodeTooLarge:
		return w.Error("ERR", msg)
	}
	return w.Error(lineCode(rep.Code), msg)
}

// respWrite is the reply of a command whose one part is a write and whose
// reply is +OK.
func respOK(w *resp.Writer, parts []*call) error {
	for _, p := range parts {
		if bad, err := respFailed(w, p.res, false); bad {
			return err
		}
	}
	return w.OK()
}

// respCommand translates one command and reports whether to read on.
func (c *conn) respCommand(st *respState, args [][]byte) bool {
	name := strings.ToUpper(string(args[0]))
	cmd, ok := respCommands[name]
	if !ok {
		return c.respError("ERR", unknownCommand(args))
	}
	if n := len(args); (cmd.arity > 0 && n != cmd.arity) || (cmd.arity < 0 && n < -cmd.arity) {
		return c.respError("ERR", "wrong number of arguments for '"+strings.ToLower(name)+"' command")
	}
	if c.respNeedsAuth(name) {
		return c.respError("NOAUTH", "Authentication required.")
	}
	return cmd.run(c, st, args)
}

// unknownCommand is Redis's text for a command it does not know.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("unknown command '")
	b.WriteString(clip(args[0]))
	b.WriteString("', with args beginning with: ")
	for _, a := range args[1:min(len(args), 4)] {
		b.WriteString("'")
		b.WriteString(clip(a))
		b.WriteString("' ")
	}
	return b.String()
}

// clip shortens a client's argument for an error message.
func clip(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// respKey checks a key for synod's rules.
func (c *conn) respKey(k []byte) (string, bool) {
	key := string(k)
	return key, line.ValidKey(key, c.s.cfg.limits().MaxKey)
}

// respInvalidKey answers a key respKey refused.
func (c *conn) respInvalidKey() bool {
	return c.respError("ERR", "invalid key: synod keys are 1 to "+strconv.Itoa(c.s.cfg.limits().MaxKey)+" bytes of printable UTF-8 without spaces")
}

// respKeys checks every key of args.
func (c *conn) respKeys(args [][]byte) ([]string, bool) {
	keys := make([]string, 0, len(args))
	for _, a := range args {
		k, ok := c.respKey(a)
		if !ok {
			return nil, false
		}
		keys = append(keys, k)
	}
	return keys, true
}

// respSpec is one command: its arity as Redis counts it (the name
// included; negative: at least that many) and its translation.
type respSpec struct {
	arity int
	run   func(c *conn, st *respState, args [][]byte) bool
	flags []string // for COMMAND
	first int      // first key argument, for COMMAND (0: none)
	last  int      // last key argument (-1: the last argument)
	step  int
}

var respCommands map[string]respSpec

func init() {
	w, r, f := []string{"write"}, []string{"readonly", "fast"}, []string{"fast"}
	respCommands = map[string]respSpec{
		"GET":     {arity: 2, run: respGet, flags: r, first: 1, last: 1, step: 1},
		"SET":     {arity: -3, run: respSet, flags: w, first: 1, last: 1, step: 1},
		"SETNX":   {arity: 3, run: respSetNX, flags: w, first: 1, last: 1, step: 1},
		"GETSET":  {arity: 3, run: respGetSet, flags: w, first: 1, last: 1, step: 1},
		"DEL":     {arity: -2, run: respDel, flags: w, first: 1, last: -1, step: 1},
		"UNLINK":  {arity: -2, run: respDel, flags: w, first: 1, last: -1, step: 1},
		"EXISTS":  {arity: -2, run: respExists, flags: r, first: 1, last: -1, step: 1},
		"APPEND":  {arity: 3, run: respAppend, flags: w, first: 1, last: 1, step: 1},
		"STRLEN":  {arity: 2, run: respStrlen, flags: r, first: 1, last: 1, step: 1},
		"TYPE":    {arity: 2, run: respType, flags: r, first: 1, last: 1, step: 1},
		"MGET":    {arity: -2, run: respMGet, flags: r, first: 1, last: -1, step: 1},
		"MSET":    {arity: -3, run: respMSet, flags: w, first: 1, last: -1, step: 2},
		"KEYS":    {arity: 2, run: respKeysCmd, flags: []string{"readonly"}},
		"SCAN":    {arity: -2, run: respScan, flags: []string{"readonly"}},
		"PING":    {arity: -1, run: respPing, flags: f},
		"ECHO":    {arity: 2, run: respEcho, flags: f},
		"QUIT":    {arity: -1, run: respQuit, flags: f},
		"SELECT":  {arity: 2, run: respSelect, flags: f},
		"INFO":    {arity: -1, run: respInfo},
		"CLIENT":  {arity: -2, run: respClient},
		"COMMAND": {arity: -1, run: respCommandCmd},
		"HELLO":   {arity: -1, run: respHello, flags: f},
		"AUTH":    {arity: -2, run: respAuth, flags: f},
		"WAIT":    {arity: 3, run: respWaitCmd},
		"DBSIZE":  {arity: 1, run: respDBSize, flags: []string{"readonly"}},

		"SYNOD.CAS":         {arity: 4, run: respCAS, flags: w, first: 1, last: 1, step: 1},
		"SYNOD.STAT":        {arity: 2, run: respStat, flags: r, first: 1, last: 1, step: 1},
		"SYNOD.STATUS":      {arity: 1, run: respStatus},
		"SYNOD.CONSISTENCY": {arity: -1, run: respConsistency, flags: f},
	}
}

func respGet(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	return c.respOps([]line.Request{{Cmd: line.CmdGet, Key: key}}, func(w *resp.Writer, parts []*call) error {
		res := parts[0].res
		if bad, err := respFailed(w, res, false); bad {
			return err
		}
		if res.rep.Code == wire.CodeNotFound {
			return w.Null()
		}
		return w.Bulk(res.rep.Value)
	})
}

// casTries bounds how often SET XX, SET GET and GETSET read the version
// and try their CAS again when another write came in between.
const casTries = 16

func respSet(c *conn, st *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	var nx, xx, get bool
	for _, a := range args[3:] {
		switch strings.ToUpper(string(a)) {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GET":
			get = true
		case "EX", "PX", "EXAT", "PXAT", "KEEPTTL":
			return c.respError("ERR", "synod keeps no expiry: "+strings.ToUpper(string(a))+" is not supported")
		default:
			return c.respError("ERR", "syntax error")
		}
	}
	if nx && xx {
		return c.respError("ERR", "syntax error")
	}
	return c.respSetWith(key, args[2], nx, xx, get)
}

// respSetWith is SET with its options. Plain SET is one PUT; NX alone one
// CAS at version 0. XX and GET read the key (its version, and its value
// for GET), then CAS against that version, again if another write came in
// between: so each is atomic, as in Redis.
func (c *conn) respSetWith(key string, value []byte, nx, xx, get bool) bool {
	switch {
	case !xx && !get && !nx:
		return c.respOps([]line.Request{{Cmd: line.CmdPut, Key: key, Value: value}}, respOK)
	case nx && !get:
		return c.respOps([]line.Request{{Cmd: line.CmdCAS, Key: key, Value: value}}, func(w *resp.Writer, parts []*call) error {
			res := parts[0].res
			if bad, err := respFailed(w, res, true); bad {
				return err
			}
			if res.rep.Code == wire.CodeConflict {
				return w.Null()
			}
			return w.OK()
		})
	}
	rc := &respCmd{}
	readCmd := line.CmdStat
	if get {
		readCmd = line.CmdGet
	}
	if ok, more := c.respGate([]line.Request{{Cmd: line.CmdCAS, Key: key, Value: value}, {Cmd: readCmd, Key: key}}); !ok {
		return more
	}
	var reply func(w *resp.Writer) error
	for try := 0; reply == nil; try++ {
		if try == casTries {
			reply = func(w *resp.Writer) error {
				return w.Error("BUSY", "the key changed under every one of "+strconv.Itoa(casTries)+" tries")
			}
			break
		}
		old, ok := c.respWait(rc, line.Request{Cmd: readCmd, Key: key})
		if !ok {
			return false
		}
		if old.rep.Code != wire.CodeOK && old.rep.Code != wire.CodeNotFound {
			reply = func(w *resp.Writer) error { return respWriteErr(w, old) }
			break
		}
		exists := old.rep.Code == wire.CodeOK
		prev := func(w *resp.Writer) error {
			if !exists {
				return w.Null()
			}
			return w.Bulk(old.rep.Value)
		}
		if (nx && exists) || (xx && !exists) {
			reply = w2(get, prev)
			break
		}
		ver := uint64(0)
		if exists {
			ver = old.rep.Version
		}
		res, ok := c.respWait(rc, line.Request{Cmd: line.CmdCAS, Key: key, Version: ver, Value: value})
		if !ok {
			return false
		}
		switch res.rep.Code {
		case wire.CodeOK:
			if get {
				reply = prev
			} else {
				reply = (*resp.Writer).OK
			}
		case wire.CodeConflict:
			// Another write came in between: read again.
		default:
			reply = func(w *resp.Writer) error { return respWriteErr(w, res) }
		}
	}
	return c.respLocalIn(rc, reply)
}

// w2 is the reply of a SET whose condition failed: the old value for GET,
// else null.
func w2(get bool, prev func(w *resp.Writer) error) func(w *resp.Writer) error {
	if get {
		return prev
	}
	return (*resp.Writer).Null
}

// respLocalIn ends rc, whose parts were waited for, with a reply made on
// the reader goroutine.
func (c *conn) respLocalIn(rc *respCmd, reply func(w *resp.Writer) error) bool {
	cl := &call{done: answered, rc: rc}
	rc.parts = append(rc.parts, cl)
	rc.final = cl
	rc.render = func(w *resp.Writer, _ []*call) error { return reply(w) }
	return c.push(cl)
}

func respSetNX(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	return c.respOps([]line.Request{{Cmd: line.CmdCAS, Key: key, Value: args[2]}}, func(w *resp.Writer, parts []*call) error {
		res := parts[0].res
		if bad, err := respFailed(w, res, true); bad {
			return err
		}
		if res.rep.Code == wire.CodeConflict {
			return w.Int(0)
		}
		return w.Int(1)
	})
}

func respGetSet(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	return c.respSetWith(key, args[2], false, false, true)
}

// respDel deletes each key with a DEL of its own, in order, and counts
// those that existed.
func respDel(c *conn, _ *respState, args [][]byte) bool {
	keys, ok := c.respKeys(args[1:])
	if !ok {
		return c.respInvalidKey()
	}
	reqs := make([]line.Request, len(keys))
	for i, k := range keys {
		reqs[i] = line.Request{Cmd: line.CmdDel, Key: k}
	}
	return c.respOps(reqs, respCount)
}

// respCount answers how many parts found their key.
func respCount(w *resp.Writer, parts []*call) error {
	n := 0
	for _, p := range parts {
		if bad, err := respFailed(w, p.res, false); bad {
			return err
		}
		if p.res.rep.Code == wire.CodeOK {
			n++
		}
	}
	return w.Int(int64(n))
}

func respExists(c *conn, _ *respState, args [][]byte) bool {
	keys, ok := c.respKeys(args[1:])
	if !ok {
		return c.respInvalidKey()
	}
	reqs := make([]line.Request, len(keys))
	for i, k := range keys {
		reqs[i] = line.Request{Cmd: line.CmdStat, Key: k}
	}
	return c.respOps(reqs, respCount)
}

// respAppend appends, then reads the length with a STAT that the pipeline
// order starts only once the append is answered: the length includes the
// append (and any write another client made in between).
func respAppend(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	reqs := []line.Request{{Cmd: line.CmdAppend, Key: key, Value: args[2]}, {Cmd: line.CmdStat, Key: key}}
	return c.respOps(reqs, func(w *resp.Writer, parts []*call) error {
		for _, p := range parts {
			if bad, err := respFailed(w, p.res, false); bad {
				return err
			}
		}
		return w.Int(int64(parts[1].res.rep.Size))
	})
}

func respStrlen(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	return c.respOps([]line.Request{{Cmd: line.CmdStat, Key: key}}, func(w *resp.Writer, parts []*call) error {
		if bad, err := respFailed(w, parts[0].res, false); bad {
			return err
		}
		return w.Int(int64(parts[0].res.rep.Size))
	})
}

func respType(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	return c.respOps([]line.Request{{Cmd: line.CmdStat, Key: key}}, func(w *resp.Writer, parts []*call) error {
		res := parts[0].res
		if bad, err := respFailed(w, res, false); bad {
			return err
		}
		if res.rep.Code == wire.CodeNotFound {
			return w.Simple("none")
		}
		return w.Simple("string")
	})
}

func respMGet(c *conn, _ *respState, args [][]byte) bool {
	keys, ok := c.respKeys(args[1:])
	if !ok {
		return c.respInvalidKey()
	}
	reqs := make([]line.Request, len(keys))
	for i, k := range keys {
		reqs[i] = line.Request{Cmd: line.CmdGet, Key: k}
	}
	return c.respOps(reqs, func(w *resp.Writer, parts []*call) error {
		for _, p := range parts {
			if bad, err := respFailed(w, p.res, false); bad {
				return err
			}
		}
		w.Array(len(parts))
		for _, p := range parts {
			if p.res.rep.Code == wire.CodeNotFound {
				w.Null()
			} else {
				w.Bulk(p.res.rep.Value)
			}
		}
		return nil
	})
}

// respMSet writes each pair with a PUT of its own, in order, one session:
// each write is atomic and exactly once, the whole is not (a reader may see
// the first keys set and not the last; after an error some may be set).
func respMSet(c *conn, _ *respState, args [][]byte) bool {
	if len(args)%2 != 1 {
		return c.respError("ERR", "wrong number of arguments for 'mset' command")
	}
	reqs := make([]line.Request, 0, len(args)/2)
	for i := 1; i < len(args); i += 2 {
		key, ok := c.respKey(args[i])
		if !ok {
			return c.respInvalidKey()
		}
		reqs = append(reqs, line.Request{Cmd: line.CmdPut, Key: key, Value: args[i+1]})
	}
	return c.respOps(reqs, respOK)
}

func respKeysCmd(c *conn, _ *respState, args [][]byte) bool {
	pattern := string(args[1])
	may := c.listFilter()
	return c.respOps([]line.Request{{Cmd: line.CmdList, Prefix: listPrefix(pattern)}}, func(w *resp.Writer, parts []*call) error {
		res := parts[0].res
		if bad, err := respFailed(w, res, false); bad {
			return err
		}
		var keys []string
		for _, k := range res.rep.Keys {
			if resp.Match(pattern, k) && may(k) {
				keys = append(keys, k)
			}
		}
		return w.Strings(keys)
	})
}

// listPrefix is the LIST prefix a pattern narrows the listing to; "" (all
// keys) when its literal start is not a valid key itself.
func listPrefix(pattern string) string {
	p := resp.Prefix(pattern)
	if !line.ValidKey(p, line.DefaultMaxKey) {
		return ""
	}
	return p
}

// scanHash orders keys for SCAN.
func scanHash(k string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k))
	return h.Sum64()
}

// respScan lists the keys (under the pattern's prefix) and returns those
// whose hash is at or above the cursor, up to COUNT of them, in hash
// order; the next cursor is the hash of the first one left. So the cursor
// needs no state in any proxy (another connection or proxy may continue
// it), and a key present for the whole scan is returned, at least once, as
// Redis promises. Every call lists the keys again: a scan of n keys in
// batches of COUNT costs n/COUNT listings.
func respScan(c *conn, _ *respState, args [][]byte) bool {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		return c.respError("ERR", "invalid cursor")
	}
	pattern, count, typ := "*", 10, ""
	for i := 2; i < len(args); i += 2 {
		if i+1 == len(args) {
			return c.respError("ERR", "syntax error")
		}
		v := string(args[i+1])
		switch strings.ToUpper(string(args[i])) {
		case "MATCH":
			pattern = v
		case "COUNT":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				if err == nil {
					return c.respError("ERR", "syntax error")
				}
				return c.respError("ERR", "value is not an integer or out of range")
			}
			count = n
		case "TYPE":
			typ = strings.ToLower(v)
		default:
			return c.respError("ERR", "syntax error")
		}
	}
	may := c.listFilter()
	return c.respOps([]line.Request{{Cmd: line.CmdList, Prefix: listPrefix(pattern)}}, func(w *resp.Writer, parts []*call) error {
		res := parts[0].res
		if bad, err := respFailed(w, res, false); bad {
			return err
		}
		type hk struct {
			h uint64
			k string
		}
		var all []hk
		for _, k := range res.rep.Keys {
			if h := scanHash(k); h >= cursor {
				all = append(all, hk{h, k})
			}
		}
		slices.SortFunc(all, func(a, b hk) int {
			if a.h != b.h {
				if a.h < b.h {
					return -1
				}
				return 1
			}
			return strings.Compare(a.k, b.k)
		})
		n := min(count, len(all))
		for n < len(all) && n > 0 && all[n].h == all[n-1].h {
			n++ // keys of one hash go together: the cursor cannot split them
		}
		next := uint64(0)
		if n < len(all) {
			next = all[n].h
		}
		var keys []string
		for _, e := range all[:n] {
			if resp.Match(pattern, e.k) && may(e.k) && (typ == "" || typ == "string") {
				keys = append(keys, e.k)
			}
		}
		w.Array(2)
		w.BulkString(strconv.FormatUint(next, 10))
		return w.Strings(keys)
	})
}

func respDBSize(c *conn, _ *respState, _ [][]byte) bool {
	may := c.listFilter()
	return c.respOps([]line.Request{{Cmd: line.CmdList}}, func(w *resp.Writer, parts []*call) error {
		if bad, err := respFailed(w, parts[0].res, false); bad {
			return err
		}
		n := 0
		for _, k := range parts[0].res.rep.Keys {
			if may(k) {
				n++
			}
		}
		return w.Int(int64(n))
	})
}

func respPing(c *conn, _ *respState, args [][]byte) bool {
	switch len(args) {
	case 1:
		return c.respLocal(false, func(w *resp.Writer) error { return w.Simple("PONG") })
	case 2:
		return c.respLocal(false, func(w *resp.Writer) error { return w.Bulk(args[1]) })
	}
	return c.respError("ERR", "wrong number of arguments for 'ping' command")
}

func respEcho(c *conn, _ *respState, args [][]byte) bool {
	return c.respLocal(false, func(w *resp.Writer) error { return w.Bulk(args[1]) })
}

func respQuit(c *conn, _ *respState, _ [][]byte) bool {
	return c.respLocal(true, (*resp.Writer).OK)
}

func respSelect(c *conn, _ *respState, args [][]byte) bool {
	n, err := strconv.Atoi(string(args[1]))
	switch {
	case err != nil:
		return c.respError("ERR", "value is not an integer or out of range")
	case n != 0:
		return c.respError("ERR", "DB index is out of range")
	}
	return c.respLocal(false, (*resp.Writer).OK)
}

// respRedisVersion is the Redis version synod tells clients it speaks
// like, for those that check it before using a command.
const respRedisVersion = "7.2.0"

// respInfo answers the server and replication sections. The proxy plays
// the master (writes go to it); the replicas it knows are the "slaves",
// with their applied index as the offset.
func respInfo(c *conn, _ *respState, args [][]byte) bool {
	nodes := c.s.rt.nodes()
	want := func(section string) bool {
		if len(args) == 1 {
			return true
		}
		for _, a := range args[1:] {
			s := strings.ToLower(string(a))
			if s == section || s == "all" || s == "everything" || s == "default" {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	if want("server") {
		b.WriteString("# Server\r\nredis_version:" + respRedisVersion + "\r\nredis_mode:standalone\r\nsynod_proxy:1\r\n\r\n")
	}
	if want("replication") {
		var master *line.NodeStatus
		var others []line.NodeStatus
		for i := range nodes {
			if nodes[i].Role == string(wire.NodeMaster) && master == nil {
				master = &nodes[i]
			} else {
				others = append(others, nodes[i])
			}
		}
		b.WriteString("# Replication\r\nrole:master\r\n")
		if master != nil {
			b.WriteString("synod_master:id=" + strconv.FormatUint(master.ID, 10) + ",addr=" + master.Addr +
				",ballot=" + master.Ballot + ",commit=" + strconv.FormatUint(master.Commit, 10) + "\r\n")
		} else {
			b.WriteString("synod_master:none\r\n")
		}
		b.WriteString("connected_slaves:" + strconv.Itoa(len(others)) + "\r\n")
		for i, n := range others {
			host, port, err := net.SplitHostPort(n.Addr)
			if err != nil {
				host, port = n.Addr, "0"
			}
			state := "online"
			if n.Role != string(wire.NodeFollower) {
				state = n.Role
			}
			b.WriteString("slave" + strconv.Itoa(i) + ":ip=" + host + ",port=" + port + ",state=" + state +
				",offset=" + strconv.FormatUint(n.Applied, 10) + ",lag=0,synod_id=" + strconv.FormatUint(n.ID, 10) + "\r\n")
		}
		b.WriteString("\r\n")
	}
	s := b.String()
	return c.respLocal(false, func(w *resp.Writer) error { return w.BulkString(s) })
}

func respClient(c *conn, st *respState, args [][]byte) bool {
	sub := strings.ToUpper(string(args[1]))
	switch {
	case sub == "ID" && len(args) == 2:
		id := st.id
		return c.respLocal(false, func(w *resp.Writer) error { return w.Int(id) })
	case sub == "GETNAME" && len(args) == 2:
		name := st.name
		return c.respLocal(false, func(w *resp.Writer) error {
			if name == "" {
				return w.Null()
			}
			return w.BulkString(name)
		})
	case sub == "SETNAME" && len(args) == 3:
		name := string(args[2])
		if strings.ContainsAny(name, " \r\n") {
			return c.respError("ERR", "Client names cannot contain spaces, newlines or special characters.")
		}
		st.name = name
		return c.respLocal(false, (*resp.Writer).OK)
	case sub == "SETINFO" && len(args) == 4:
		switch strings.ToUpper(string(args[2])) {
		case "LIB-NAME":
			st.libName = string(args[3])
		case "LIB-VER":
			st.libVer = string(args[3])
		default:
			return c.respError("ERR", "Unrecognized option '"+clip(args[2])+"'")
		}
		return c.respLocal(false, (*resp.Writer).OK)
	case sub == "ID" || sub == "GETNAME" || sub == "SETNAME" || sub == "SETINFO":
		return c.respError("ERR", "wrong number of arguments for 'client|"+strings.ToLower(sub)+"' command")
	}
	return c.respError("ERR", "unknown subcommand '"+clip(args[1])+"'. Try CLIENT HELP.")
}

// respCommandCmd answers COMMAND (each command's name, arity, flags and
// key positions, as Redis 7 gives them), COMMAND COUNT, COMMAND INFO and
// COMMAND DOCS.
func respCommandCmd(c *conn, _ *respState, args [][]byte) bool {
	names := make([]string, 0, len(respCommands))
	for n := range respCommands {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(args) > 1 {
		switch strings.ToUpper(string(args[1])) {
		case "COUNT":
			return c.respLocal(false, func(w *resp.Writer) error { return w.Int(int64(len(names))) })
		case "DOCS":
			return respDocsCmd(c, names, args[2:])
		case "INFO":
			names = names[:0]
			for _, a := range args[2:] {
				names = append(names, strings.ToUpper(string(a)))
			}
		default:
			return c.respError("ERR", "unknown subcommand '"+clip(args[1])+"'. Try COMMAND HELP.")
		}
	}
	return c.respLocal(false, func(w *resp.Writer) error {
		w.Array(len(names))
		for _, n := range names {
			spec, ok := respCommands[n]
			if !ok {
				w.NullArray()
				continue
			}
			w.Array(10)
			w.BulkString(strings.ToLower(n))
			w.Int(int64(spec.arity))
			w.Array(len(spec.flags))
			for _, f := range spec.flags {
				w.Simple(f)
			}
			w.Int(int64(spec.first))
			w.Int(int64(spec.last))
			w.Int(int64(spec.step))
			w.Array(0) // ACL categories
			w.Array(0) // tips
			w.Array(0) // key specs
			w.Array(0) // subcommands
		}
		return nil
	})
}

// respDocs is what COMMAND DOCS tells of each command: its group and a
// summary saying what synod does. redis-cli builds its HELP from it.
var respDocs = map[string][2]string{
	"GET":               {"string", "Returns the value of a key (a linearizable read from a follower, by default)."},
	"SET":               {"string", "Sets a key's value; NX, XX and GET are atomic (a CAS on the version read). No expiry."},
	"SETNX":             {"string", "Sets a key's value only if it does not exist (CAS at version 0)."},
	"GETSET":            {"string", "Sets a key's value and returns the old one, atomically."},
	"DEL":               {"generic", "Deletes keys, one write per key, in order; returns how many existed."},
	"UNLINK":            {"generic", "Same as DEL."},
	"EXISTS":            {"generic", "Returns how many of the keys exist."},
	"APPEND":            {"string", "Appends to a key's value; returns the length read right after."},
	"STRLEN":            {"string", "Returns the length of a key's value (0 if it does not exist)."},
	"TYPE":              {"generic", "Returns string, or none for a key that does not exist."},
	"MGET":              {"string", "Returns the values of keys, one read per key."},
	"MSET":              {"string", "Sets keys, one write per key, in order: each is atomic, the whole is not."},
	"KEYS":              {"generic", "Returns the keys matching a glob pattern."},
	"SCAN":              {"generic", "Iterates over the keys in hash order; any connection may continue a cursor."},
	"DBSIZE":            {"server", "Returns the number of keys."},
	"PING":              {"connection", "Returns PONG, or the argument."},
	"ECHO":              {"connection", "Returns the argument."},
	"QUIT":              {"connection", "Closes the connection."},
	"SELECT":            {"connection", "Only database 0 exists."},
	"INFO":              {"server", "Server and replication sections: the replicas and the master."},
	"CLIENT":            {"connection", "ID, SETNAME, GETNAME, SETINFO."},
	"COMMAND":           {"server", "Describes the commands synod speaks."},
	"HELLO":             {"connection", "Chooses RESP2 or RESP3."},
	"AUTH":              {"connection", "AUTH [user] password: authenticates as a synod user (with --auth); a password alone is the user default."},
	"WAIT":              {"generic", "Returns how many other replicas hold this connection's writes, by the majority rule; never waits."},
	"SYNOD.CAS":         {"synod", "SYNOD.CAS key version value: writes if the key is at version (0: does not exist); returns the write's index."},
	"SYNOD.STAT":        {"synod", "Returns a key's length and version."},
	"SYNOD.STATUS":      {"synod", "Returns one status line per replica."},
	"SYNOD.CONSISTENCY": {"synod", "Sets or returns this connection's read level: linearizable, session or stale."},
}

// respDocsCmd answers COMMAND DOCS [name...]: a map of each command to its
// summary, since and group.
func respDocsCmd(c *conn, all []string, asked [][]byte) bool {
	names := all
	if len(asked) > 0 {
		names = nil
		for _, a := range asked {
			if n := strings.ToUpper(string(a)); slices.Contains(all, n) {
				names = append(names, n)
			}
		}
	}
	return c.respLocal(false, func(w *resp.Writer) error {
		w.Map(len(names))
		for _, n := range names {
			d := respDocs[n]
			w.BulkString(strings.ToLower(n))
			w.Map(3)
			w.BulkString("summary")
			w.BulkString(d[1])
			w.BulkString("since")
			w.BulkString("1.0.0")
			w.BulkString("group")
			w.BulkString(d[0])
		}
		return nil
	})
}

// respHello answers HELLO [2|3] [AUTH u p] [SETNAME n] with the server's
// description, as a map; after HELLO 3 every reply is RESP3 (the writer
// switches when it writes this reply, so the replies before it, already
// rendered or not, keep the protocol they were asked in).
func respHello(c *conn, st *respState, args [][]byte) bool {
	proto := 0 // unchanged
	if len(args) > 1 {
		v, err := strconv.Atoi(string(args[1]))
		if err != nil {
			return c.respError("ERR", "Protocol version is not an integer or out of range")
		}
		if v != 2 && v != 3 {
			return c.respError("NOPROTO", "unsupported protocol version")
		}
		proto = v
	}
	for i := 2; i < len(args); i++ {
		switch strings.ToUpper(string(args[i])) {
		case "AUTH":
			if i+2 >= len(args) {
				return c.respError("ERR", "syntax error")
			}
			if !c.s.cfg.Auth {
				return c.respError("ERR", "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			}
			if ok, more := c.respAuthenticate(args[i+1], args[i+2]); !ok {
				return more
			}
			i += 2
		case "SETNAME":
			if i+1 == len(args) {
				return c.respError("ERR", "syntax error")
			}
			i++
			st.name = string(args[i])
		default:
			return c.respError("ERR", "syntax error")
		}
	}
	id := st.id
	return c.respLocal(false, func(w *resp.Writer) error {
		if proto != 0 {
			w.SetProto(proto)
		}
		w.Map(7)
		w.BulkString("server")
		w.BulkString("synod")
		w.BulkString("version")
		w.BulkString(respRedisVersion)
		w.BulkString("proto")
		w.Int(int64(w.Proto()))
		w.BulkString("id")
		w.Int(id)
		w.BulkString("mode")
		w.BulkString("standalone")
		w.BulkString("role")
		w.BulkString("master")
		w.BulkString("modules")
		return w.Array(0)
	})
}

// respWaitCmd answers WAIT numreplicas timeout-ms from the majority rule:
// a write synod acknowledged was accepted by a majority, so by at least
// half the other replicas (rounded down) — that many hold this
// connection's writes as soon as they were answered. A follower counts
// besides once the proxy's polls show it applied that far. WAIT answers
// when numreplicas are reached or the timeout ends (0: no end, as in
// Redis, but the connection closing or the server stopping ends it too).
// The reader waits here, as a Redis client waits on WAIT.
func respWaitCmd(c *conn, _ *respState, args [][]byte) bool {
	want, err := strconv.ParseInt(string(args[1]), 10, 64)
	if err != nil {
		return c.respError("ERR", "value is not an integer or out of range")
	}
	ms, err := strconv.ParseInt(string(args[2]), 10, 64)
	if err != nil || ms < 0 {
		return c.respError("ERR", "timeout is not an integer or out of range")
	}
	// The writes before WAIT must be answered first: their indexes are
	// what it counts.
	for _, prev := range c.run {
		<-prev.done
	}
	idx := c.lastIndex.Load()
	var deadline <-chan time.Time
	if ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(c.s.cfg.Poll)
	defer tick.Stop()
	caught := c.replicasAt(idx)
	for int64(caught) < want {
		select {
		case <-tick.C:
		case <-deadline:
			want = 0
		case <-c.stop:
			return false
		case <-c.wdone:
			return false
		case <-c.s.done:
			return false
		}
		caught = c.replicasAt(idx)
	}
	return c.respLocal(false, func(w *resp.Writer) error { return w.Int(int64(caught)) })
}

// replicasAt counts the replicas other than the master that hold index
// idx, as far as the proxy knows: at least half of them (rounded down)
// once a write was answered; more if its last polls saw more followers
// applied that far.
func (c *conn) replicasAt(idx uint64) int {
	nodes := c.s.rt.nodes()
	n := 0
	for _, nd := range nodes {
		if nd.Role == string(wire.NodeFollower) && nd.Applied >= idx {
			n++
		}
	}
	if idx > 0 {
		n = max(n, len(nodes)/2)
	}
	return n
}

func respCAS(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	ver, err := strconv.ParseUint(string(args[2]), 10, 64)
	if err != nil {
		return c.respError("ERR", "version is not an integer or out of range")
	}
	return c.respOps([]line.Request{{Cmd: line.CmdCAS, Key: key, Version: ver, Value: args[3]}}, func(w *resp.Writer, parts []*call) error {
		res := parts[0].res
		if res.rep.Code != wire.CodeOK {
			return respWriteErr(w, res)
		}
		return w.Int(int64(res.rep.Index))
	})
}

func respStat(c *conn, _ *respState, args [][]byte) bool {
	key, ok := c.respKey(args[1])
	if !ok {
		return c.respInvalidKey()
	}
	return c.respOps([]line.Request{{Cmd: line.CmdStat, Key: key}}, func(w *resp.Writer, parts []*call) error {
		res := parts[0].res
		if bad, err := respFailed(w, res, false); bad {
			return err
		}
		if res.rep.Code == wire.CodeNotFound {
			return w.NullArray()
		}
		w.Array(2)
		w.Int(int64(res.rep.Size))
		return w.Int(int64(res.rep.Version))
	})
}

// respStatus answers one bulk string per replica, as STATUS prints it.
func respStatus(c *conn, _ *respState, _ [][]byte) bool {
	nodes := c.s.rt.nodes()
	lines := make([]string, len(nodes))
	for i, n := range nodes {
		lines[i] = "id=" + strconv.FormatUint(n.ID, 10) + " addr=" + n.Addr + " role=" + n.Role + " ballot=" + n.Ballot +
			" commit=" + strconv.FormatUint(n.Commit, 10) + " applied=" + strconv.FormatUint(n.Applied, 10)
	}
	return c.respLocal(false, func(w *resp.Writer) error { return w.Strings(lines) })
}

// respConsistency sets the connection's read level (SYNOD.CONSISTENCY
// linearizable|session|stale) or, without an argument, answers it.
func respConsistency(c *conn, _ *respState, args [][]byte) bool {
	switch len(args) {
	case 1:
		l := c.level.String()
		return c.respLocal(false, func(w *resp.Writer) error { return w.BulkString(l) })
	case 2:
		l, err := line.ParseLevel(string(args[1]))
		if err != nil {
			return c.respError("ERR", "unknown consistency level '"+clip(args[1])+"' (want linearizable, session or stale)")
		}
		c.level = l
		return c.respLocal(false, (*resp.Writer).OK)
	}
	return c.respError("ERR", "wrong number of arguments for 'synod.consistency' command")
}
