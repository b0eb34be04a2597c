package proxy

// config.go: the proxy's configuration, its defaults and its checks. New
// validates it on its caller's goroutine; once the Server runs it is only
// read, by any of its goroutines.

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"synod/wire"
	"synod/wire/line"
	"synod/wire/tlsconf"
)

// Config configures a Server. Start from DefaultConfig; the fields after
// MaxPipeline are not command-line flags, their defaults suit every
// deployment the design knows of.
type Config struct {
	// Listen is the address ListenAndServe serves the line protocol on.
	// Default 127.0.0.1:7000.
	Listen string
	// Nodes maps replica ids to their wire addresses, and Seeds lists
	// addresses whose replica's id the proxy learns from its STATUS. At
	// least one of the two is required; one reachable replica is enough,
	// since every STATUS carries the configuration in force (the highest
	// configuration slot wins) and the proxy follows it from then on:
	// members added are polled and routed to, members removed are dropped.
	// Until a STATUS carries a configuration (replicas of an older
	// version), Nodes is the whole cluster.
	Nodes map[uint64]string
	Seeds []string
	// ClusterID must equal the replicas' cluster id. Default "synod".
	ClusterID string
	// Poll is how often every replica's STATUS is asked. Default 100 ms.
	Poll time.Duration
	// QueueSize bounds the requests held while there is no master (or no
	// replica can serve a read). A request past it is answered UNAVAILABLE
	// at once. Default 10,000.
	QueueSize int
	// QueueBytes bounds the same requests in bytes (key and value): a
	// request that would take the held bytes past it is answered
	// UNAVAILABLE at once. Default 256 MiB.
	QueueBytes int64
	// Hold is how long a request may wait for a master (or an eligible
	// replica), counted from its arrival. Default 10 s.
	Hold time.Duration
	// MaxConns bounds the client connections served at once; one more is
	// answered "ERR BUSY too many connections" (a Redis client: "-BUSY …")
	// and closed. Default 10,000.
	MaxConns int
	// IdleTimeout closes a client connection that sent no complete request
	// for this long, including one that stalls halfway through a line.
	// Default 5 min.
	IdleTimeout time.Duration
	// MaxValue is the largest value a client may send, in bytes.
	// Default 1 MiB.
	MaxValue int
	// MaxInflightBytes bounds the bytes of all connections' requests (key
	// and value) and buffered replies, from when the request is read until
	// its reply is written: a value block that would take them past it is
	// drained unread and answered "ERR BUSY". Requests of at most 4 KiB are
	// bounded by MaxInflight alone. Default 1 GiB.
	MaxInflightBytes int64
	// MaxPipelineBytes bounds one connection's requests and unwritten
	// replies in bytes; a read counts as a reply of MaxValue until its
	// reply arrives. Past it the connection's next request is not taken
	// (and so not read further) until replies are written: a client that
	// reads its replies slowly stalls its own connection. Default 16 MiB,
	// at least MaxValue plus 64 KiB.
	MaxPipelineBytes int64
	// MaxInflight bounds the reads and writes of all connections on their
	// way to replicas (queued ones included); past it a request is
	// answered BUSY. Default 100,000.
	MaxInflight int
	// MaxPipeline bounds the requests of one connection awaiting their
	// replies; the connection is not read further until one is written.
	// Default 1024, at most wire.MaxSessionWindow (the replicas keep that
	// many replies of a connection's writes for their retries).
	MaxPipeline int

	// MaxLine is the longest request line in bytes. Default 64 KiB.
	MaxLine int
	// MaxFileSize is the largest file a client may upload with PUTFILE,
	// in bytes. Default 16 GiB. A file's manifest (65 bytes per chunk)
	// must also fit in MaxValue: an upload whose would not is refused
	// before its bytes are read.
	MaxFileSize int64
	// ChunkSize is the size of the chunks an upload is cut into, each
	// stored on a majority of replicas before the file's write is
	// proposed. Default 4 MiB, within wire.MinChunkSize and
	// wire.MaxChunkSize.
	ChunkSize int
	// MaxUploads is how many PUTFILEs one client (the user a connection
	// authenticated as, or else its remote IP address) may have in
	// progress at once, over all its connections; one more is refused
	// BUSY before its bytes are read. Default 4.
	MaxUploads int
	// MaxUploadBytes caps the declared sizes of one client's uploads in
	// progress together, in bytes: an upload that would pass it is
	// refused BUSY, one larger than it alone TOO_LARGE. It bounds the
	// disk one client can fill with chunks no file refers to yet.
	// Default 64 GiB.
	MaxUploadBytes int64
	// ReadTimeout bounds one read attempt at one replica; a replica that
	// does not answer in time is ejected and the read tried elsewhere.
	// Default 2 s.
	ReadTimeout time.Duration
	// ProbeTimeout bounds one STATUS poll; a replica that does not answer in
	// time is taken for down and its connection closed, so the requests
	// sent to it are retried. Default 1 s.
	ProbeTimeout time.Duration
	// WriteTimeout bounds writing replies to a client that does not read
	// them; past it the connection is closed. Default 30 s.
	WriteTimeout time.Duration
	// MaxLag is how many commands a follower's applied index, as last
	// reported, may be below what a read needs for the read to be sent to
	// it anyway (the replica waits for the rest itself). A follower further
	// behind, say one catching up after a restart, gets no reads that need
	// the newer state. Default 10,000.
	MaxLag uint64

	// MaxWatches bounds the watches open on one connection, and
	// MaxWatchesTotal those of all connections; one more WATCH is
	// answered BUSY. Defaults 64 and 10,000.
	MaxWatches      int
	MaxWatchesTotal int
	// WatchBuffer bounds, in bytes, the events of one watch fetched from
	// the replicas and not yet written to its client (at least one event
	// is always fetched). Default 256 KiB.
	WatchBuffer int
	// WatchStall is how long a watch's buffer may stay full, its client
	// not reading, before the watch is cut with CANCELED ... SLOW (the
	// client resumes it FROM the index that line names). Default 2 s.
	WatchStall time.Duration
	// WatchProgress is how long a replica holds a watch poll that has
	// nothing to send: an idle watch gets a PROGRESS line about this
	// often. Below ReadTimeout. Default 1 s.
	WatchProgress time.Duration

	// TLS, when not nil, runs the proxy over TLS 1.3 with the bundle's
	// certificate: mutual TLS to every replica (the certificate must be a
	// proxy's of the cluster CA), and TLS on the line-protocol port, where
	// a client certificate is checked if one is sent (see tls.go). nil
	// means plaintext on both.
	TLS *tlsconf.Bundle

	// Auth turns on users and permissions (auth.go): a connection may
	// only PING, AUTH, HELP and QUIT until AUTH succeeds, and then only
	// what its user's roles grant. Off, every client may do everything
	// but touch the reserved keys under .synod/.
	Auth bool
	// BootstrapAdmin, if set, is a user the proxy creates with the admin
	// role and BootstrapPassword when no user of that name exists (the
	// first admin of a new cluster). An existing one is left alone.
	BootstrapAdmin    string
	BootstrapPassword string

	// Logger receives the proxy's logs.
	Logger zerolog.Logger
}

// DefaultConfig returns the design's defaults; Nodes and Seeds are left for
// the caller.
func DefaultConfig() Config {
	return Config{
		Listen:           "127.0.0.1:7000",
		ClusterID:        "synod",
		Poll:             100 * time.Millisecond,
		QueueSize:        10000,
		QueueBytes:       256 << 20,
		Hold:             10 * time.Second,
		MaxConns:         10000,
		IdleTimeout:      5 * time.Minute,
		MaxValue:         line.DefaultMaxValue,
		MaxInflightBytes: 1 << 30,
		MaxPipelineBytes: 16 << 20,
		MaxInflight:      100000,
		MaxPipeline:      1024,
		MaxLine:          line.DefaultMaxLine,
		MaxFileSize:      line.DefaultMaxFileSize,
		ChunkSize:        wire.DefaultChunkSize,
		MaxUploads:       4,
		MaxUploadBytes:   64 << 30,
		ReadTimeout:      2 * time.Second,
		ProbeTimeout:     time.Second,
		WriteTimeout:     30 * time.Second,
		MaxLag:           10000,
		MaxWatches:       64,
		MaxWatchesTotal:  10000,
		WatchBuffer:      256 << 10,
		WatchStall:       2 * time.Second,
		WatchProgress:    time.Second,
		Logger:           zerolog.Nop(),
	}
}

// ErrInvalidConfig is returned by Validate and New for a Config that cannot
// work.
var ErrInvalidConfig = errors.New("proxy: invalid config")

// Validate reports what is wrong with c, wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case len(c.Nodes) == 0 && len(c.Seeds) == 0:
		return bad("no replicas")
	case len(c.ClusterID) > wire.MaxClusterIDLen:
		return bad("cluster id longer than %d bytes", wire.MaxClusterIDLen)
	case c.Poll <= 0 || c.Hold <= 0 || c.IdleTimeout <= 0 || c.ReadTimeout <= 0 ||
		c.ProbeTimeout <= 0 || c.WriteTimeout <= 0:
		return bad("durations must be positive")
	case c.QueueSize <= 0 || c.MaxConns <= 0 || c.MaxPipeline <= 0 || c.MaxInflight <= 0:
		return bad("queue, connection, pipeline and in-flight bounds must be positive")
	case c.MaxValue <= 0 || c.MaxValue > wire.MaxFrameLimit/4:
		return bad("max value %d not in [1, %d]", c.MaxValue, wire.MaxFrameLimit/4)
	case c.MaxWatches <= 0 || c.MaxWatchesTotal <= 0 || c.WatchBuffer <= 0 || c.WatchStall <= 0:
		return bad("watch bounds must be positive")
	case c.WatchProgress <= 0 || c.WatchProgress >= c.ReadTimeout || c.WatchProgress > time.Minute:
		return bad("watch progress interval %v must be positive, below the read timeout %v and at most a minute", c.WatchProgress, c.ReadTimeout)
	case c.MaxPipeline > wire.MaxSessionWindow:
		return bad("pipeline %d over %d, the writes of a session replicas keep replies for", c.MaxPipeline, wire.MaxSessionWindow)
	case c.MaxPipelineBytes < int64(c.MaxValue)+minPipelineSlack:
		return bad("pipeline bytes %d below the largest value plus %d", c.MaxPipelineBytes, minPipelineSlack)
	case c.MaxInflightBytes < c.MaxPipelineBytes:
		return bad("in-flight bytes %d below one connection's pipeline bytes %d", c.MaxInflightBytes, c.MaxPipelineBytes)
	case c.QueueBytes < int64(c.MaxValue)+minPipelineSlack:
		return bad("queue bytes %d below the largest value plus %d", c.QueueBytes, minPipelineSlack)
	case c.ChunkSize < wire.MinChunkSize || c.ChunkSize > wire.MaxChunkSize:
		return bad("chunk size %d not in [%d, %d]", c.ChunkSize, wire.MinChunkSize, wire.MaxChunkSize)
	case c.MaxFileSize <= 0:
		return bad("max file size %d: want at least 1 byte", c.MaxFileSize)
	case c.MaxUploads < 1:
		return bad("max uploads per client %d: want at least 1", c.MaxUploads)
	case c.MaxUploadBytes < 1:
		return bad("max upload bytes per client %d: want at least 1 byte", c.MaxUploadBytes)
	case c.BootstrapAdmin != "" && (!line.ValidName(c.BootstrapAdmin) || !line.ValidPassword(c.BootstrapPassword)):
		return bad("bootstrap admin %.64q: a name of letters, digits, . _ @ - and a password of printable bytes", c.BootstrapAdmin)
	}
	for id, addr := range c.Nodes {
		if id == 0 || addr == "" {
			return bad("replica %d has no address", id)
		}
	}
	for _, addr := range c.Seeds {
		if addr == "" {
			return bad("empty seed address")
		}
	}
	if err := c.limits().Validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// minPipelineSlack is the room a byte bound needs besides one value: the
// request line and the reply's framing.
const minPipelineSlack = 64 << 10

// limits are the line-protocol limits for client connections.
func (c *Config) limits() line.Limits {
	lim := line.DefaultLimits()
	if c.MaxLine > 0 {
		lim.MaxLine = c.MaxLine
	}
	lim.MaxValue = c.MaxValue
	lim.MaxFileSize = c.MaxFileSize
	if lim.MaxDiscard < lim.MaxValue {
		lim.MaxDiscard = lim.MaxValue
	}
	return lim
}

// maxFrame is the wire frame limit toward replicas: room for the largest
// value plus envelope, and for a LIST answer of long keys.
func (c *Config) maxFrame() int {
	return max(wire.DefaultMaxFrame, 2*c.MaxValue+(1<<20))
}

// manifestLen bounds the manifest of a file of size bytes in chunks of
// chunk bytes: three numbers and a sum, then 65 bytes per chunk.
func manifestLen(size int64, chunk int) int64 {
	return 128 + (size/int64(chunk)+1)*int64(2*len(wire.ChunkSum{})+1)
}
