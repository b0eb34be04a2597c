package main

// This file owns how `synod up` follows the cluster's membership while it
// runs: a watcher goroutine (watchMembers) asks up's own proxy for the
// member list every second; the command's goroutine, in runUp's loop,
// takes each newer list in (upRun.members), starts a child for a member
// added at one of up's ports, lets a removed member's child exit by itself
// (stopping it after --grace if it does not), and tells such exits from a
// child that died. One goroutine per child waits for its exit; one per
// removed child waits out its grace.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"synod/internal/proc"
	"synod/wire/line"
)

// memberPoll is how often up asks its proxy for the member list.
const memberPoll = time.Second

// pendingExitWait is how long up waits for a member list to tell whether a
// replica that exited was still a member (it died) or not (it was removed
// before up started it, and exited by itself).
const pendingExitWait = 10 * time.Second

// memberNews is one member list the watcher got from the proxy, newer than
// the last one it sent; unsupported means the replicas answer MEMBER LIST
// with BAD_REQUEST (a version without membership changes).
type memberNews struct {
	members     []line.Member
	slot        uint64
	unsupported bool
}

// watchMembers asks the proxy at addr for the member list every `every`
// and sends each list whose configuration slot is higher than the last
// one sent (a lagging replica's older list is dropped), until ctx ends.
func watchMembers(ctx context.Context, addr string, every time.Duration, out chan<- memberNews) {
	watchMembersVia(ctx, addr, plainDial, every, out)
}

// watchMembersVia is watchMembers connecting with dial.
func watchMembersVia(ctx context.Context, addr string, dial upDialer, every time.Duration, out chan<- memberNews) {
	var cl *line.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	var last uint64
	sent, toldUnsupported := false, false
	send := func(n memberNews) bool {
		select {
		case out <- n:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		if cl == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			cl, _ = dial(dctx, addr)
			cancel()
		}
		if cl != nil {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			members, slot, err := cl.Members(rctx)
			cancel()
			var se *line.ServerError
			switch {
			case err == nil && len(members) > 0 && (!sent || slot > last):
				if !send(memberNews{members: members, slot: slot}) {
					return
				}
				sent, last = true, slot
			case errors.Is(err, line.ErrBadRequest) && !toldUnsupported:
				if !send(memberNews{unsupported: true}) {
					return
				}
				toldUnsupported = true
			case err != nil && !errors.As(err, &se):
				cl.Close() // the connection is unusable: dial again
				cl = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// upRun is the state of one `synod up` run: its children and what the
// cluster's membership says of them. Its methods run on the command's
// goroutine.
type upRun struct {
	cfg   upConfig
	group *proc.Group
	exe   string
	lines *proc.Lines
	out   io.Writer // stdout: the banner and the membership news
	lg    zerolog.Logger
	// procSpec says how to run a child; tests run something else than
	// the synod binary.
	procSpec func(childSpec) proc.Spec

	exited chan *proc.Proc // children that exited, from their exit goroutines
	done   chan struct{}   // closed when up returns
	wg     sync.WaitGroup  // the grace goroutines of removed children

	kids    []*proc.Proc       // every child started, in order
	ids     map[*proc.Proc]int // replica ids (the proxy has none)
	byID    map[int]*proc.Proc // the replicas started, by id
	running int                // children that have not exited

	slot        uint64          // the configuration last seen
	members     map[uint64]bool // its members; nil before the first list
	unsupported bool            // the cluster does not answer MEMBER LIST
	removed     map[int]bool    // replicas that left the configuration while they ran
	skipped     map[uint64]bool // members up does not run, said once
	pending     map[int]time.Time
}

func newUpRun(cfg upConfig, group *proc.Group, exe string, lines *proc.Lines, out io.Writer, lg zerolog.Logger) *upRun {
	r := &upRun{
		cfg: cfg, group: group, exe: exe, lines: lines, out: out, lg: lg,
		exited: make(chan *proc.Proc), done: make(chan struct{}),
		ids: map[*proc.Proc]int{}, byID: map[int]*proc.Proc{},
		removed: map[int]bool{}, skipped: map[uint64]bool{}, pending: map[int]time.Time{},
	}
	r.procSpec = func(spec childSpec) proc.Spec {
		return proc.Spec{Name: spec.name, Path: r.exe, Args: spec.args, Lines: r.lines}
	}
	return r
}

// close lets the exit and grace goroutines go; up calls it as it returns.
func (r *upRun) close() {
	close(r.done)
	r.wg.Wait()
}

// start starts spec's child and a goroutine that reports its exit.
func (r *upRun) start(spec childSpec) error {
	p, err := r.group.Start(r.procSpec(spec))
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	// Ends once p is reaped (up stops every child before it returns), or
	// when up returns first.
	go func() {
		<-p.Exited()
		select {
		case r.exited <- p:
		case <-r.done:
		}
	}()
	r.kids = append(r.kids, p)
	if spec.id != 0 {
		r.ids[p] = spec.id
		r.byID[spec.id] = p
	}
	r.running++
	r.lg.Info().Str("child", p.Name).Int("pid", p.PID()).Msg("started")
	return nil
}

// say prints a line of news on stdout and logs it.
func (r *upRun) say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(r.out, msg)
	r.lg.Info().Msg(msg)
}

// childExited takes in a child's exit: a replica removed from the cluster
// is expected to exit; any other child died.
func (r *upRun) childExited(p *proc.Proc, now time.Time) {
	r.running--
	id, isNode := r.ids[p]
	switch {
	case !isNode:
		r.died(p)
	case r.removed[id]:
		r.say("node%d exited after its removal from the cluster", id)
	case r.unsupported || r.members != nil:
		r.judgeExit(p, id)
	default:
		r.pending[id] = now.Add(pendingExitWait) // no member list yet
	}
}

// judgeExit reports replica id's exit once the membership is known.
func (r *upRun) judgeExit(p *proc.Proc, id int) {
	if r.unsupported || r.members[uint64(id)] {
		r.died(p)
		return
	}
	r.say("node%d exited: it is not a member of the cluster (it was removed)", id)
}

func (r *upRun) died(p *proc.Proc) {
	r.lg.Error().Str("child", p.Name).Int("pid", p.PID()).Str("exit", describeExit(p.ExitErr())).
		Msgf("!!! %s DIED and will not be restarted; %d of %d children still run. Ctrl-C stops them; `synod up` again restarts all on the same data", p.Name, r.running, len(r.kids))
}

// settle reports the exits still waiting for a member list: once one has
// come, or when the wait is over (then as deaths).
func (r *upRun) settle(now time.Time) {
	for _, id := range sortedKeys(r.pending) {
		if r.unsupported || r.members != nil {
			r.judgeExit(r.byID[id], id)
		} else if now.Before(r.pending[id]) {
			continue
		} else {
			r.died(r.byID[id])
		}
		delete(r.pending, id)
	}
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// memberNews takes in a newer member list: a replica up runs that is no
// longer a member is let go; a member up does not run, at one of up's
// replica ports, is started, joining through a running member.
func (r *upRun) memberNews(n memberNews, now time.Time) {
	if n.unsupported {
		r.lg.Debug().Msg("the replicas answer no member list: up runs the replicas it started with")
		r.unsupported = true
		r.settle(now)
		return
	}
	if r.members != nil && n.slot <= r.slot {
		return
	}
	r.slot = n.slot
	r.members = map[uint64]bool{}
	for _, m := range n.members {
		r.members[m.ID] = true
	}
	for _, id := range sortedKeys(r.byID) {
		p := r.byID[id]
		if r.members[uint64(id)] || r.removed[id] || !p.Running() {
			continue
		}
		r.removed[id] = true
		r.say("member %d removed: node%d stops by itself (up stops it after --grace %v if not)", id, id, r.cfg.Grace)
		r.letGo(p)
	}
	ms := slices.Clone(n.members)
	slices.SortFunc(ms, func(a, b line.Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range ms {
		r.maybeStart(m)
	}
	r.settle(now)
}

// maybeStart starts member m if up should run it and does not yet.
func (r *upRun) maybeStart(m line.Member) {
	if m.ID > uint64(maxPort) || r.byID[int(m.ID)] != nil || r.skipped[m.ID] {
		return
	}
	id := int(m.ID)
	if r.cfg.BasePort+id > maxPort || m.Addr != r.cfg.replicaAddr(id) {
		r.skipped[m.ID] = true
		r.say("member %d at %s is not on one of up's replica ports (127.0.0.1:<base-port>+id): run it yourself", m.ID, m.Addr)
		return
	}
	if err := checkFree(m.Addr); err != nil {
		r.skipped[m.ID] = true
		r.say("member %d added, but up cannot start node%d: %v (running it yourself?)", id, id, err)
		return
	}
	spec := r.cfg.nodeSpec(id, r.joinAddr())
	r.say("member %d added: starting node%d on %s (data in %s)", id, id, m.Addr, r.cfg.nodeDir(id))
	if err := r.start(spec); err != nil {
		r.skipped[m.ID] = true
		r.lg.Error().Err(err).Str("child", spec.name).Msg("cannot start a member")
	}
}

// joinAddr is the address of a running replica that is a member, for a
// new one to join through: the lowest id.
func (r *upRun) joinAddr() string {
	for _, id := range sortedKeys(r.byID) {
		if r.members[uint64(id)] && !r.removed[id] && r.byID[id].Running() {
			return r.cfg.replicaAddr(id)
		}
	}
	return r.cfg.replicaAddr(1)
}

// letGo waits, on a goroutine of its own, for a removed replica to exit by
// itself, and stops it if it still runs after the grace.
func (r *upRun) letGo(p *proc.Proc) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTimer(r.cfg.Grace)
		defer t.Stop()
		select {
		case <-p.Exited():
		case <-r.done:
		case <-t.C:
			r.lg.Warn().Str("child", p.Name).Dur("grace", r.cfg.Grace).Msg("still running after its removal: stopping it")
			p.Stop(r.cfg.Grace)
		}
	}()
}

// maxPort is the highest TCP port.
const maxPort = 65535
