package node

// This file owns the decoding of the paxos messages a peer sends, on that
// peer's reader goroutine (readPeer), and their encoding, on each peer's
// writer goroutine (writePeer). An Accept that carries large values
// is decoded in place: its commands are slices of the frame, which the
// connection then gives up (wire.Conn.KeepBody), instead of each value
// being copied out of the frame into a fresh allocation. A smaller message
// is read by the same hand-written reader, its commands then copied out as
// wire.Unmarshal copies them; any layout the reader does not know goes
// through wire.Unmarshal. A message without large commands is encoded by
// hand, to the bytes wire.Marshal gives; one with a large command goes
// through wire.Conn.Send, which writes it from the message's memory.

import (
	"bytes"

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
	if aliasMessage(body, m) == nil {
		if len(body) >= aliasMin {
			return true, nil
		}
		// Small: each command copied out, as msgpack's decoder does, so
		// the frame's buffer is the connection's again.
		for i := range m.Entries {
			cmds := m.Entries[i].Value.Cmds
			for j := range cmds {
				cmds[j] = bytes.Clone(cmds[j])
			}
		}
		return false, nil
	}
	*m = paxos.Message{}
	return false, wire.Unmarshal(body, m)
}

// appendPeerMessage appends the msgpack encoding of m, the bytes
// wire.Marshal gives, to dst. It reports false, dst untouched, when a
// command is aliasMin bytes or more: wire.Conn.Send writes those from m's
// memory instead of copying them into the frame.
func appendPeerMessage(dst []byte, m *paxos.Message) ([]byte, bool) {
	for i := range m.Entries {
		for _, c := range m.Entries[i].Value.Cmds {
			if len(c) >= aliasMin {
				return dst, false
			}
		}
	}
	dst = append(dst, 0xdc, 0, messageFields) // array16: msgpack's header for 16 fields
	dst = wire.AppendUint(dst, uint64(m.Type))
	dst = wire.AppendUint(dst, uint64(m.From))
	dst = wire.AppendUint(dst, uint64(m.To))
	dst = appendBallot(dst, m.Ballot)
	dst = wire.AppendUint(dst, m.Slot)
	dst = wire.AppendUint(dst, m.Index)
	dst = wire.AppendUint(dst, m.Commit)
	dst = wire.AppendUint(dst, m.Context)
	dst = wire.AppendBool(dst, m.Reject)
	dst = appendBallot(dst, m.Hint)
	if m.Entries == nil {
		dst = append(dst, 0xc0)
	} else {
		dst = wire.AppendArrayLen(dst, len(m.Entries))
		for i := range m.Entries {
			e := &m.Entries[i]
			dst = append(dst, 0x93) // Slot, Ballot, Value
			dst = wire.AppendUint(dst, e.Slot)
			dst = appendBallot(dst, e.Ballot)
			dst = append(dst, 0x92) // Kind, Cmds
			dst = wire.AppendUint(dst, uint64(e.Value.Kind))
			if e.Value.Cmds == nil {
				dst = append(dst, 0xc0)
				continue
			}
			dst = wire.AppendArrayLen(dst, len(e.Value.Cmds))
			for _, c := range e.Value.Cmds {
				dst = wire.AppendBin(dst, c)
			}
		}
	}
	dst = wire.AppendBool(dst, m.Learner)
	dst = wire.AppendBool(dst, m.Force)
	dst = wire.AppendUint(dst, uint64(m.Transfer))
	dst = wire.AppendUint(dst, m.Token)
	return wire.AppendUint(dst, m.ConfSlot), true
}

func appendBallot(dst []byte, b paxos.Ballot) []byte {
	dst = append(dst, 0x92)
	dst = wire.AppendUint(dst, b.Round)
	return wire.AppendUint(dst, uint64(b.Node))
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
