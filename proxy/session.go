package proxy

// session.go: the writes of one client connection, in order. Everything
// here runs under the router's mutex, in whichever goroutine holds it: a
// connection's reader adding a write, a replica's reader taking in an
// answer, an attempt's timer, the drainer.

import (
	"fmt"
	"slices"
	"time"

	"synod/wire"
)

// session is one client connection's stream of writes, as the replicas'
// state machine sees it (package filestore): a client id the proxy never
// reuses, and the writes numbered 1, 2, 3 ... in request order. The replicas
// apply write n only after n-1, each once, so the proxy's part is to send
// them in order, to resend in order whatever comes back unresolved, and to
// know which writes may have been applied.
//
// The discipline: writes go out in seq order as they come (streaming). Any
// write that comes back unresolved (refused, timed out, its connection
// lost) stops the stream (rewind): nothing more is sent until every attempt
// out has come back, since the later ones will be refused as out of order
// or answered from the replicas' cache, and then everything unresolved is
// sent again, in order. Final answers are taken whenever they come: a write
// answered final was applied after every write before it.
//
// A write that ends without being applied (its hold window ran out with
// nothing applied, a definitive refusal such as TOO_LARGE) leaves a hole:
// no later seq of this client id can ever apply. So once the writes before
// it are resolved, the later ones move to a fresh client id and go again
// from seq 1 (a rebase). The same happens when the replicas no longer know
// the session (expired, evicted) and its first unresolved write was surely
// never applied. When that write may have been applied, its outcome is
// unknown: the session dies, its connection is closed after the replies
// before it, and no write after it is ever sent.
type session struct {
	id     uint64 // client id of the current stream
	next   uint64 // seq of the next write added
	writes []*op  // unresolved writes, in seq order
	out    int    // writes with an attempt on its way
	held   int    // writes waiting to be sent (the others are out)

	rewind    bool      // a write came back unresolved: send nothing until out is 0
	hole      bool      // seq holeSeq never applies: later seqs move to a fresh id
	holeSeq   uint64    //
	dead      bool      // an outcome is unknown: nothing more is sent
	notBefore time.Time // backoff after a refusal
	tries     int       // refusal rounds in a row, for the backoff
	refusedAt time.Time // when the current round's backoff began
	parked    bool      // in the router's waiting set
}

// newSession returns a session with a client id of its own.
func (rt *router) newSession() *session {
	return &session{id: rt.newClientID(), next: 1}
}

// effects collects the ops a router step finished while holding its mutex;
// their finish callbacks run after it is released.
type effects struct {
	ended []endedOp
}

type endedOp struct {
	o   *op
	res result
}

func (fx *effects) end(o *op, res result) { fx.ended = append(fx.ended, endedOp{o, res}) }

// finishAll carries out fx. Called without the router's mutex.
func (rt *router) finishAll(fx *effects) {
	for _, e := range fx.ended {
		rt.end(e.o, e.res)
	}
	fx.ended = fx.ended[:0]
}

// addWrite appends a newly admitted write to its session and sends what can
// go. Called with mu held.
func (rt *router) addWrite(o *op, now time.Time, fx *effects) {
	s := o.sess
	if s.dead {
		// The connection is closing over an unknown outcome: nothing
		// after that write is started.
		fx.end(o, result{abort: true})
		return
	}
	o.wseq = s.next
	s.next++
	s.writes = append(s.writes, o)
	rt.hold(o)
	rt.pump(s, now, fx)
}

// queued reports whether s has a write waiting to be sent.
func (s *session) queued() bool { return s.held > 0 }

// pump brings s forward: once nothing is out it settles the writes' fates
// (expiry, unknown session, holes), then sends every queued write that may
// go, in order, or parks s until a master, a backoff's end or a deadline.
// Called with mu held.
func (rt *router) pump(s *session, now time.Time, fx *effects) {
	if rt.closed {
		rt.shutdownSession(s, fx)
		return
	}
	if s.out == 0 {
		s.rewind = false
		if !rt.settle(s, now, fx) {
			return
		}
	}
	if s.rewind || s.dead {
		rt.unpark(s)
		return
	}
	t := rt.master
	if t != nil && !t.alive {
		t = nil
	}
	for _, w := range s.writes {
		if w.out {
			continue
		}
		if s.hole && w.wseq > s.holeSeq {
			// These can never apply under this id; they move to a
			// fresh one once the writes before the hole are resolved
			// (the next settle, when nothing is out).
			rt.unpark(s)
			return
		}
		if t == nil || now.Before(s.notBefore) {
			rt.park(s)
			return
		}
		if !rt.sendWrite(s, w, t) {
			break // no connection: w is back in the queue, s rewinds
		}
	}
	rt.unpark(s)
}

// settle decides, with nothing out, what the first unresolved writes'
// attempts imply, and returns false if s died. Called with mu held.
func (rt *router) settle(s *session, now time.Time, fx *effects) bool {
	for {
		if s.hole && (len(s.writes) == 0 || s.writes[0].wseq > s.holeSeq) {
			rt.rebase(s)
		}
		if len(s.writes) == 0 {
			return true
		}
		w := s.writes[0]
		switch {
		case w.unknown && w.mayApplied:
			// The replicas lost the session, and w may have been
			// applied under it before: its outcome is unknown.
			rt.kill(s, fx)
			return false
		case w.unknown:
			// w was never applied, so no later write of this id can
			// be: all of them go again under a fresh id.
			rt.rebase(s)
		case !now.Before(w.deadline):
			if w.mayApplied {
				rt.kill(s, fx)
				return false
			}
			s.writes = s.writes[1:]
			rt.unhold(w)
			rt.cnt.bufferExpired.Add(1)
			fx.end(w, rt.writeExpired(w))
			rt.markHole(s, w.wseq)
		default:
			return true
		}
	}
}

// writeExpired is the answer to a write whose hold window ended with
// nothing applied.
func (rt *router) writeExpired(w *op) result {
	if w.lastCode == wire.CodeBusy {
		return made(wire.CodeBusy, fmt.Sprintf("the master was busy for %v", rt.cfg.Hold))
	}
	return made(wire.CodeUnavailable, fmt.Sprintf("no master within %v", rt.cfg.Hold))
}

// markHole records that seq will never apply.
func (rt *router) markHole(s *session, seq uint64) {
	if !s.hole || seq < s.holeSeq {
		s.hole, s.holeSeq = true, seq
	}
}

// rebase moves every unresolved write of s to a fresh client id, numbered
// from 1. Only for writes that can never apply under the old id, with
// nothing out. Called with mu held.
func (rt *router) rebase(s *session) {
	s.id = rt.newClientID()
	s.next = 1
	for _, w := range s.writes {
		w.wseq = s.next
		s.next++
		w.mayApplied, w.unknown = false, false
	}
	s.hole, s.holeSeq = false, 0
	rt.cnt.rebases.Add(1)
}

// kill ends s: every unresolved write is answered "outcome unknown" (its
// connection closes at the first), and nothing more is sent. Called with mu
// held, nothing out.
func (rt *router) kill(s *session, fx *effects) {
	s.dead = true
	for _, w := range s.writes {
		rt.unhold(w)
		fx.end(w, result{abort: true})
	}
	s.writes = nil
	rt.unpark(s)
}

// shutdownSession ends the queued writes of s as the router closes; those
// out end when their connections close. Called with mu held.
func (rt *router) shutdownSession(s *session, fx *effects) {
	kept := s.writes[:0]
	for _, w := range s.writes {
		if w.out {
			kept = append(kept, w)
			continue
		}
		rt.unhold(w)
		fx.end(w, rt.shutdownResult(w))
	}
	clear(s.writes[len(kept):])
	s.writes = kept
	rt.unpark(s)
}

// sendWrite sends w to t, stamped with its session's identity: the lowest
// unresolved seq as the acknowledgment, and the retry mark if an earlier
// attempt may have been proposed. It returns false if t has no connection
// (nothing was sent; w stays queued and s rewinds). Called with mu held.
func (rt *router) sendWrite(s *session, w *op, t *replica) bool {
	w.req.ClientID, w.req.Seq = s.id, w.wseq
	w.req.Ack = s.writes[0].wseq
	w.req.Retry = w.mayApplied
	w.unknown = false
	if w.tries > 0 {
		rt.cnt.retries.Add(1)
	}
	// A large write takes the large lane, and so does one behind a large
	// write of its session still out, so the two leave in order.
	l := lane(w.size > smallRequest)
	for _, x := range s.writes {
		if x == w {
			break
		}
		if x.out && x.size > smallRequest {
			l = largeLane
		}
	}
	// The master answers every write once it is chosen or lost; the
	// bound is for a master that hangs while its polls succeed.
	if err := t.send(w, rt.cfg.Hold, l); err != nil {
		t.alive = false
		if rt.master == t {
			rt.master = nil
		}
		s.rewind = true
		return false
	}
	rt.unhold(w)
	w.out, w.target = true, t
	s.out++
	t.inflight++
	return true
}

// writeBack takes in an attempt of w that came back without a final answer:
// w is queued again, and s rewinds. Called with mu held.
func (rt *router) writeBack(w *op) {
	s := w.sess
	w.out, w.target = false, nil
	s.out--
	w.tries++
	rt.hold(w)
	s.rewind = true
}

// refused takes in the refusal of w and starts a refusal round's backoff.
// A round is the attempts sent after the last backoff began: a pipeline
// of many writes refused together backs off once, not once per write.
// Called with mu held.
func (rt *router) refused(w *op, now time.Time, backoff time.Duration) {
	s := w.sess
	if backoff <= 0 || w.sentAt.Before(s.refusedAt) {
		return
	}
	s.tries++
	s.refusedAt = now
	s.notBefore = maxTime(s.notBefore, now.Add(retryBackoff(s.tries, backoff)))
}

// resolve ends w with a final answer. Called with mu held.
func (rt *router) resolve(w *op, res result, fx *effects) {
	s := w.sess
	w.out, w.target = false, nil
	s.out--
	if i := slices.Index(s.writes, w); i >= 0 {
		s.writes = slices.Delete(s.writes, i, i+1)
	}
	s.tries = 0
	fx.end(w, res)
}

// writeAnswered takes in a replica's answer to write w. Called with mu held.
func (rt *router) writeAnswered(w *op, rp *replica, rep wire.Reply, now time.Time, fx *effects) {
	s := w.sess
	if rep.Code == wire.CodeOK {
		rp.applied = max(rp.applied, rep.Index) // the master applied it before answering
	}
	switch rep.Code {
	case wire.CodeOK, wire.CodeNotFound, wire.CodeConflict:
		rp.writes.Add(1)
		rt.resolve(w, result{rep: rep, node: rp.id}, fx)
	case wire.CodeTooLarge, wire.CodeBadRequest:
		rp.writes.Add(1)
		rt.resolve(w, result{rep: rep, node: rp.id}, fx)
		if rep.NotApplied || rep.Code == wire.CodeBadRequest {
			// Refused before it was applied: its seq never will be.
			rt.markHole(s, w.wseq)
			s.rewind = true
		}
	case wire.CodeAnswered:
		// The replicas forgot this write's reply because we said we had
		// it: a bug. It was applied; its outcome is lost.
		rt.resolve(w, made(wire.CodeInternal, "the replicas no longer hold this write's reply"), fx)
		rt.log.Error().Uint64("client", w.req.ClientID).Uint64("seq", w.req.Seq).Msg("a write's reply was acknowledged before it was received")
	case wire.CodeOutOfOrder:
		rt.writeBack(w) // a write before it came back too: both go again
	case wire.CodeSessionUnknown:
		rt.writeBack(w)
		w.unknown = true
	case wire.CodeNotMaster:
		rt.writeBack(w)
		if !rep.NotApplied {
			w.mayApplied = true
		}
		// A fresh hint is tried at once; hints that keep bouncing back
		// and forth back off like any other refusal.
		if !rt.notMaster(rp, rep.MasterID) || w.tries > 1 {
			rt.refused(w, now, rt.cfg.Poll)
		}
	case wire.CodeUnavailable, wire.CodeBusy:
		rt.writeBack(w)
		if !rep.NotApplied {
			w.mayApplied = true
		}
		w.lastCode = rep.Code
		rt.refused(w, now, rt.cfg.Poll)
	default:
		rp.writes.Add(1)
		rt.resolve(w, result{rep: rep, node: rp.id}, fx)
	}
	rt.pump(s, now, fx)
}

// writeLost takes in an attempt of w that got no answer (timed out, or its
// connection was lost or given up): it may have been proposed, unless it
// never left the proxy. Called with mu held.
func (rt *router) writeLost(w *op, sent bool, now time.Time, fx *effects) {
	rt.writeBack(w)
	if sent {
		w.mayApplied = true
	}
	rt.pump(w.sess, now, fx)
}

// park puts s in the drainer's care: it has queued writes that cannot go
// before a master, a backoff's end or a deadline. The drainer is woken to
// take its times into account: it may be asleep until a later one.
func (rt *router) park(s *session) {
	if !s.parked {
		s.parked = true
		rt.waiting[s] = struct{}{}
		rt.wake()
	}
}

func (rt *router) unpark(s *session) {
	if s.parked {
		s.parked = false
		delete(rt.waiting, s)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
