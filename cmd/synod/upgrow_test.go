package main

// This file checks how `synod up` follows the membership, in process: the
// test goroutine feeds upRun member lists and child exits as runUp's loop
// would; the children are `sleep` processes in a proc.Group, so no synod
// replica runs and nothing here waits on a clock.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"synod/internal/proc"
	"synod/wire/line"
)

// syncBuffer is a bytes.Buffer for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testUpRun is an upRun whose children are `sleep` processes, with what
// it prints and logs, and the specs it was asked to start.
type testUpRun struct {
	*upRun
	stdout, log *syncBuffer
	specs       []childSpec
}

func newTestUpRun(t *testing.T, grace time.Duration) *testUpRun {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	base, listen := freeBase(t, 8)
	cfg := upConfig{Nodes: 3, Dir: "data", Listen: listen, BasePort: base, Cluster: "c", Grace: grace, LogLevel: "info", LogFormat: "json"}
	group := proc.NewGroup()
	tr := &testUpRun{stdout: &syncBuffer{}, log: &syncBuffer{}}
	tr.upRun = newUpRun(cfg, group, "synod", nil, tr.stdout, zerolog.New(tr.log))
	tr.procSpec = func(spec childSpec) proc.Spec {
		tr.specs = append(tr.specs, spec)
		return proc.Spec{Name: spec.name, Path: sleep, Args: []string{"600"}}
	}
	t.Cleanup(func() {
		tr.close()
		group.Close(time.Second)
	})
	for _, spec := range cfg.children() {
		if err := tr.start(spec); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// list is a member list of replicas at up's ports, but for extra.
func (tr *testUpRun) list(slot uint64, ids []int, extra ...line.Member) memberNews {
	n := memberNews{slot: slot}
	for _, id := range ids {
		n.members = append(n.members, line.Member{ID: uint64(id), Addr: tr.cfg.replicaAddr(id), Voter: true})
	}
	n.members = append(n.members, extra...)
	return n
}

// exit kills replica id's child and hands its exit to the run.
func (tr *testUpRun) exit(t *testing.T, id int) {
	t.Helper()
	p := tr.byID[id]
	p.Kill()
	tr.takeExit(t, p)
}

// takeExit waits for p's exit report and hands it to the run.
func (tr *testUpRun) takeExit(t *testing.T, p *proc.Proc) {
	t.Helper()
	select {
	case got := <-tr.exited:
		if got != p {
			t.Fatalf("%s exited, want %s", got.Name, p.Name)
		}
		tr.childExited(got, time.Now())
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit report for %s", p.Name)
	}
}

func TestUpFollowsMembership(t *testing.T) {
	tr := newTestUpRun(t, time.Hour)
	tr.memberNews(tr.list(1, []int{1, 2, 3}), time.Now())
	if len(tr.byID) != 3 || tr.stdout.String() != "" {
		t.Fatalf("the first list of the running members changed something: %v\n%s", tr.byID, tr.stdout)
	}

	// 4 added: started, joining through replica 1. 6 lives elsewhere.
	other := line.Member{ID: 6, Addr: "10.0.0.6:7106"}
	tr.memberNews(tr.list(2, []int{1, 2, 3, 4}, other), time.Now())
	if tr.byID[4] == nil || !tr.byID[4].Running() {
		t.Fatalf("node4 not started")
	}
	last := tr.specs[len(tr.specs)-1]
	if want := tr.cfg.nodeSpec(4, tr.cfg.replicaAddr(1)); fmt.Sprint(last) != fmt.Sprint(want) {
		t.Fatalf("node4 started as %v, want %v", last, want)
	}
	out := tr.stdout.String()
	for _, want := range []string{
		fmt.Sprintf("member 4 added: starting node4 on %s (data in data/n4)\n", tr.cfg.replicaAddr(4)),
		"member 6 at 10.0.0.6:7106 is not on one of up's replica ports (127.0.0.1:<base-port>+id): run it yourself\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, out)
		}
	}

	// An older list (a lagging replica's) changes nothing; the same again
	// starts nothing twice and says nothing twice.
	tr.memberNews(tr.list(1, []int{1, 2, 3}), time.Now())
	tr.memberNews(tr.list(2, []int{1, 2, 3, 4}, other), time.Now())
	if strings.Contains(tr.stdout.String(), "removed") || strings.Count(tr.stdout.String(), "member 6") != 1 || len(tr.specs) != 5 {
		t.Fatalf("an older or repeated list acted:\n%s", tr.stdout)
	}

	// 1 removed: up says so, and its exit is no death. A member added now
	// joins through a running member, not the removed one.
	tr.memberNews(tr.list(3, []int{2, 3, 4}), time.Now())
	if !strings.Contains(tr.stdout.String(), "member 1 removed: node1 stops by itself (up stops it after --grace 1h0m0s if not)\n") {
		t.Fatalf("no removal line:\n%s", tr.stdout)
	}
	tr.exit(t, 1)
	if !strings.Contains(tr.stdout.String(), "node1 exited after its removal from the cluster\n") || strings.Contains(tr.log.String(), "DIED") {
		t.Fatalf("the removed child's exit:\n%s\n%s", tr.stdout, tr.log)
	}
	tr.memberNews(tr.list(4, []int{2, 3, 4, 5}), time.Now())
	if last := tr.specs[len(tr.specs)-1]; fmt.Sprint(last) != fmt.Sprint(tr.cfg.nodeSpec(5, tr.cfg.replicaAddr(2))) {
		t.Fatalf("node5 started as %v, want it to join through replica 2", last)
	}

	// A member that exits died.
	tr.exit(t, 3)
	if !strings.Contains(tr.log.String(), "!!! node3 DIED and will not be restarted") {
		t.Fatalf("a member's exit is not reported as a death:\n%s", tr.log)
	}
	// And it is not started again, though the list still names it.
	tr.memberNews(tr.list(5, []int{2, 3, 4, 5}), time.Now())
	if tr.byID[3].Running() || len(tr.specs) != 6 {
		t.Fatalf("a dead member was restarted")
	}
}

// TestUpStopsARemovedReplicaAfterGrace: a removed replica that does not
// exit by itself is stopped once the grace is over.
func TestUpStopsARemovedReplicaAfterGrace(t *testing.T) {
	tr := newTestUpRun(t, 10*time.Millisecond)
	tr.memberNews(tr.list(1, []int{1, 2, 3}), time.Now())
	tr.memberNews(tr.list(2, []int{1, 2}), time.Now())
	tr.takeExit(t, tr.byID[3]) // sleep 600 does not exit by itself
	if !strings.Contains(tr.log.String(), "still running after its removal: stopping it") ||
		!strings.Contains(tr.stdout.String(), "node3 exited after its removal from the cluster") || strings.Contains(tr.log.String(), "DIED") {
		t.Fatalf("stdout:\n%s\nlog:\n%s", tr.stdout, tr.log)
	}
}

// TestUpJudgesExitsByTheMemberList: a replica that exits before up knows
// the membership (one removed before this up started) is judged once the
// list comes; without membership support every exit is a death.
func TestUpJudgesExitsByTheMemberList(t *testing.T) {
	tr := newTestUpRun(t, time.Hour)
	tr.exit(t, 3)
	if tr.stdout.String() != "" || strings.Contains(tr.log.String(), "DIED") {
		t.Fatalf("judged before the member list came:\n%s\n%s", tr.stdout, tr.log)
	}
	tr.settle(time.Now()) // before the wait is over: still pending
	tr.memberNews(tr.list(7, []int{1, 2}), time.Now())
	if !strings.Contains(tr.stdout.String(), "node3 exited: it is not a member of the cluster (it was removed)\n") || strings.Contains(tr.log.String(), "DIED") {
		t.Fatalf("stdout:\n%s\nlog:\n%s", tr.stdout, tr.log)
	}

	tr2 := newTestUpRun(t, time.Hour)
	tr2.exit(t, 2)
	tr2.settle(time.Now().Add(pendingExitWait))
	if !strings.Contains(tr2.log.String(), "!!! node2 DIED") {
		t.Fatalf("no death after the wait:\n%s", tr2.log)
	}
	tr3 := newTestUpRun(t, time.Hour)
	tr3.exit(t, 1)
	tr3.memberNews(memberNews{unsupported: true}, time.Now())
	if !strings.Contains(tr3.log.String(), "!!! node1 DIED") {
		t.Fatalf("no death when the replicas have no membership:\n%s", tr3.log)
	}
}

// TestWatchMembers: the watcher sends the first member list and then only
// newer ones; an older list, as a lagging replica answers, is dropped.
func TestWatchMembers(t *testing.T) {
	s := startFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	news := make(chan memberNews)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchMembers(ctx, s.addr(), time.Millisecond, news)
	}()
	defer func() {
		cancel()
		<-done
	}()
	recv := func() memberNews {
		t.Helper()
		select {
		case n := <-news:
			return n
		case <-time.After(30 * time.Second):
			t.Fatal("no news")
			return memberNews{}
		}
	}
	asked := func() int {
		n := 0
		for _, r := range s.requests() {
			if r == "MEMBER LIST" {
				n++
			}
		}
		return n
	}
	if n := recv(); n.slot != 1 || len(n.members) != 3 || n.unsupported {
		t.Fatalf("first news %+v", n)
	}
	s.mu.Lock()
	s.slot, s.members = 0, s.members[:1] // older than what was sent
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for before := asked(); asked() < before+3; {
		if time.Now().After(deadline) {
			t.Fatal("the watcher stopped asking")
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	s.slot = 2
	s.mu.Unlock()
	if n := recv(); n.slot != 2 || len(n.members) != 1 {
		t.Fatalf("news after the older list %+v, want slot 2", n)
	}
	s.mu.Lock()
	s.noMembers = true
	s.mu.Unlock()
	if n := recv(); !n.unsupported {
		t.Fatalf("news from replicas without membership %+v", n)
	}
}
