package node

// This file owns the decoding of the paxos messages a peer sends, on that
// peer's reader goroutine (readPeer). An Accept that carries large values
// is decoded in place: its commands are slices of the frame, which the
// connection then gives up (wire.Conn.KeepBody), instead of each value
// being copied out of the frame into a fresh allocation. Everything else,
// and any layout the hand-written reader does not know, goes through
// wire.Unmarshal.

import (
	"synod/paxos"
	"synod/wire"
)

// aliasMin is the smallest frame body decoded in place: below it the
// copies cost less than keeping the whole frame alive as long as one of
// its values is.
const aliasMin = 64 << 10

// messageFields is how many fields paxos.Message encodes (as an array).
const messageFields = 16

// decodePeerMessage decodes a paxos message from body. It reports whether
// the result aliases body, in which case the caller must keep body's
// memory (KeepBody) for as long as the message may be used.
func decodePeerMessage(body []byte, m *paxos.Message) (aliased bool, err error) {
	if len(body) >= aliasMin {
		if aliasMessage(body, m) == nil {
			return true, nil
		}
		*m = paxos.Message{}
	}
	return false, wire.Unmarshal(body, m)
}

// aliasMessage reads m from body in the layout msgpack gives
// paxos.Message (an array of its fields in order); wire.ErrNotRaw for
// anything else. A test holds it to wire.Unmarshal on random messages.
func aliasMessage(body []byte, m *paxos.Message) error {
	r := wire.NewRawReader(body)
	n, err := r.ArrayLen()
	if err != nil || n != messageFields {
		return wire.ErrNotRaw
	}
	var typ uint64
	if typ, err = r.Uint(); err != nil || typ > 0xff {
		return wire.ErrNotRaw
	}
	m.Type = paxos.MsgType(typ)
	var u [2]uint64
	if err := readUints(r, u[:]); err != nil {
		return err
	}
	m.From, m.To = paxos.NodeID(u[0]), paxos.NodeID(u[1])
	if m.Ballot, err = readBallot(r); err != nil {
		return err
	}
	var u4 [4]uint64
	if err := readUints(r, u4[:]); err != nil {
		return err
	}
	m.Slot, m.Index, m.Commit, m.Context = u4[0], u4[1], u4[2], u4[3]
	if m.Reject, err = r.Bool(); err != nil {
		return err
	}
	if m.Hint, err = readBallot(r); err != nil {
		return err
	}
	if m.Entries, err = readEntries(r); err != nil {
		return err
	}
	if m.Learner, err = r.Bool(); err != nil {
		return err
	}
	if m.Force, err = r.Bool(); err != nil {
		return err
	}
	var u3 [3]uint64
	if err := readUints(r, u3[:]); err != nil {
		return err
	}
	m.Transfer, m.Token, m.ConfSlot = paxos.NodeID(u3[0]), u3[1], u3[2]
	if !r.Done() {
		return wire.ErrNotRaw
	}
	return nil
}

func readUints(r *wire.RawReader, dst []uint64) error {
	for i := range dst {
		v, err := r.Uint()
		if err != nil {
			return err
		}
		dst[i] = v
	}
	return nil
}

func readBallot(r *wire.RawReader) (paxos.Ballot, error) {
	if n, err := r.ArrayLen(); err != nil || n != 2 {
		return paxos.Ballot{}, wire.ErrNotRaw
	}
	var u [2]uint64
	if err := readUints(r, u[:]); err != nil {
		return paxos.Ballot{}, err
	}
	return paxos.Ballot{Round: u[0], Node: paxos.NodeID(u[1])}, nil
}

func readEntries(r *wire.RawReader) ([]paxos.Entry, error) {
	n, err := r.ArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	ents := make([]paxos.Entry, n)
	for i := range ents {
		e := &ents[i]
		if k, err := r.ArrayLen(); err != nil || k != 3 {
			return nil, wire.ErrNotRaw
		}
		if e.Slot, err = r.Uint(); err != nil {
			return nil, err
		}
		if e.Ballot, err = readBallot(r); err != nil {
			return nil, err
		}
		if k, err := r.ArrayLen(); err != nil || k != 2 {
			return nil, wire.ErrNotRaw
		}
		kind, err := r.Uint()
		if err != nil || kind > 0xff {
			return nil, wire.ErrNotRaw
		}
		e.Value.Kind = paxos.ValueKind(kind)
		c, err := r.ArrayLen()
		if err != nil || c < 0 {
			if err == nil {
				continue // nil Cmds
			}
			return nil, err
		}
		e.Value.Cmds = make([][]byte, c)
		for j := range e.Value.Cmds {
			if e.Value.Cmds[j], err = r.Bin(); err != nil {
				return nil, err
			}
		}
	}
	return ents, nil
}
