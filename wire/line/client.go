package line

// This file owns Client, the Go client of the line protocol (the CLI, the
// bench, the nemesis). Safe for concurrent use: the request methods take
// turns under callMu; for pipelining one goroutine may Send and Flush
// (under wmu) while another Recvs (under rmu); Do's cancellation moves the
// deadline from context.AfterFunc's goroutine.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Options configure a Client. A zero (or negative) field takes its default.
// The limits bound what a misbehaving server can make the client read.
type Options struct {
	// DialTimeout bounds Dial on top of its context. Default 5 s.
	DialTimeout time.Duration
	// MaxLine is the longest reply line in bytes. Default 64 KiB.
	MaxLine int
	// MaxValue is the largest VALUE in bytes. Default 16 MiB, the wire
	// protocol's frame limit, so no value a cluster can hold is refused.
	MaxValue int
	// MaxKeys is the most keys a KEYS reply may announce. Default 1<<20.
	MaxKeys int
	// MaxLines is the most lines of a NODES, STATS or HELP reply. Default 4096.
	MaxLines int
	// TLS, when not nil, makes Dial speak TLS (ServerName defaults to the
	// host dialled); the handshake ends within DialTimeout too.
	TLS *tls.Config
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.MaxValue <= 0 {
		o.MaxValue = 16 << 20
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1 << 20
	}
	if o.MaxLines <= 0 {
		o.MaxLines = 4096
	}
	return o
}

// ioBuffer is the size of the client's read and write buffers.
const ioBuffer = 32 << 10

// Client speaks the line protocol over one connection. It always sends values
// as "$<n>" blocks, so any bytes are safe.
//
// The request methods (Put, Get, ..., Do) are safe for concurrent use; they
// take turns on the connection. For many requests in flight use Send, Flush
// and Recv instead: one goroutine may Send and Flush while another Recvs, and
// replies come in request order. Recv answers only requests already sent
// (ErrNothingPending otherwise), so a receiving goroutine learns of each Send
// from the sender, for example over a channel. The request methods refuse to
// run with ErrPipelineBusy while sent requests await their replies.
//
// Once the connection fails (an I/O error, a malformed reply, a cancelled
// context during a request) every later call returns that error: the stream
// can no longer be trusted to be in sync. A *ServerError does not break it.
type Client struct {
	conn net.Conn

	callMu sync.Mutex // request methods take turns

	wmu  sync.Mutex // guards bw, wbuf
	bw   *bufio.Writer
	wbuf []byte

	rmu sync.Mutex // guards rr
	rr  replyReader

	mu     sync.Mutex // guards the fields below
	queue  []Cmd      // commands sent, awaiting replies, from head on
	head   int
	err    error // sticky connection failure
	closed bool
}

// Dial connects to a server at addr (host:port) over TCP.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	d := net.Dialer{Timeout: opts.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("line: dial %s: %w", addr, err)
	}
	if opts.TLS != nil {
		if conn, err = handshakeTLS(ctx, conn, addr, opts); err != nil {
			return nil, err
		}
	}
	return NewClient(conn, opts), nil
}

// NewClient returns a Client speaking over conn, which it owns from now on.
func NewClient(conn net.Conn, opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{
		conn: conn,
		bw:   bufio.NewWriterSize(conn, ioBuffer),
		rr:   replyReader{br: bufio.NewReaderSize(conn, ioBuffer), opts: opts},
	}
}

// Close closes the connection. Calls blocked in Recv or a request return, and
// every later call returns ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if already {
		return nil
	}
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("line: close: %w", err)
	}
	return nil
}

// broken returns the error every call returns from now on, or nil.
func (c *Client) broken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.err != nil {
		return fmt.Errorf("line: connection unusable after an earlier error: %w", c.err)
	}
	return nil
}

// fail records err as the connection's failure (the first one wins) and
// returns it.
func (c *Client) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.err == nil {
		c.err = err
	}
	return err
}

// Pending returns how many sent requests await their replies.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) - c.head
}

func (c *Client) push(cmd Cmd) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head > 0 && c.head >= len(c.queue)/2 {
		// Reclaim the consumed front so a never-empty pipeline does not grow.
		n := copy(c.queue, c.queue[c.head:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, cmd)
}

func (c *Client) pop() (Cmd, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == len(c.queue) {
		return 0, false
	}
	cmd := c.queue[c.head]
	c.head++
	return cmd, true
}

// Send queues req to be written at the next Flush (or sooner, when the
// buffer fills). It returns an error matching ErrBadRequest, without sending
// anything, for a request no server would accept (see AppendRequest).
func (c *Client) Send(req Request) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.broken(); err != nil {
		return err
	}
	buf, err := AppendRequest(c.wbuf[:0], req)
	if err != nil {
		return err
	}
	if cap(buf) <= ioBuffer {
		c.wbuf = buf // keep small buffers; let a big value's go
	}
	if _, err := c.bw.Write(buf); err != nil {
		return c.fail(fmt.Errorf("line: send %s: %w", req.Cmd, err))
	}
	c.push(req.Cmd)
	return nil
}

// Flush writes every queued request to the connection.
func (c *Client) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.broken(); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return c.fail(fmt.Errorf("line: flush requests: %w", err))
	}
	return nil
}

// Recv reads the reply to the oldest sent request still awaiting one. ERR
// and NOT_FOUND replies return a *ServerError and leave the connection
// usable; ErrNothingPending means nothing was sent. Recv blocks until the
// reply arrives, the connection's deadline passes (SetDeadline) or Close.
func (c *Client) Recv() (Reply, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.broken(); err != nil {
		return Reply{}, err
	}
	cmd, ok := c.pop()
	if !ok {
		return Reply{}, ErrNothingPending
	}
	rep, err := c.rr.read(cmd)
	if err != nil {
		var se *ServerError
		if !errors.As(err, &se) {
			return Reply{}, c.fail(err)
		}
	}
	return rep, err
}

// SetDeadline sets the connection's read and write deadline, for pipelined
// use; the request methods set their own from their context.
func (c *Client) SetDeadline(t time.Time) error {
	if err := c.conn.SetDeadline(t); err != nil {
		return fmt.Errorf("line: set deadline: %w", err)
	}
	return nil
}

// Do sends req, waits for its reply and returns it. ctx bounds the whole
// round trip; if it ends first, the connection is unusable afterwards (the
// reply may still be on its way). A *ServerError leaves it usable.
func (c *Client) Do(ctx context.Context, req Request) (Reply, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if err := c.broken(); err != nil {
		return Reply{}, err
	}
	if c.Pending() > 0 {
		return Reply{}, ErrPipelineBusy
	}
	if err := ctx.Err(); err != nil {
		return Reply{}, fmt.Errorf("line: %s: %w", req.Cmd, err)
	}

	deadline, _ := ctx.Deadline()
	if err := c.conn.SetDeadline(deadline); err != nil {
		return Reply{}, c.fail(fmt.Errorf("line: set deadline: %w", err))
	}
	// Cancellation interrupts blocked I/O by moving the deadline to the
	// past. done keeps a late callback from hitting the next request.
	var (
		gmu  sync.Mutex
		done bool
	)
	stop := context.AfterFunc(ctx, func() {
		gmu.Lock()
		defer gmu.Unlock()
		if !done {
			_ = c.conn.SetDeadline(time.Unix(1, 0))
		}
	})
	rep, err := c.roundTrip(req)
	gmu.Lock()
	done = true
	gmu.Unlock()
	stop()

	if err == nil || isServerError(err) || c.broken() == nil {
		if !deadline.IsZero() || ctx.Done() != nil {
			_ = c.conn.SetDeadline(time.Time{})
		}
		return rep, err
	}
	if cerr := ctx.Err(); cerr != nil {
		return Reply{}, fmt.Errorf("line: %s: %w: %w", req.Cmd, cerr, err)
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return Reply{}, fmt.Errorf("line: %s: %w: %w", req.Cmd, context.DeadlineExceeded, err)
	}
	return Reply{}, err
}

func (c *Client) roundTrip(req Request) (Reply, error) {
	if err := c.Send(req); err != nil {
		return Reply{}, err
	}
	if err := c.Flush(); err != nil {
		return Reply{}, err
	}
	return c.Recv()
}

func isServerError(err error) bool {
	var se *ServerError
	return errors.As(err, &se)
}

// Put stores value under key and returns the write's index.
func (c *Client) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdPut, Key: key, Value: value})
	return rep.Index, err
}

// Append appends value to key's value (creating it) and returns the write's index.
func (c *Client) Append(ctx context.Context, key string, value []byte) (uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdAppend, Key: key, Value: value})
	return rep.Index, err
}

// CAS stores value under key if key's version is version (0: if key does not
// exist) and returns the write's index. Otherwise the error matches
// ErrConflict and, as a *ServerError, carries the current version.
func (c *Client) CAS(ctx context.Context, key string, version uint64, value []byte) (uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdCAS, Key: key, Version: version, Value: value})
	return rep.Index, err
}

// Del deletes key and returns the write's index, or an error matching
// ErrNotFound.
func (c *Client) Del(ctx context.Context, key string) (uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdDel, Key: key})
	return rep.Index, err
}

// Get returns key's value and version, or an error matching ErrNotFound.
// minIndex > 0 asks for an answer only from a replica that applied that far
// (a session token, such as the index of this client's last write).
func (c *Client) Get(ctx context.Context, key string, minIndex uint64) ([]byte, uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdGet, Key: key, MinIndex: minIndex})
	return rep.Value, rep.Version, err
}

// Stat returns the length and version of key's value, or an error matching
// ErrNotFound.
func (c *Client) Stat(ctx context.Context, key string) (length, version uint64, err error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdStat, Key: key})
	return rep.Len, rep.Version, err
}

// List returns the keys starting with prefix ("" for all), as the server
// orders them.
func (c *Client) List(ctx context.Context, prefix string) ([]string, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdList, Prefix: prefix})
	return rep.Keys, err
}

// SetConsistency sets the read level of this connection.
func (c *Client) SetConsistency(ctx context.Context, level Level) error {
	_, err := c.Do(ctx, Request{Cmd: CmdConsistency, Level: level})
	return err
}

// Status returns the server's view of every replica.
func (c *Client) Status(ctx context.Context) ([]NodeStatus, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdStatus})
	return rep.Nodes, err
}

// Stats returns the server's counters by name.
func (c *Client) Stats(ctx context.Context) (map[string]string, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdStats})
	return rep.Stats, err
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, Request{Cmd: CmdPing})
	return err
}

// Help returns the server's command list, one line each.
func (c *Client) Help(ctx context.Context) ([]string, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdHelp})
	return rep.Lines, err
}

// Members returns the configuration in force: every member, and the slot
// that chose it.
func (c *Client) Members(ctx context.Context) ([]Member, uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdMemberList})
	return rep.Members, rep.ConfigSlot, err
}

// MemberAdd adds replica id at addr (host:port) as a learner and returns
// the slot of the configuration in force once it is. Adding a member
// already there at the same address succeeds, so a retry is harmless.
func (c *Client) MemberAdd(ctx context.Context, id uint64, addr string) (uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdMemberAdd, MemberID: id, MemberAddr: addr})
	return rep.ConfigSlot, err
}

// MemberRemove removes replica id (the master hands over first if it is
// the one) and returns the slot of the configuration in force once it is.
// Removing a non-member succeeds.
func (c *Client) MemberRemove(ctx context.Context, id uint64) (uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdMemberRemove, MemberID: id})
	return rep.ConfigSlot, err
}

// MemberPromote makes the learner id a voter and returns the slot of the
// configuration in force once it is. Promoting a voter succeeds.
func (c *Client) MemberPromote(ctx context.Context, id uint64) (uint64, error) {
	rep, err := c.Do(ctx, Request{Cmd: CmdMemberPromote, MemberID: id})
	return rep.ConfigSlot, err
}

// handshakeTLS runs the client side of a TLS handshake on conn, closing it
// on failure.
func handshakeTLS(ctx context.Context, conn net.Conn, addr string, opts Options) (net.Conn, error) {
	cfg := opts.TLS
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	ctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("line: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}
