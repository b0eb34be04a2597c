package proxy

import (
	"sync"
	"time"

	"synod/filestore"
	"synod/wire"
)

// stateMaster answers requests the way a real master does, from a real
// filestore.Machine: a write is applied (ordered and deduplicated by its
// session) when it arrives, unless refuse turns it away first, as a node
// turns a write away before proposing it. Fakes that share one stateMaster
// share one replicated state, so a write retried at a new master meets the
// session its first attempt left there.
type stateMaster struct {
	mu       sync.Mutex
	m        *filestore.Machine
	attempts map[[2]uint64]int
	// refuse, if set, may answer an attempt (numbered from 0 for each
	// client and seq) before it is proposed.
	refuse func(req wire.Request, attempt int) (wire.Reply, bool)
}

func newStateMaster(opts filestore.Options) *stateMaster {
	return &stateMaster{m: filestore.New(opts), attempts: map[[2]uint64]int{}}
}

var fakeWriteOps = map[wire.Op]wire.Op{
	wire.OpPut: wire.OpPut, wire.OpAppend: wire.OpAppend,
	wire.OpCAS: wire.OpCAS, wire.OpDel: wire.OpDel,
}

// answer is a fakeReplica answer function.
func (sm *stateMaster) answer(req wire.Request) (wire.Reply, bool) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if !req.Op.IsWrite() {
		rep := wire.Reply{Applied: sm.m.Applied()}
		switch req.Op {
		case wire.OpGet:
			v, ver, ok := sm.m.Get(req.Key)
			if !ok {
				rep.Code = wire.CodeNotFound
			}
			rep.Value, rep.Version = append([]byte(nil), v...), ver
		case wire.OpStat:
			n, ver, ok := sm.m.Stat(req.Key)
			if !ok {
				rep.Code = wire.CodeNotFound
			}
			rep.Size, rep.Version = uint64(n), ver
		case wire.OpList:
			rep.Keys = sm.m.List(req.Key, 0)
		}
		return rep, true
	}
	k := [2]uint64{req.ClientID, req.Seq}
	n := sm.attempts[k]
	sm.attempts[k] = n + 1
	if sm.refuse != nil {
		if rep, ok := sm.refuse(req, n); ok {
			return rep, true
		}
	}
	return sm.applyLocked(req), true
}

func (sm *stateMaster) applyLocked(req wire.Request) wire.Reply {
	cmd := filestore.EncodeCommand(nil, filestore.Command{
		Op: fakeWriteOps[req.Op], ClientID: req.ClientID, Seq: req.Seq, Ack: req.Ack, Retry: req.Retry,
		Stamp: time.Now().UnixMilli(), Key: req.Key, Version: req.Version, Value: req.Value,
	})
	res := sm.m.Apply(sm.m.Applied()+1, cmd)
	rep := wire.Reply{Index: res.Index, Version: res.Version, Applied: sm.m.Applied()}
	switch res.Code {
	case wire.CodeOK:
	case wire.CodeNotFound:
		rep.Code = wire.CodeNotFound
	case wire.CodeConflict:
		rep.Code = wire.CodeConflict
	case wire.CodeTooLarge:
		rep.Code = wire.CodeTooLarge
	case wire.CodeOutOfOrder:
		rep = wire.Reply{Code: wire.CodeOutOfOrder, NotApplied: true}
	case wire.CodeSessionUnknown:
		rep = wire.Reply{Code: wire.CodeSessionUnknown, NotApplied: true}
	case wire.CodeAnswered:
		rep = wire.Reply{Code: wire.CodeAnswered}
	default:
		rep = wire.Reply{Code: wire.CodeBadRequest, Msg: res.Code.String(), NotApplied: true}
	}
	return rep
}

// apply applies req now (for answers a test scripts itself).
func (sm *stateMaster) apply(req wire.Request) wire.Reply {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.applyLocked(req)
}

// value returns the file at key.
func (sm *stateMaster) value(key string) (string, bool) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	v, _, ok := sm.m.Get(key)
	return string(v), ok
}
