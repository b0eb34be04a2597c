package target

import (
	"context"
	"net"
	"sync"
	"testing"

	"synod/wire"
)

// sessionMaster is a wire server that says it is master and keeps one
// session table the way a replica does: a client's writes apply only in
// seq order. Its answers to the first writes are scripted.
type sessionMaster struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	next   map[uint64]uint64 // client id -> the seq it may apply next
	script []scripted        // answers to the first writes
}

// scripted is a scripted answer, and whether the write applied.
type scripted struct {
	rep     wire.Reply
	applied bool
}

func startSessionMaster(t *testing.T, script ...scripted) *sessionMaster {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &sessionMaster{ln: ln, next: map[uint64]uint64{}, script: script}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c, _, err := wire.Accept(nc, wire.Hello{ClusterID: "c", NodeID: 1, Role: wire.RoleReplica}, nil, wire.Options{})
			if err != nil {
				continue
			}
			m.wg.Add(1)
			go m.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); m.wg.Wait() })
	return m
}

func (m *sessionMaster) serve(c *wire.Conn) {
	defer m.wg.Done()
	defer c.Close()
	for {
		env, err := c.Recv()
		if err != nil {
			return
		}
		var rep any
		switch env.Kind {
		case wire.KindStatus:
			rep = &wire.Status{ID: 1, Role: wire.NodeMaster, MasterID: 1, MasterAddr: m.ln.Addr().String()}
			if c.Send(wire.KindStatusReply, env.ID, rep) != nil || c.Flush() != nil {
				return
			}
			continue
		case wire.KindRequest:
			var req wire.Request
			if env.Decode(&req) != nil {
				return
			}
			rep = m.answer(req)
		default:
			return
		}
		if c.Send(wire.KindReply, env.ID, rep) != nil || c.Flush() != nil {
			return
		}
	}
}

func (m *sessionMaster) answer(req wire.Request) *wire.Reply {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := max(m.next[req.ClientID], 1)
	if len(m.script) > 0 {
		sc := m.script[0]
		m.script = m.script[1:]
		if sc.applied && req.Seq == want {
			m.next[req.ClientID] = want + 1
		}
		return &sc.rep
	}
	if req.Seq != want {
		return &wire.Reply{Code: wire.CodeOutOfOrder, NotApplied: true, Msg: "seq gap"}
	}
	m.next[req.ClientID] = want + 1
	return &wire.Reply{Code: wire.CodeOK, Index: want}
}

// TestDirectSeqsAfterRefusals: a write refused before it applied gives its
// seq back, and one whose outcome is unknown moves the connection to a
// fresh identity; either way the next writes apply, none is out of order.
func TestDirectSeqsAfterRefusals(t *testing.T) {
	tests := []struct {
		name  string
		first scripted
	}{
		{"busy, not applied", scripted{rep: wire.Reply{Code: wire.CodeBusy, NotApplied: true}}},
		{"too large, not applied", scripted{rep: wire.Reply{Code: wire.CodeTooLarge, NotApplied: true}}},
		{"timeout that applied", scripted{rep: wire.Reply{Code: wire.CodeTimeout}, applied: true}},
		{"unavailable that did not apply, outcome unknown", scripted{rep: wire.Reply{Code: wire.CodeUnavailable}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startSessionMaster(t, tt.first)
			tg, err := NewDirect([]string{m.ln.Addr().String()}, "c", "linearizable")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			cn, err := tg.Connect(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			if err := cn.Put(ctx, "k", []byte("v")); err == nil {
				t.Fatal("the scripted refusal came back OK")
			}
			for i := range 3 {
				if err := cn.Put(ctx, "k", []byte("v")); err != nil {
					t.Fatalf("write %d after the refusal: %v", i+1, err)
				}
			}
		})
	}
}
