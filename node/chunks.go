package node

// This file owns a replica's side of large files: storing the chunks a
// proxy streams in (KindChunkPut, on the client connection's goroutine,
// which answers once the chunk is fsynced), handing chunks to peers that
// lack them (KindChunkGet), telling a proxy which it holds durably
// (KindChunkHas, on the same goroutine), and range reads of large files
// (OpGetRange), which run on a goroutine of their own per read (bounded by rangeSlots)
// because they read chunk files and may fetch a missing chunk from a peer:
// never on the applier's goroutine.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"synod/filestore"
	"synod/filestore/chunks"
	"synod/wire"
)

// MaxRange bounds the bytes one GET RANGE answers.
const MaxRange = chunks.MaxSize

// A chunk the wire allows fits the store (a negative constant does not
// compile).
const _ = uint(chunks.MaxSize - wire.MaxChunkSize)

// rangeSlots bounds the range reads a replica serves at once.
const rangeSlots = 8

// chunkFetchTimeout bounds one attempt to fetch a chunk from one peer;
// leftFetchTimeout one from a replica an earlier configuration dropped.
const (
	chunkFetchTimeout = 30 * time.Second
	leftFetchTimeout  = 3 * time.Second
)

// ErrChunkUnavailable is returned when no peer holds a chunk this replica
// lacks.
var ErrChunkUnavailable = errors.New("node: chunk held by no reachable replica")

// ErrChunkLost is returned (wrapping ErrChunkUnavailable) when every other
// member of the configuration answered that it does not hold the chunk:
// no member holds it any more.
var ErrChunkLost = fmt.Errorf("%w: every member answered it lacks it", ErrChunkUnavailable)

// servePutChunk stores a chunk durably and says so. The chunk's bytes are
// read where they arrived, in the connection's read buffer (body), which
// stays put until this returns.
func (n *Node) servePutChunk(body []byte) wire.ChunkAck {
	req, err := wire.DecodeChunkPut(body)
	if err != nil {
		return wire.ChunkAck{Code: wire.CodeBadRequest, Msg: "undecodable chunk"}
	}
	sum, ok := sumOf(req.Sum)
	if !ok {
		return wire.ChunkAck{Code: wire.CodeBadRequest, Msg: "a chunk's sum is 32 bytes"}
	}
	if n.degraded.Load() {
		return wire.ChunkAck{Code: wire.CodeUnavailable, Msg: "this replica's disk is failing"}
	}
	if n.cfg.TestDropChunkPuts {
		return wire.ChunkAck{Code: wire.CodeOK} // test hook: a disk that loses it at once
	}
	if err := n.chunks.Put(sum, req.Data); err != nil {
		switch {
		case errors.Is(err, chunks.ErrChecksum):
			return wire.ChunkAck{Code: wire.CodeBadRequest, Msg: err.Error()}
		case errors.Is(err, chunks.ErrTooLarge):
			return wire.ChunkAck{Code: wire.CodeTooLarge, Msg: err.Error()}
		}
		n.log.Warn().Err(err).Msg("storing a chunk failed")
		return wire.ChunkAck{Code: wire.CodeUnavailable, Msg: err.Error()}
	}
	return wire.ChunkAck{Code: wire.CodeOK}
}

// serveGetChunk answers a peer's (or a tool's) request for a chunk.
func (n *Node) serveGetChunk(body []byte) wire.ChunkData {
	var req wire.ChunkGet
	if err := wire.Unmarshal(body, &req); err != nil {
		return wire.ChunkData{Code: wire.CodeBadRequest, Msg: "undecodable chunk request"}
	}
	sum, ok := sumOf(req.Sum)
	if !ok {
		return wire.ChunkData{Code: wire.CodeBadRequest, Msg: "a chunk's sum is 32 bytes"}
	}
	data, err := n.chunks.Read(sum, 0)
	switch {
	case errors.Is(err, chunks.ErrNotFound):
		return wire.ChunkData{Code: wire.CodeNotFound, Msg: err.Error()}
	case err != nil:
		// A damaged chunk: the asker tries another peer. Not NOT_FOUND,
		// which says this replica holds no such chunk at all (an asker
		// that hears it from every member counts the chunk lost).
		n.log.Warn().Err(err).Msg("a chunk a peer asked for is unreadable")
		return wire.ChunkData{Code: wire.CodeUnavailable, Msg: err.Error()}
	}
	return wire.ChunkData{Code: wire.CodeOK, Data: data}
}

// maxHasSums bounds the chunks one KindChunkHas asks about: a manifest
// within the largest value names far fewer.
const maxHasSums = 1 << 16

// serveHasChunks answers a proxy's question which of some chunks this
// replica holds durably (it asks before it acknowledges a large file).
func (n *Node) serveHasChunks(body []byte) wire.ChunkHeld {
	var req wire.ChunkHas
	if err := wire.Unmarshal(body, &req); err != nil {
		return wire.ChunkHeld{Code: wire.CodeBadRequest, Msg: "undecodable chunk question"}
	}
	if len(req.Sums) > maxHasSums {
		return wire.ChunkHeld{Code: wire.CodeTooLarge, Msg: fmt.Sprintf("%d chunks asked about, at most %d", len(req.Sums), maxHasSums)}
	}
	sums := make([]chunks.Sum, len(req.Sums))
	for i, b := range req.Sums {
		sum, ok := sumOf(b)
		if !ok {
			return wire.ChunkHeld{Code: wire.CodeBadRequest, Msg: "a chunk's sum is 32 bytes"}
		}
		sums[i] = sum
	}
	held, err := n.chunks.HeldDurably(sums)
	if err != nil {
		return wire.ChunkHeld{Code: wire.CodeUnavailable, Msg: err.Error()}
	}
	return wire.ChunkHeld{Code: wire.CodeOK, Held: held}
}

func sumOf(b []byte) (chunks.Sum, bool) {
	var s chunks.Sum
	if len(b) != len(s) {
		return s, false
	}
	copy(s[:], b)
	return s, true
}

// startRange serves a GET RANGE on a goroutine of its own: it may read
// megabytes from disk and wait for a peer.
func (n *Node) startRange(rq *readReq, rep wire.Reply, manifest []byte) {
	go func() {
		n.rangeSem <- struct{}{}
		defer func() { <-n.rangeSem }()
		rq.reply(n.readRange(rq.req, rep, manifest))
	}()
}

// readRange reads the range req asks of the large file whose manifest is
// given; rep holds the version and applied index read with it.
func (n *Node) readRange(req wire.Request, rep wire.Reply, manifest []byte) wire.Reply {
	m, err := wire.ParseManifest(manifest)
	if err != nil {
		// The state machine parsed it when it applied it.
		return wire.Reply{Code: wire.CodeInternal, Msg: err.Error()}
	}
	rep.Size, rep.Sum = m.Size, m.Sum.String()
	if req.Offset > m.Size {
		return wire.Reply{Code: wire.CodeBadRequest, Msg: fmt.Sprintf("offset %d past the end of a %d-byte file", req.Offset, m.Size)}
	}
	end := req.Offset + min(req.Length, MaxRange, m.Size-req.Offset)
	out := make([]byte, 0, end-req.Offset)
	for off := req.Offset; off < end; {
		i := int(off / m.ChunkSize)
		data, err := n.chunk(chunks.Sum(m.Chunks[i]), m.ChunkLen(i))
		if err != nil {
			return wire.Reply{Code: wire.CodeUnavailable, Msg: err.Error()}
		}
		if len(data) != m.ChunkLen(i) {
			return wire.Reply{Code: wire.CodeInternal, Msg: fmt.Sprintf("chunk %s holds %d bytes, the manifest says %d", m.Chunks[i], len(data), m.ChunkLen(i))}
		}
		start := off - uint64(i)*m.ChunkSize
		stop := min(uint64(len(data)), end-uint64(i)*m.ChunkSize)
		out = append(out, data[start:stop]...)
		off += stop - start
	}
	rep.Value = out
	return rep
}

// chunk returns a chunk's bytes from this replica's store or, when it is
// missing or damaged here, from a peer (stored here on the way).
func (n *Node) chunk(sum chunks.Sum, size int) ([]byte, error) {
	data, err := n.chunks.Read(sum, size)
	if err == nil {
		return data, nil
	}
	if !errors.Is(err, chunks.ErrNotFound) && !errors.Is(err, chunks.ErrChecksum) {
		return nil, err
	}
	return n.fetchChunk(sum, size)
}

// fetchChunk asks each other member in turn for a chunk (then the members
// earlier configurations dropped, who may linger: memberView.left), and
// stores the first good copy. Put checks each copy against its name (one SHA-256
// pass), and a bad one sends it on to the next member.
func (n *Node) fetchChunk(sum chunks.Sum, size int) ([]byte, error) {
	ctx := n.runCtx
	if ctx == nil {
		ctx = context.Background()
	}
	lacks := true // every member asked answered NOT_FOUND
	v := n.members()
	for i, m := range append(slices.Clone(v.conf.Members), v.left...) {
		if uint64(m.ID) == n.cfg.ID {
			continue
		}
		member := i < len(v.conf.Members)
		if m.Addr == "" {
			lacks = lacks && !member
			continue
		}
		timeout := chunkFetchTimeout
		if !member {
			// One that left may be gone for good: asked briefly, and
			// only its answer counts, not its silence.
			timeout = leftFetchTimeout
		}
		data, err := n.fetchChunkFrom(ctx, m.Addr, sum, timeout)
		switch {
		case errors.Is(err, errChunkNotHeld): // it lacks it
		case member || err == nil || isAnswer(err):
			lacks = false
			// Else one that left, not reached: its silence does not count.
		}
		if err != nil || len(data) != size {
			continue
		}
		if err := n.chunks.Put(sum, data); err != nil {
			if errors.Is(err, chunks.ErrChecksum) {
				n.log.Warn().Err(err).Str("peer", m.Addr).Msg("a peer's copy of a chunk is damaged")
				continue
			}
			return nil, fmt.Errorf("node: store fetched chunk: %w", err)
		}
		return data, nil
	}
	if lacks {
		return nil, fmt.Errorf("%w: %s", ErrChunkLost, sum)
	}
	return nil, fmt.Errorf("%w: %s", ErrChunkUnavailable, sum)
}

// errChunkNotHeld: a peer answered that it does not hold the chunk (not
// that it could not be asked, nor that its copy is damaged).
var errChunkNotHeld = errors.New("node: peer does not hold the chunk")

// isAnswer reports whether a fetch's error is a peer's answer (a damaged
// copy, say), not a failure to reach it.
func isAnswer(err error) bool { return errors.Is(err, errPeerAnswered) }

// errPeerAnswered marks a fetch that reached the peer and got a refusal.
var errPeerAnswered = errors.New("node: peer answered")

func (n *Node) fetchChunkFrom(ctx context.Context, addr string, sum chunks.Sum, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := wire.DialClient(ctx, addr,
		wire.Hello{ClusterID: n.cfg.ClusterID, NodeID: n.cfg.ID, Role: wire.RoleClient},
		wire.Options{MaxFrame: n.cfg.MaxFrame, TLS: n.cfg.clientTLS()})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var rep wire.ChunkData
	if err := cl.Call(ctx, wire.KindChunkGet, &wire.ChunkGet{Sum: sum[:]}, &rep); err != nil {
		return nil, err
	}
	if rep.Code == wire.CodeNotFound {
		return nil, fmt.Errorf("%w: chunk %s from %s: %s", errChunkNotHeld, sum, addr, rep.Msg)
	}
	if rep.Code != wire.CodeOK {
		return nil, fmt.Errorf("%w: chunk %s from %s: %s %s", errPeerAnswered, sum, addr, rep.Code, rep.Msg)
	}
	return rep.Data, nil // unchecked: fetchChunk's Put checks it
}

// rangeOfSmall answers a GET RANGE of a file held in memory.
func rangeOfSmall(rep *wire.Reply, req wire.Request, v []byte) {
	size := uint64(len(v))
	if req.Offset > size {
		rep.Code, rep.Msg = wire.CodeBadRequest, fmt.Sprintf("offset %d past the end of a %d-byte file", req.Offset, size)
		return
	}
	n := min(req.Length, MaxRange, size-req.Offset)
	rep.Size, rep.Sum = size, chunks.Of(v).String()
	rep.Value = bytes.Clone(v[req.Offset : req.Offset+n])
}

// putfilePrefix and casfilePrefix start the commands that write a large
// file (filestore's encoding).
var (
	putfilePrefix = []byte(filestore.OpWord(wire.OpPutFile) + " ")
	casfilePrefix = []byte(filestore.OpWord(wire.OpCASFile) + " ")
)

// queueChunkCheck asks the chunk fetcher to make sure this replica holds
// every chunk of the large file a putfile just applied wrote (it may have
// been down, or slow, while the proxy stored them on a majority). The
// applier calls it and never waits: with the queue full the check is
// dropped, and a read of a missing chunk still fetches it.
func (n *Node) queueChunkCheck(cmd []byte) {
	c, err := filestore.DecodeCommand(cmd)
	if err != nil {
		return
	}
	m, err := wire.ParseManifest(c.Value)
	if err != nil {
		return
	}
	n.debt.queued.Add(1)
	select {
	case n.fetchQ <- m:
	default:
		n.debt.queued.Add(-1)
		n.log.Warn().Str("key", c.Key).Msg("chunk check queue full: every large file is checked again")
		n.scanChunks()
	}
}

// scanChunks asks the chunk fetcher to check every large file of the
// state, as after a snapshot install (a wiped replica learns its files
// from one) and at start. It never waits.
func (n *Node) scanChunks() {
	n.debt.scansAsk.Add(1)
	signal(n.scanQ)
}

// runChunkFetcher fetches, one file at a time, the chunks of large files
// this replica lacks, until ctx ends: files just applied (fetchQ), and
// every large file of the state when asked to scan (scanQ), which Run asks
// for at start. What no peer could give it, it asks for again every
// chunkRetry, and every fullScanEvery rounds it scans the whole state again
// instead (a file deleted meanwhile needs nothing more). Its own goroutine,
// started by Run.
func (n *Node) runChunkFetcher(ctx context.Context) {
	retry := time.NewTicker(chunkRetry)
	defer retry.Stop()
	lacking := map[chunks.Sum]int{} // chunk -> its length, for the chunks no peer gave
	lost := map[chunks.Sum]int{}    // chunk -> how many tries in a row every member lacked it
	rounds := 0
	for {
		scan := false
		select {
		case <-ctx.Done():
			return
		case <-n.scanQ:
			scan = true
		case <-retry.C:
			if len(lacking) == 0 {
				continue
			}
			if rounds++; rounds%fullScanEvery == 0 {
				scan = true
				break
			}
			for sum, size := range lacking {
				if ctx.Err() != nil {
					return
				}
				if n.chunks.Has(sum) {
					delete(lacking, sum)
					delete(lost, sum)
					continue
				}
				_, err := n.fetchChunk(sum, size)
				n.noteFetch(sum, size, err, lacking, lost)
			}
			n.debt.lacking.Store(int64(len(lacking)))
			n.warnLacking(len(lacking))
		case m := <-n.fetchQ:
			if d := n.cfg.TestFetchDelay; d > 0 {
				time.Sleep(d) // test hook
			}
			if !n.fetchMissing(ctx, m, lacking, lost) {
				return
			}
			n.debt.lacking.Store(int64(len(lacking)))
			n.debt.queued.Add(-1)
		}
		if !scan {
			continue
		}
		asked := n.debt.scansAsk.Load()
		clear(lacking)
		for _, m := range n.largeManifests() {
			if !n.fetchMissing(ctx, m, lacking, lost) {
				return
			}
		}
		// A scan covers every file the state holds, so what it found
		// replaces what the checks before it found.
		n.debt.lacking.Store(int64(len(lacking)))
		n.debt.scansDone.Store(asked)
		n.warnLacking(len(lacking))
	}
}

// fullScanEvery is how many retry rounds of the chunks a replica lacks go
// by between full scans of its state.
const fullScanEvery = 12

func (n *Node) warnLacking(count int) {
	if count > 0 {
		n.log.Warn().Int("chunks", count).Dur("retry", chunkRetry).
			Msg("chunks of large files missing here and held by no reachable peer; a replica that lost its disk does not vote until it has them")
	}
}

// largeManifests returns the manifests of the state's large files.
func (n *Node) largeManifests() []wire.Manifest {
	var out []wire.Manifest
	n.app.mu.RLock()
	n.app.fsm.EachLarge(func(_ string, text []byte) bool {
		if m, err := wire.ParseManifest(text); err == nil {
			out = append(out, m)
		}
		return true
	})
	n.app.mu.RUnlock()
	return out
}

// fetchMissing fetches the chunks of m this replica lacks, and records in
// lacking those it could not get; false once ctx ended.
func (n *Node) fetchMissing(ctx context.Context, m wire.Manifest, lacking, lost map[chunks.Sum]int) bool {
	for i, sum := range m.Chunks {
		if ctx.Err() != nil {
			return false
		}
		if n.chunks.Has(chunks.Sum(sum)) {
			delete(lost, chunks.Sum(sum))
			continue
		}
		_, err := n.fetchChunk(chunks.Sum(sum), m.ChunkLen(i))
		n.noteFetch(chunks.Sum(sum), m.ChunkLen(i), err, lacking, lost)
	}
	return true
}

// lostAfter is how many tries in a row (chunkRetry apart: 10 minutes)
// must find that every other member lacks a chunk before this replica
// stops waiting for it: long enough for an operator to put back a disk
// or a directory moved away by mistake.
const lostAfter = 120

// noteFetch records the outcome of a try to fetch a chunk this replica
// lacks. What no member holds any more is the chunk of a file that was
// written but never acknowledged (the proxy acknowledges a large file
// only once a majority holds every chunk, so losing one takes losses
// beyond the fault model, or a second disk lost within one upload): once
// every other member said so lostAfter times in a row, the chunk stops
// counting as owed, or a replica that lost its disk would never vote
// again. Reads of the file fail until it is written again or deleted.
func (n *Node) noteFetch(sum chunks.Sum, size int, err error, lacking, lost map[chunks.Sum]int) {
	switch {
	case err == nil:
		delete(lacking, sum)
		delete(lost, sum)
		return
	case errors.Is(err, ErrChunkLost):
		lost[sum]++
	default:
		delete(lost, sum)
	}
	if lost[sum] >= lostAfter {
		if lost[sum] == lostAfter {
			n.log.Error().Err(err).Msg("a chunk of a large file is held by no member: a file written but never acknowledged lost it; its reads fail until it is written again or deleted; this replica no longer waits for it")
		}
		delete(lacking, sum)
		return
	}
	lacking[sum] = size
	n.log.Warn().Err(err).Msg("could not fetch a chunk this replica lacks; the fetcher tries again")
}
