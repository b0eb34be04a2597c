package proxy

// This file owns the per-client upload limits (Config.MaxUploads and
// Config.MaxUploadBytes): how many PUTFILEs one client may have in
// progress at once, and how many bytes they may declare together. A client
// is the user its connection authenticated as, or else the connection's
// remote IP address, so opening more connections does not raise a
// client's share. A PUTFILE is admitted (or refused, before its bytes are
// read) on its connection's reader goroutine, and released there when the
// upload ends; the table is shared by every connection, under its mutex.

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"synod/wire"
)

// uploadLimits counts the uploads in progress per client. The zero value
// is ready.
type uploadLimits struct {
	mu      sync.Mutex
	clients map[string]*clientUploads

	active  atomic.Int64  // uploads in progress, every client's
	refused atomic.Uint64 // PUTFILEs refused for a client limit
}

// clientUploads is one client's uploads in progress.
type clientUploads struct {
	n     int
	bytes int64 // their declared sizes
}

// uploadClient names the client c's uploads count against.
func (c *conn) uploadClient() string {
	if c.user != "" {
		return "user " + c.user
	}
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		host = c.nc.RemoteAddr().String()
	}
	return "address " + host
}

// admitUpload admits a PUTFILE of size bytes from c's client, or refuses
// it: TOO_LARGE if size alone is over the client's byte cap (it can never
// fit), BUSY if the client's uploads in progress leave no room for it (it
// may fit later). On admission release must be called once the upload
// ended, whatever its outcome.
func (c *conn) admitUpload(size uint64) (release func(), code wire.Code, msg string) {
	cfg := &c.s.cfg
	l := &c.s.uploads
	who := c.uploadClient()
	if size > uint64(cfg.MaxUploadBytes) {
		l.refused.Add(1)
		return nil, wire.CodeTooLarge, fmt.Sprintf("an upload of %d bytes is over the %d bytes one client may upload at once (--max-client-upload-bytes)", size, cfg.MaxUploadBytes)
	}
	n := int64(size)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients == nil {
		l.clients = map[string]*clientUploads{}
	}
	cu := l.clients[who]
	if cu == nil {
		cu = &clientUploads{}
	}
	switch {
	case cu.n >= cfg.MaxUploads:
		l.refused.Add(1)
		return nil, wire.CodeBusy, fmt.Sprintf("%s has %d uploads in progress, the most one client may (--max-client-uploads): retry when one ended", who, cu.n)
	case cu.bytes+n > cfg.MaxUploadBytes:
		l.refused.Add(1)
		return nil, wire.CodeBusy, fmt.Sprintf("%s has uploads of %d bytes in progress; %d more would pass the %d one client may (--max-client-upload-bytes): retry when one ended", who, cu.bytes, n, cfg.MaxUploadBytes)
	}
	cu.n++
	cu.bytes += n
	l.clients[who] = cu
	l.active.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			cu.n--
			cu.bytes -= n
			if cu.n == 0 {
				delete(l.clients, who)
			}
			l.active.Add(-1)
		})
	}, wire.CodeOK, ""
}
