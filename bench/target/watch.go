package target

// This file owns Line's watches for the bench's watchers: a reading one
// (lineWatch, used by one watcher goroutine) that resumes FROM where it
// stopped after a cut or a broken connection, a stalled one (a WATCH sent
// and never read), and the proxy's count of cut watches, from STATS.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"synod/bench"
	"synod/wire/line"
)

// dialLine opens an authenticated connection to the proxy.
func (t *Line) dialLine(ctx context.Context) (*line.Client, error) {
	cl, err := line.Dial(ctx, t.addr, line.Options{TLS: t.TLS})
	if err != nil {
		return nil, err
	}
	if t.User != "" {
		if _, err := cl.Do(ctx, line.Request{Cmd: line.CmdAuth, Name: t.User, Password: t.Password}); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return cl, nil
}

// Watch opens a watch of every key from now.
func (t *Line) Watch(ctx context.Context, i int) (bench.WatchConn, error) {
	w := &lineWatch{t: t, ctx: context.WithoutCancel(ctx), closed: make(chan struct{})}
	if err := w.open(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

type lineWatch struct {
	t      *Line
	ctx    context.Context
	w      *line.Watch // the watcher goroutine's
	next   uint64      // the index to resume from; the watcher goroutine's
	closed chan struct{}
	once   sync.Once

	mu sync.Mutex   // guards cl: Close closes it from another goroutine
	cl *line.Client // nil while there is no connection
}

func (w *lineWatch) open(ctx context.Context) error {
	cl, err := w.t.dialLine(ctx)
	if err != nil {
		return err
	}
	lw, err := cl.Watch(ctx, line.Request{WatchPrefix: true, From: w.next})
	if err != nil {
		cl.Close()
		return err
	}
	w.mu.Lock()
	w.cl, w.w = cl, lw
	w.mu.Unlock()
	if w.isClosed() {
		cl.Close() // Close ran before cl was set
	}
	if w.next == 0 {
		w.next = lw.From()
	}
	return nil
}

// Next returns the next event's index, resuming after a cut or a broken
// connection until Close.
func (w *lineWatch) Next() (uint64, bool, error) {
	resumed := false
	for {
		if w.w == nil {
			if w.isClosed() {
				return 0, false, io.EOF
			}
			if err := w.open(w.ctx); err != nil {
				if w.isClosed() {
					return 0, false, io.EOF
				}
				var se *line.ServerError
				if errors.As(err, &se) && !se.Transient() {
					return 0, false, err
				}
				pause(w.ctx)
				continue
			}
			resumed = true
		}
		m, err := w.w.Next()
		if err != nil {
			w.mu.Lock()
			w.cl.Close()
			w.w, w.cl = nil, nil
			w.mu.Unlock()
			if errors.Is(err, line.ErrWatchCanceled) && m.Index > 0 {
				w.next = m.Index
			}
			continue
		}
		w.next = max(w.next, m.Index+1)
		if m.Kind == line.WatchEvent {
			return m.Index, resumed, nil
		}
	}
}

func (w *lineWatch) isClosed() bool {
	select {
	case <-w.closed:
		return true
	default:
		return false
	}
}

// Close ends the watch; a Next blocked on it returns.
func (w *lineWatch) Close() error {
	w.once.Do(func() { close(w.closed) })
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cl != nil {
		return w.cl.Close()
	}
	return nil
}

// Stall opens a watch of every key and never reads it.
func (t *Line) Stall(ctx context.Context, i int) (io.Closer, error) {
	cl, err := t.dialLine(ctx)
	if err != nil {
		return nil, err
	}
	if err := cl.Send(line.Request{Cmd: line.CmdWatch, WatchPrefix: true}); err != nil {
		cl.Close()
		return nil, err
	}
	if err := cl.Flush(); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// Cuts returns the proxy's count of watches cut for slow reading.
func (t *Line) Cuts(ctx context.Context) (int64, error) {
	cl, err := t.dialLine(ctx)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	st, err := cl.Stats(ctx)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(st["watch_cuts"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("target: STATS watch_cuts %q: %w", st["watch_cuts"], err)
	}
	return n, nil
}
