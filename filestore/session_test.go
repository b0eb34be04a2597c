package filestore

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"synod/wire"
)

// Transcripts of a proxy's retry meeting a session the table no longer
// holds. Exactly-once must not depend on the session surviving: the retry
// is refused, never applied a second time.

// TestRetryAfterFastClock: a write stamped t is applied, its reply lost;
// another master whose clock runs two hours ahead proposes a command
// stamped t+2h, which moves log time past every session's TTL; then the
// proxy's retry of the first write arrives (stamped by a sane master).
func TestRetryAfterFastClock(t *testing.T) {
	const t0 = int64(1_732_000_000_000)
	fast := t0 + (2 * time.Hour).Milliseconds()
	m := New(Options{})
	runSteps(t, m, []step{
		{cmd(wire.OpAppend, 17, 1, t0, "k", 0, "a"), ok(1, 1)},
		{cmd(wire.OpAppend, 17, 2, t0, "k", 0, "b"), ok(2, 2)}, // this reply is lost
		{cmd(wire.OpPut, 99, 1, fast, "other", 0, "x"), ok(3, 3)},
	})
	got := m.Apply(4, cmd(wire.OpAppend, 17, 2, t0+1, "k", 0, "b"))
	if v, _, _ := m.Get("k"); string(v) != "ab" || got.Code == wire.CodeOK {
		t.Fatalf("retry after a fast clock expired the session: %+v, k = %q: applied twice", got, v)
	}
	if got != (Result{Code: wire.CodeSessionUnknown, Index: 4}) {
		t.Fatalf("retry = %+v, want SESSION_UNKNOWN", got)
	}
}

// TestRetryOfFirstWriteAfterFastClock: the same for a session's first
// write, which only the retry mark tells from a new session's start.
func TestRetryOfFirstWriteAfterFastClock(t *testing.T) {
	const t0 = int64(1_732_000_000_000)
	fast := t0 + (2 * time.Hour).Milliseconds()
	m := New(Options{})
	retry := EncodeCommand(nil, Command{Op: wire.OpAppend, ClientID: 17, Seq: 1, Retry: true, Stamp: t0 + 1, Key: "k", Value: []byte("a")})
	runSteps(t, m, []step{
		{cmd(wire.OpAppend, 17, 1, t0, "k", 0, "a"), ok(1, 1)}, // this reply is lost
		{cmd(wire.OpPut, 99, 1, fast, "other", 0, "x"), ok(2, 2)},
		{retry, Result{Code: wire.CodeSessionUnknown, Index: 3}},
	})
	if v, _, _ := m.Get("k"); string(v) != "a" {
		t.Fatalf("k = %q: applied twice", v)
	}
}

// TestRetryAfterEviction: the same with the session evicted because the
// table was full.
func TestRetryAfterEviction(t *testing.T) {
	m := New(Options{MaxSessions: 2})
	runSteps(t, m, []step{
		{cmd(wire.OpAppend, 17, 1, 100, "k", 0, "a"), ok(1, 1)},
		{cmd(wire.OpAppend, 17, 2, 100, "k", 0, "b"), ok(2, 2)}, // this reply is lost
		{cmd(wire.OpPut, 18, 1, 100, "x", 0, ""), ok(3, 3)},
		{cmd(wire.OpPut, 19, 1, 100, "y", 0, ""), ok(4, 4)}, // evicts 17
	})
	got := m.Apply(5, cmd(wire.OpAppend, 17, 2, 100, "k", 0, "b"))
	if v, _, _ := m.Get("k"); string(v) != "ab" || got.Code == wire.CodeOK {
		t.Fatalf("retry after eviction: %+v, k = %q: applied twice", got, v)
	}
	if got != (Result{Code: wire.CodeSessionUnknown, Index: 5}) {
		t.Fatalf("retry = %+v, want SESSION_UNKNOWN", got)
	}
}

// TestSessionWindowBound: a client that never acknowledges keeps at most
// SessionWindow replies; retries within it are answered, older ones get
// wire.CodeAnswered.
func TestSessionWindowBound(t *testing.T) {
	m := New(Options{SessionWindow: 3})
	for seq := uint64(1); seq <= 5; seq++ {
		if r := m.Apply(seq, scmd(wire.OpPut, 7, seq, 1, false, "k", "v")); r != ok(seq, seq) {
			t.Fatalf("seq %d: %+v", seq, r)
		}
	}
	runSteps(t, m, []step{
		{scmd(wire.OpPut, 7, 3, 1, true, "k", "v"), ok(3, 3)},
		{scmd(wire.OpPut, 7, 5, 1, true, "k", "v"), ok(5, 5)},
		{scmd(wire.OpPut, 7, 2, 1, true, "k", "v"), Result{Code: wire.CodeAnswered, Index: 8}},
	})
	if n := len(m.sessions[7].replies); n != 3 {
		t.Fatalf("%d replies held, want 3", n)
	}
}

// TestDigestConcurrentReads: Digest runs under a read lock, next to other
// readers and other Digests (the race detector checks), and its cached
// value follows every Apply.
func TestDigestConcurrentReads(t *testing.T) {
	m := New(Options{})
	var mu sync.RWMutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.RLock()
				m.Digest()
				m.Get("k0")
				m.Clone()
				mu.RUnlock()
			}
		}()
	}
	var digests []string
	for i := range 200 {
		mu.Lock()
		m.Apply(m.Applied()+1, cmd(wire.OpAppend, uint64(i%3+1), uint64(i/3+1), int64(i), fmt.Sprintf("k%d", i%5), 0, "x"))
		mu.Unlock()
		mu.RLock()
		digests = append(digests, m.Digest())
		mu.RUnlock()
	}
	close(stop)
	wg.Wait()
	// Every Apply changed the digest, and the last one equals a
	// machine's that never had it cached.
	seen := map[string]bool{}
	for _, d := range digests {
		if seen[d] {
			t.Fatal("a digest repeated: the cache outlived an Apply")
		}
		seen[d] = true
	}
	fresh := m.Clone()
	rehashAll(fresh)
	if fresh.Digest() != digests[len(digests)-1] {
		t.Fatal("cached digest differs from a fresh one")
	}
}
