package proxy

import "sync"

// idPool hands out the (client id, sequence) pairs that make writes apply
// exactly once. A replica's session table keeps only the last sequence of
// each client id and answers an older one as stale, so two writes of one id
// in flight together could fail each other: every write in flight holds an
// id of its own, and an id goes back to the pool only once its write is
// answered for good. Ids are base plus a counter, base drawn at random per
// proxy, so proxies fronting the same cluster need not coordinate.
type idPool struct {
	mu      sync.Mutex
	base    uint64
	n       uint64  // ids handed out so far
	free    []idSeq // ids whose last write is answered, reused last in, first out
	retired uint64  // ids dropped because their last write's fate is unknown
	inUse   int     // ids held by unanswered writes
}

// idSeq is a client id and the last sequence number it used.
type idSeq struct{ id, seq uint64 }

func newIDPool(base uint64) *idPool { return &idPool{base: base} }

// get returns an id no unanswered write holds and the next sequence for it.
func (p *idPool) get() (id, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse++
	if k := len(p.free); k > 0 {
		s := p.free[k-1]
		p.free = p.free[:k-1]
		return s.id, s.seq + 1
	}
	for {
		p.n++
		// Zero means "no session" to the state machine: skip it on wrap.
		if id := p.base + p.n; id != 0 {
			return id, 1
		}
	}
}

// put returns id after the write numbered seq got its final answer.
func (p *idPool) put(id, seq uint64) {
	p.mu.Lock()
	p.inUse--
	p.free = append(p.free, idSeq{id, seq})
	p.mu.Unlock()
}

// retire drops an id whose write may still be applied some day: reusing it
// is not needed, and not reusing it keeps reasoning simple.
func (p *idPool) retire() {
	p.mu.Lock()
	p.inUse--
	p.retired++
	p.mu.Unlock()
}

// counts returns how many ids are held by writes, idle, and retired.
func (p *idPool) counts() (inUse, idle int, retired uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, len(p.free), p.retired
}
