package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"synod/wire"
)

func cmd(op wire.Op, client, seq uint64, stamp int64, key string, version uint64, value string) []byte {
	return EncodeCommand(nil, Command{Op: op, ClientID: client, Seq: seq, Stamp: stamp, Key: key, Version: version, Value: []byte(value)})
}

// scmd is a session command with its ack and retry mark.
func scmd(op wire.Op, client, seq, ack uint64, retry bool, key, value string) []byte {
	return EncodeCommand(nil, Command{Op: op, ClientID: client, Seq: seq, Ack: ack, Retry: retry, Stamp: 1, Key: key, Value: []byte(value)})
}

// Anonymous (client 0) commands at stamp 0, for tests about file semantics.
func put(key, value string) []byte                  { return cmd(wire.OpPut, 0, 0, 0, key, 0, value) }
func app(key, value string) []byte                  { return cmd(wire.OpAppend, 0, 0, 0, key, 0, value) }
func cas(key string, v uint64, value string) []byte { return cmd(wire.OpCAS, 0, 0, 0, key, v, value) }
func del(key string) []byte                         { return cmd(wire.OpDel, 0, 0, 0, key, 0, "") }

type fileWant struct {
	value   string
	version uint64
}

type step struct {
	cmd  []byte
	want Result
}

func ok(index, version uint64) Result {
	return Result{Code: wire.CodeOK, Index: index, Version: version}
}

// runSteps applies steps at indices 1, 2, ... and checks every result.
func runSteps(t *testing.T, m *Machine, steps []step) {
	t.Helper()
	for i, s := range steps {
		index := m.Applied() + 1
		got := m.Apply(index, s.cmd)
		if (got.Err != nil) != (got.Code == wire.CodeBadRequest) {
			t.Fatalf("step %d (%q): Err %v with code %v", i, s.cmd, got.Err, got.Code)
		}
		want := s.want.Err
		if want == nil {
			want = ErrBadCommand
		}
		if got.Code == wire.CodeBadRequest && !errors.Is(got.Err, want) {
			t.Fatalf("step %d (%q): Err %v does not wrap %v", i, s.cmd, got.Err, want)
		}
		got.Err, s.want.Err = nil, nil
		if got != s.want {
			t.Fatalf("step %d (%q): Apply(%d) = %+v, want %+v", i, s.cmd, index, got, s.want)
		}
	}
}

func checkFiles(t *testing.T, m *Machine, files map[string]fileWant) {
	t.Helper()
	for key, w := range files {
		v, ver, found := m.Get(key)
		size, sver, sfound := m.Stat(key)
		if !found || string(v) != w.value || ver != w.version {
			t.Errorf("Get(%q) = %q, %d, %v; want %q, %d", key, v, ver, found, w.value, w.version)
		}
		if !sfound || size != uint64(len(w.value)) || sver != w.version {
			t.Errorf("Stat(%q) = %d, %d, %v; want %d, %d", key, size, sver, sfound, len(w.value), w.version)
		}
	}
	if m.Len() != len(files) {
		t.Errorf("Len() = %d, want %d (keys %q)", m.Len(), len(files), m.List("", 0))
	}
	var total int64
	for _, w := range files {
		total += int64(len(w.value))
	}
	if m.ValueBytes() != total {
		t.Errorf("ValueBytes() = %d, want %d", m.ValueBytes(), total)
	}
}

func TestApplySemantics(t *testing.T) {
	big := strings.Repeat("x", 9) // MaxValue is 8 below
	tests := []struct {
		name  string
		steps []step
		files map[string]fileWant
	}{
		{"put creates and replaces", []step{
			{put("a", "one"), ok(1, 1)},
			{put("b", ""), ok(2, 2)},
			{put("a", "two"), ok(3, 3)},
		}, map[string]fileWant{"a": {"two", 3}, "b": {"", 2}}},
		{"append creates then appends", []step{
			{app("log", "ab"), ok(1, 1)},
			{app("log", " cd"), ok(2, 2)},
			{app("log", ""), ok(3, 3)},
		}, map[string]fileWant{"log": {"ab cd", 3}}},
		{"cas", []step{
			{cas("k", 0, "new"), ok(1, 1)},
			{cas("k", 0, "again"), Result{Code: wire.CodeConflict, Index: 2, Version: 1}},
			{cas("k", 2, "wrong"), Result{Code: wire.CodeConflict, Index: 3, Version: 1}},
			{cas("k", 1, "swapped"), ok(4, 4)},
			{cas("gone", 4, "x"), Result{Code: wire.CodeConflict, Index: 5, Version: 0}},
		}, map[string]fileWant{"k": {"swapped", 4}}},
		{"del", []step{
			{del("a"), Result{Code: wire.CodeNotFound, Index: 1}},
			{put("a", "v"), ok(2, 2)},
			{del("a"), ok(3, 0)},
			{del("a"), Result{Code: wire.CodeNotFound, Index: 4}},
			{cas("a", 0, "back"), ok(5, 5)},
		}, map[string]fileWant{"a": {"back", 5}}},
		{"too large", []step{
			{put("a", big), Result{Code: wire.CodeTooLarge, Index: 1}},
			{app("a", big), Result{Code: wire.CodeTooLarge, Index: 2}},
			{put("a", "12345678"), ok(3, 3)},
			{app("a", "9"), Result{Code: wire.CodeTooLarge, Index: 4, Version: 3}},
			{put("a", big), Result{Code: wire.CodeTooLarge, Index: 5, Version: 3}},
			{cas("a", 3, big), Result{Code: wire.CodeTooLarge, Index: 6, Version: 3}},
			{put("b", "1234"), ok(7, 7)},
			{app("b", "5678"), ok(8, 8)},
		}, map[string]fileWant{"a": {"12345678", 3}, "b": {"12345678", 8}}},
		{"bad commands change nothing but the index", []step{
			{put("a", "v"), ok(1, 1)},
			{[]byte("put a v"), Result{Code: wire.CodeBadRequest, Index: 2}},
			{[]byte(""), Result{Code: wire.CodeBadRequest, Index: 3}},
			{[]byte("del 1 1 1 bad key"), Result{Code: wire.CodeBadRequest, Index: 4}},
			{[]byte("\x00\xff"), Result{Code: wire.CodeBadRequest, Index: 5}},
			{put("b", "w"), ok(6, 6)},
		}, map[string]fileWant{"a": {"v", 1}, "b": {"w", 6}}},
		{"retry gets the cached reply and applies once", []step{
			{cmd(wire.OpAppend, 7, 1, 10, "k", 0, "x"), ok(1, 1)},
			{cmd(wire.OpAppend, 7, 1, 11, "k", 0, "x"), ok(1, 1)},
			{cmd(wire.OpAppend, 7, 2, 12, "k", 0, "y"), ok(3, 3)},
			{cmd(wire.OpAppend, 7, 2, 13, "k", 0, "y"), ok(3, 3)},
			// Seq 2 acknowledged seq 1's reply (Ack 0 means Seq).
			{cmd(wire.OpAppend, 7, 1, 14, "k", 0, "x"), Result{Code: wire.CodeAnswered, Index: 5}},
			{cmd(wire.OpAppend, 8, 1, 15, "k", 0, "z"), ok(6, 6)}, // other client, same seq
		}, map[string]fileWant{"k": {"xyz", 6}}},
		{"the window answers a pipeline's retries", []step{
			{scmd(wire.OpAppend, 7, 1, 1, false, "k", "a"), ok(1, 1)},
			{scmd(wire.OpAppend, 7, 2, 1, false, "k", "b"), ok(2, 2)},
			{scmd(wire.OpAppend, 7, 3, 1, false, "k", "c"), ok(3, 3)},
			{scmd(wire.OpAppend, 7, 1, 1, true, "k", "a"), ok(1, 1)},
			{scmd(wire.OpAppend, 7, 2, 1, true, "k", "b"), ok(2, 2)},
			{scmd(wire.OpAppend, 7, 3, 1, true, "k", "c"), ok(3, 3)},
			{scmd(wire.OpAppend, 7, 4, 3, false, "k", "d"), ok(7, 7)},
			{scmd(wire.OpAppend, 7, 3, 3, true, "k", "c"), ok(3, 3)},
			{scmd(wire.OpAppend, 7, 2, 2, true, "k", "b"), Result{Code: wire.CodeAnswered, Index: 9}},
		}, map[string]fileWant{"k": {"abcd", 7}}},
		{"a later seq waits for the earlier one", []step{
			{scmd(wire.OpPut, 7, 1, 1, false, "k", "a"), ok(1, 1)},
			{scmd(wire.OpDel, 7, 3, 2, false, "k", ""), Result{Code: wire.CodeOutOfOrder, Index: 2}},
			{scmd(wire.OpCAS, 7, 4, 2, false, "k", "c"), Result{Code: wire.CodeOutOfOrder, Index: 3}},
			{scmd(wire.OpPut, 7, 2, 2, false, "k", "b"), ok(4, 4)},
			{scmd(wire.OpDel, 7, 3, 2, true, "k", ""), ok(5, 0)},
			{cmd(wire.OpCAS, 7, 4, 1, "k", 0, "c"), ok(6, 6)}, // no false CONFLICT
		}, map[string]fileWant{"k": {"c", 6}}},
		{"only seq 1, not a retry, starts a session", []step{
			{scmd(wire.OpPut, 7, 2, 2, false, "k", "b"), Result{Code: wire.CodeSessionUnknown, Index: 1}},
			{scmd(wire.OpPut, 7, 1, 1, true, "k", "a"), Result{Code: wire.CodeSessionUnknown, Index: 2}},
			{scmd(wire.OpPut, 7, 1, 1, false, "k", "a"), ok(3, 3)},
			{scmd(wire.OpPut, 7, 1, 1, true, "k", "a"), ok(3, 3)},
			{scmd(wire.OpPut, 7, 2, 2, false, "k", "b"), ok(5, 5)},
		}, map[string]fileWant{"k": {"b", 5}}},
		{"a retry does not see later writes", []step{
			{cmd(wire.OpCAS, 7, 1, 1, "k", 0, "a"), ok(1, 1)},
			{put("k", "b"), ok(2, 2)},
			{cmd(wire.OpCAS, 7, 1, 1, "k", 0, "a"), ok(1, 1)}, // not a Conflict
			{cmd(wire.OpDel, 7, 2, 1, "nope", 0, ""), Result{Code: wire.CodeNotFound, Index: 4}},
			{put("nope", "now"), ok(5, 5)},
			{cmd(wire.OpDel, 7, 2, 1, "nope", 0, ""), Result{Code: wire.CodeNotFound, Index: 4}},
			{cmd(wire.OpCAS, 7, 3, 1, "k", 9, "c"), Result{Code: wire.CodeConflict, Index: 7, Version: 2}},
			{cmd(wire.OpCAS, 7, 3, 1, "k", 2, "c"), Result{Code: wire.CodeConflict, Index: 7, Version: 2}},
			{cmd(wire.OpPut, 7, 4, 1, "big", 0, big), Result{Code: wire.CodeTooLarge, Index: 9}},
			{cmd(wire.OpPut, 7, 4, 1, "big", 0, "fits"), Result{Code: wire.CodeTooLarge, Index: 9}},
		}, map[string]fileWant{"k": {"b", 2}, "nope": {"now", 5}}},
		{"client 0 is not deduplicated", []step{
			{cmd(wire.OpAppend, 0, 1, 1, "k", 0, "x"), ok(1, 1)},
			{cmd(wire.OpAppend, 0, 1, 1, "k", 0, "x"), ok(2, 2)},
			{cmd(wire.OpAppend, 0, 0, 1, "k", 0, "x"), ok(3, 3)},
		}, map[string]fileWant{"k": {"xxx", 3}}},
		// Version 1 commands, as old logs hold them, replay by the rule
		// they were applied under.
		{"version 1: seqs need not be contiguous", []step{
			{[]byte("put 3 10 1 k a"), ok(1, 1)},
			{[]byte("put 3 20 1 k b"), ok(2, 2)},
			{[]byte("put 3 15 1 k c"), Result{Code: wire.CodeBadRequest, Index: 3, Err: ErrStale}},
			{[]byte("put 3 20 1 k b"), ok(2, 2)},
			{[]byte("put 3 21 1 k c"), ok(5, 5)},
			{scmd(wire.OpPut, 3, 22, 21, false, "k", "d"), ok(6, 6)}, // the session goes on in order
		}, map[string]fileWant{"k": {"d", 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{MaxValue: 8})
			runSteps(t, m, tt.steps)
			checkFiles(t, m, tt.files)
			if m.Applied() != uint64(len(tt.steps)) {
				t.Errorf("Applied() = %d, want %d", m.Applied(), len(tt.steps))
			}
		})
	}
}

func TestApplyOutOfOrderPanics(t *testing.T) {
	for _, index := range []uint64{0, 1, 3} {
		m := New(Options{})
		m.Apply(1, put("a", "b"))
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Apply(%d) after 1 did not panic", index)
				}
			}()
			m.Apply(index, put("a", "c"))
		}()
	}
}

func TestGetValueIsStable(t *testing.T) {
	m := New(Options{})
	m.Apply(1, put("k", "abc"))
	v1, _, _ := m.Get("k")
	m.Apply(2, app("k", "def"))
	v2, _, _ := m.Get("k")
	m.Apply(3, app("k", "ghi"))
	m.Apply(4, put("k", "zzz"))
	if string(v1) != "abc" || string(v2) != "abcdef" {
		t.Fatalf("earlier Get results changed: %q %q", v1, v2)
	}
	// Appending to a returned slice must not write into the machine.
	_ = append(v2, "XXX"...)
	m.Apply(5, put("j", "abcdef"))
	m.Apply(6, app("j", "ghi"))
	if v, _, _ := m.Get("j"); string(v) != "abcdefghi" {
		t.Fatalf("Get = %q", v)
	}
}

func TestList(t *testing.T) {
	m := New(Options{})
	keys := []string{"docs/a", "docs/b", "docs/b/c", "docs0", "doc", "img/x", "z", "é"}
	for i, k := range keys {
		m.Apply(uint64(i+1), put(k, "v"))
	}
	m.Apply(uint64(len(keys)+1), del("docs/b"))
	tests := []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"", 0, []string{"doc", "docs/a", "docs/b/c", "docs0", "img/x", "z", "é"}},
		{"docs/", 0, []string{"docs/a", "docs/b/c"}},
		{"doc", 0, []string{"doc", "docs/a", "docs/b/c", "docs0"}},
		{"doc", 2, []string{"doc", "docs/a"}},
		{"docs/b", 0, []string{"docs/b/c"}},
		{"docs/a", 0, []string{"docs/a"}},
		{"a", 0, nil},
		{"zz", 0, nil},
		{"é", 0, []string{"é"}},
		{"", 1, []string{"doc"}},
	}
	for _, tt := range tests {
		if got := m.List(tt.prefix, tt.limit); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q, %d) = %q, want %q", tt.prefix, tt.limit, got, tt.want)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	m := New(Options{SessionTTL: time.Second})
	runSteps(t, m, []step{
		{cmd(wire.OpAppend, 1, 1, 1000, "k", 0, "a"), ok(1, 1)},
		{cmd(wire.OpAppend, 2, 1, 2000, "k", 0, "b"), ok(2, 2)},
		// Exactly TTL later the session is still alive.
		{cmd(wire.OpAppend, 1, 1, 2000, "k", 0, "a"), ok(1, 1)},
		// A stamp from a slower clock does not move log time back.
		{cmd(wire.OpPut, 0, 0, 500, "t", 0, ""), ok(4, 4)},
		{cmd(wire.OpPut, 0, 0, 3001, "t", 0, ""), ok(5, 5)},
	})
	// Client 1 was last active at 2000 (its retry counts as activity):
	// alive at 3000, gone at 3001, as is client 2.
	if m.Sessions() != 0 {
		t.Fatalf("Sessions() = %d after both expired", m.Sessions())
	}
	runSteps(t, m, []step{
		// With the session gone a retry is refused: its first attempt
		// may have been applied, as this one was.
		{EncodeCommand(nil, Command{Op: wire.OpAppend, ClientID: 1, Seq: 1, Retry: true, Stamp: 3001, Key: "k", Value: []byte("a")}),
			Result{Code: wire.CodeSessionUnknown, Index: 6}},
		// A first attempt of seq 1 starts a new session.
		{cmd(wire.OpAppend, 1, 1, 3001, "k", 0, "a"), ok(7, 7)},
	})
	if v, _, _ := m.Get("k"); string(v) != "aba" || m.Sessions() != 1 {
		t.Fatalf("k = %q", v)
	}
	if m.LogTime() != 3001 {
		t.Fatalf("LogTime() = %d", m.LogTime())
	}
}

func TestSessionEviction(t *testing.T) {
	tests := []struct {
		name    string
		steps   []step
		evicted uint64
	}{
		// Same activity time: the lowest client id goes first.
		{"tie broken by client id", []step{
			{cmd(wire.OpPut, 5, 1, 100, "k", 0, ""), ok(1, 1)},
			{cmd(wire.OpPut, 3, 1, 100, "k", 0, ""), ok(2, 2)},
			{cmd(wire.OpPut, 9, 1, 100, "k", 0, ""), ok(3, 3)},
		}, 3},
		{"least recently active goes", []step{
			{cmd(wire.OpPut, 5, 1, 100, "k", 0, ""), ok(1, 1)},
			{cmd(wire.OpPut, 3, 1, 200, "k", 0, ""), ok(2, 2)},
			{cmd(wire.OpPut, 9, 1, 300, "k", 0, ""), ok(3, 3)},
		}, 5},
		{"a retry counts as activity", []step{
			{cmd(wire.OpPut, 5, 1, 100, "k", 0, ""), ok(1, 1)},
			{cmd(wire.OpPut, 3, 1, 200, "k", 0, ""), ok(2, 2)},
			{cmd(wire.OpPut, 5, 1, 300, "k", 0, ""), ok(1, 1)},
			{cmd(wire.OpPut, 9, 1, 300, "k", 0, ""), ok(4, 4)},
		}, 3},
		{"the new session survives a tie it would lose", []step{
			{cmd(wire.OpPut, 5, 1, 100, "k", 0, ""), ok(1, 1)},
			{cmd(wire.OpPut, 3, 1, 100, "k", 0, ""), ok(2, 2)},
			{cmd(wire.OpPut, 1, 1, 100, "k", 0, ""), ok(3, 3)},
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{MaxSessions: 2})
			runSteps(t, m, tt.steps)
			if m.Sessions() != 2 {
				t.Fatalf("Sessions() = %d, want 2", m.Sessions())
			}
			if _, ok := m.sessions[tt.evicted]; ok {
				t.Fatalf("client %d not evicted; sessions %v", tt.evicted, m.sessions)
			}
		})
	}
}

// genOptions are small limits so random runs expire and evict sessions and
// hit TooLarge often.
var genOptions = Options{MaxValue: 48, SessionTTL: 40 * time.Millisecond, MaxSessions: 6}

// genCommands returns n random commands: every op, conflicts, sessions
// that go on in order, retries (marked or not) of recent and of older
// seqs, writes out of order, acks that forget replies, sessions abandoned
// for new ones, version 1 commands, stamps that sometimes go backwards,
// binary values, oversized values and undecodable commands.
func genCommands(rng *rand.Rand, n int) [][]byte {
	var out [][]byte
	type gen struct {
		id, seq, ack uint64
		sent         [][]byte // by seq-1
	}
	clients := map[uint64]*gen{}
	nextID := uint64(100)
	stamp := int64(1_700_000_000_000)
	for range n {
		if rng.IntN(40) == 0 {
			out = append(out, []byte(fmt.Sprintf("garbage %d", rng.Int())))
			continue
		}
		slot := uint64(rng.IntN(10))
		g := clients[slot]
		if slot != 0 && (g == nil || rng.IntN(12) == 0) {
			nextID++
			g = &gen{id: nextID, ack: 1}
			clients[slot] = g
		}
		if g != nil && g.seq > 0 && rng.IntN(6) == 0 {
			// A retry of a recent write, as sent before.
			back := min(uint64(rng.IntN(4)), g.seq-1)
			out = append(out, g.sent[g.seq-1-back])
			continue
		}
		stamp += int64(rng.IntN(8)) - 2
		c := Command{
			Op:      wire.Op(1 + rng.IntN(4)),
			Stamp:   stamp,
			Key:     fmt.Sprintf("k%d/%d", rng.IntN(3), rng.IntN(6)),
			Version: uint64(rng.IntN(n + 1)),
		}
		if c.Op != wire.OpDel {
			c.Value = make([]byte, rng.IntN(genOptions.MaxValue/2+8))
			for i := range c.Value {
				c.Value[i] = byte(rng.IntN(256))
			}
		}
		if g == nil {
			out = append(out, EncodeCommand(nil, c))
			continue
		}
		g.seq++
		if rng.IntN(3) == 0 {
			g.ack = min(g.seq, g.ack+uint64(rng.IntN(4)))
		}
		c.ClientID, c.Seq, c.Ack = g.id, g.seq, g.ack
		c.Retry = g.seq > 1 && rng.IntN(10) == 0
		switch rng.IntN(30) {
		case 0:
			c.Seq++ // out of order
		case 1:
			c.Legacy = g.seq > 1
		}
		b := EncodeCommand(nil, c)
		g.sent = append(g.sent, b)
		out = append(out, b)
	}
	return out
}

func applyAll(m *Machine, cmds [][]byte) []Result {
	var rs []Result
	for _, c := range cmds {
		rs = append(rs, m.Apply(m.Applied()+1, c))
	}
	return rs
}

func TestDeterminism(t *testing.T) {
	for seed := range uint64(20) {
		cmds := genCommands(rand.New(rand.NewPCG(seed, 1)), 600)
		a, b := New(genOptions), New(genOptions)
		// a takes digests all along, b only at the end: the lazy
		// bookkeeping must not depend on when Digest is called.
		for _, c := range cmds {
			a.Apply(a.Applied()+1, c)
			a.Digest()
		}
		applyAll(b, cmds)
		if a.Digest() != b.Digest() {
			t.Fatalf("seed %d: digests differ for the same commands", seed)
		}
		// The lazily maintained digest equals one computed from scratch.
		fresh := b.Clone()
		rehashAll(fresh)
		if fresh.Digest() != b.Digest() {
			t.Fatalf("seed %d: incremental digest differs from a full recomputation", seed)
		}
		// The same sequence with one value changed gives another digest.
		changed := slices.Clone(cmds)
		changed = append(changed, put("k0/0", "x"))
		c := New(genOptions)
		applyAll(c, changed[:len(cmds)])
		b.Apply(b.Applied()+1, put("k0/0", "y"))
		c.Apply(c.Applied()+1, put("k0/0", "x"))
		if c.Digest() == b.Digest() {
			t.Fatalf("seed %d: different states, same digest", seed)
		}
		if a.Sessions() == 0 || a.Len() == 0 {
			t.Fatalf("seed %d: generator produced an empty state", seed)
		}
	}
}

// TestDigestCoversEverything changes one thing at a time.
func TestDigestCoversEverything(t *testing.T) {
	base := func() *Machine {
		m := New(Options{})
		m.Apply(1, cmd(wire.OpPut, 7, 1, 100, "a", 0, "v"))
		return m
	}
	ref := base().Digest()
	variants := map[string][][]byte{
		"value":        {cmd(wire.OpPut, 7, 1, 100, "a", 0, "w")},
		"key":          {cmd(wire.OpPut, 7, 1, 100, "b", 0, "v")},
		"version":      {[]byte("garbage"), cmd(wire.OpPut, 7, 1, 100, "a", 0, "v")},
		"session id":   {cmd(wire.OpPut, 8, 1, 100, "a", 0, "v")},
		"session seq":  {EncodeCommand(nil, Command{Op: wire.OpPut, ClientID: 7, Seq: 2, Legacy: true, Stamp: 100, Key: "a", Value: []byte("v")})},
		"window":       {scmd(wire.OpPut, 7, 1, 1, false, "a", "v"), scmd(wire.OpPut, 7, 2, 1, false, "a", "v")},
		"acked window": {scmd(wire.OpPut, 7, 1, 1, false, "a", "v"), scmd(wire.OpPut, 7, 2, 2, false, "a", "v")},
		"log time":     {cmd(wire.OpPut, 7, 1, 101, "a", 0, "v")},
		"no session":   {cmd(wire.OpPut, 0, 1, 100, "a", 0, "v")},
		"applied only": {cmd(wire.OpPut, 7, 1, 100, "a", 0, "v"), []byte("garbage")},
	}
	seen := map[string]string{ref: "base"}
	for name, cmds := range variants {
		m := New(Options{})
		applyAll(m, cmds)
		d := m.Digest()
		if other, dup := seen[d]; dup {
			t.Errorf("variant %q has the same digest as %q", name, other)
		}
		seen[d] = name
	}
	// The same state reached by different paths has the same digest:
	// a deleted file leaves no trace.
	m, n := New(Options{}), New(Options{})
	applyAll(m, [][]byte{put("x", "1"), app("x", "2"), del("x"), put("a", "v")})
	applyAll(n, [][]byte{[]byte("garbage"), put("y", ""), del("y"), put("a", "v")})
	if m.Digest() != n.Digest() {
		t.Errorf("equal states, different digests")
	}
}

// rehashAll forgets every cached contribution, so the next Digest computes
// everything from scratch.
func rehashAll(m *Machine) {
	m.digestValid = false
	m.sum = digestSum{}
	m.dirtyFiles.list = m.dirtyFiles.list[:0]
	m.dirtySessions.list = m.dirtySessions.list[:0]
	for _, f := range m.files {
		f.tracked = tracked{}
		m.dirtyFiles.mark(f)
	}
	for _, s := range m.sessions {
		s.tracked = tracked{}
		m.dirtySessions.mark(s)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	cmds := genCommands(rand.New(rand.NewPCG(7, 7)), 400)
	m := New(genOptions)
	applyAll(m, cmds[:200])
	c := m.Clone()
	if c.Digest() != m.Digest() {
		t.Fatal("clone digest differs")
	}
	ref := New(genOptions)
	applyAll(ref, cmds[:200])
	// Diverge: both keep applying different suffixes, then compare with
	// machines that never shared anything.
	applyAll(m, cmds[200:])
	other := genCommands(rand.New(rand.NewPCG(8, 8)), 200)
	applyAll(c, other)
	applyAll(ref, other)
	full := New(genOptions)
	applyAll(full, cmds)
	if m.Digest() != full.Digest() {
		t.Fatal("original changed by its clone")
	}
	if c.Digest() != ref.Digest() {
		t.Fatal("clone changed by its original")
	}
	for _, k := range ref.List("", 0) {
		a, _, _ := ref.Get(k)
		b, _, _ := c.Get(k)
		if !bytes.Equal(a, b) {
			t.Fatalf("clone value of %q = %q, want %q", k, b, a)
		}
	}
}

func TestOptions(t *testing.T) {
	bad := []Options{
		{MaxValue: -1},
		{MaxValue: MaxValueLimit + 1},
		{SessionTTL: -time.Second},
		{MaxSessions: -1},
		{SessionWindow: -1},
		{SessionWindow: MaxSessionWindow + 1},
	}
	for _, o := range bad {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v.Validate() = %v, want ErrInvalidOptions", o, err)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero Options invalid: %v", err)
	}
	if got := New(Options{}).Options(); got != DefaultOptions() {
		t.Errorf("New(Options{}).Options() = %+v, want defaults %+v", got, DefaultOptions())
	}
}
