package bench

// This file owns the run's watchers (Workload.Watchers and
// StalledWatchers): one goroutine per reading watcher counts the events it
// receives in the measured window, resuming after a cut or a broken
// connection; a stalled watcher is a connection that asked for every
// change and is never read. Run starts them before the warm-up and stops
// them when the window ends.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoWatch is returned by Run for a workload with watchers whose Target
// cannot watch.
var ErrNoWatch = errors.New("bench: this target has no watches")

// WatchTarget is a Target that can watch every key.
type WatchTarget interface {
	// Watch opens watcher i's watch of every change from now on.
	Watch(ctx context.Context, i int) (WatchConn, error)
	// Stall opens a watch of every change that is never read.
	Stall(ctx context.Context, i int) (io.Closer, error)
	// Cuts returns how many watches the server has cut for reading too
	// slowly so far.
	Cuts(ctx context.Context) (int64, error)
}

// WatchConn is one reading watcher's stream.
type WatchConn interface {
	// Next waits for the next event and returns its index. A watch cut
	// for reading too slowly, or whose connection broke, resumes by
	// itself where it stopped (resumed is then true).
	Next() (index uint64, resumed bool, err error)
	Close() error
}

// WatchStats are the watchers' figures over the measured window.
type WatchStats struct {
	Watchers int     `json:"watchers"`
	Stalled  int     `json:"stalled"`
	Events   int64   `json:"events"`
	PerSec   float64 `json:"events_per_sec"`
	Resumes  int64   `json:"resumes"`
	// Cuts is how many watches the server cut for reading too slowly
	// during the run (the stalled ones, if it works).
	Cuts int64 `json:"cuts"`
}

// watchers are a run's watchers.
type watchers struct {
	t        WatchTarget
	conns    []WatchConn
	stalled  []io.Closer
	t0, t1   atomic.Int64 // the measured window, unix ns; t1 0 while open
	events   atomic.Int64
	resumes  atomic.Int64
	cutsBase int64
	wg       sync.WaitGroup
}

// startWatchers opens w's watchers on t; nil if w has none.
func startWatchers(ctx context.Context, t Target, w Workload) (*watchers, error) {
	if w.Watchers == 0 && w.StalledWatchers == 0 {
		return nil, nil
	}
	wt, ok := t.(WatchTarget)
	if !ok {
		return nil, ErrNoWatch
	}
	ws := &watchers{t: wt}
	ws.t0.Store(1 << 62)
	var err error
	if ws.cutsBase, err = wt.Cuts(ctx); err != nil {
		return nil, fmt.Errorf("bench: watch cuts: %w", err)
	}
	for i := range w.StalledWatchers {
		c, err := wt.Stall(ctx, i)
		if err != nil {
			ws.close()
			return nil, fmt.Errorf("bench: stalled watcher %d: %w", i, err)
		}
		ws.stalled = append(ws.stalled, c)
	}
	for i := range w.Watchers {
		c, err := wt.Watch(ctx, i)
		if err != nil {
			ws.close()
			return nil, fmt.Errorf("bench: watcher %d: %w", i, err)
		}
		ws.conns = append(ws.conns, c)
	}
	for _, c := range ws.conns {
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			for {
				_, resumed, err := c.Next()
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				if now >= ws.t0.Load() && (ws.t1.Load() == 0 || now < ws.t1.Load()) {
					ws.events.Add(1)
					if resumed {
						ws.resumes.Add(1)
					}
				}
			}
		}()
	}
	return ws, nil
}

// measure sets the measured window's start.
func (ws *watchers) measure(t0 time.Time) { ws.t0.Store(t0.UnixNano()) }

// stop ends the window and the watchers, and fills res.Watch.
func (ws *watchers) stop(ctx context.Context, w Workload, res *Result) {
	ws.t1.Store(time.Now().UnixNano())
	cuts, err := ws.t.Cuts(ctx)
	if err != nil {
		cuts = -1
	} else {
		cuts -= ws.cutsBase
	}
	ws.close()
	res.Watch = &WatchStats{Watchers: w.Watchers, Stalled: w.StalledWatchers, Events: ws.events.Load(),
		PerSec: float64(ws.events.Load()) / w.Duration.Seconds(), Resumes: ws.resumes.Load(), Cuts: cuts}
}

func (ws *watchers) close() {
	for _, c := range ws.conns {
		c.Close()
	}
	for _, c := range ws.stalled {
		c.Close()
	}
	ws.wg.Wait()
}
