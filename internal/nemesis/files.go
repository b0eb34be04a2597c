package nemesis

// This file owns the large files among the clients' operations: the file
// keys, the bytes of each file (drawn from its token, so anyone can make
// them again), the registry that names a file by its SHA-256, a client's
// PUTFILE and whole-file GET RANGE, and the check after a run that every
// replica serves each key's final file byte for byte. A client's file
// operations run on its goroutine; the registry is shared by every client
// under its mu; checkReplicaFiles runs on Run's goroutine.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// FilePrefix starts every file key: only PUTFILE (with or without a
// VERSION) writes them and only GET RANGE reads them, so no plain GET or
// APPEND meets a large file.
const FilePrefix = "f/"

// isFileKey reports whether key is one of the file keys.
func isFileKey(key string) bool { return strings.HasPrefix(key, FilePrefix) }

// fileSize is the size of token's file for chunks of chunk bytes: over two
// chunks and under three, so every file is three chunks, the last partial.
func fileSize(token string, chunk int) int {
	h := fnv.New64a()
	h.Write([]byte(token))
	return 2*chunk + 1 + int(h.Sum64()%uint64(chunk-1))
}

// fileData returns token's file: fileSize bytes of the hex SHA-256 of the
// token and a block counter, block after block, so no two chunks of any
// two files are alike and a file can be made again from its token alone.
func fileData(token string, chunk int) []byte {
	n := fileSize(token, chunk)
	out := make([]byte, 0, n+2*sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		sum := sha256.Sum256(append([]byte(token), ctr[:]...))
		out = hex.AppendEncode(out, sum[:])
	}
	return out[:n]
}

// sumHex is the lowercase hex SHA-256 of b, as PUTFILE and RANGE name it.
func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileRegistry names every file a client wrote by its SHA-256, so a read,
// which learns only the bytes and their checksum, can tell which write
// they are. A file is registered before its PUTFILE is sent.
type fileRegistry struct {
	chunk int // the proxies' --chunk-size
	mu    sync.Mutex
	bySum map[string]string // sha256 -> token
}

func newFileRegistry(chunk int) *fileRegistry {
	return &fileRegistry{chunk: chunk, bySum: map[string]string{}}
}

// add makes token's file and registers it, returning the bytes and their
// SHA-256.
func (r *fileRegistry) add(token string) ([]byte, string) {
	data := fileData(token, r.chunk)
	sum := sumHex(data)
	r.mu.Lock()
	r.bySum[sum] = token
	r.mu.Unlock()
	return data, sum
}

// token returns the write whose file has SHA-256 sum.
func (r *fileRegistry) token(sum string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tok, ok := r.bySum[sum]
	return tok, ok
}

// errFileRead is a file read whose bytes are not a whole file that was
// written: the value such a read is recorded with names what was wrong,
// as a token no write has, so the checks report it.
var errFileRead = errors.New("nemesis: file read back wrong")

// readFile reads the whole file key with one GET RANGE (every file is
// far below line.MaxRange) at the connection's consistency, checks the
// bytes against the SHA-256 the reply names, and returns the token of the
// write they are, the file's version and its SHA-256. A key that does not
// exist is line.ErrNotFound. A reply whose bytes are not those of a file
// written returns, instead of a token, a description ending in ';' that
// no write has, with no error: the read is recorded as answered, and the
// checks find a value never written.
func readFile(ctx context.Context, conn *line.Client, reg *fileRegistry, key string, minIndex uint64) (value string, version uint64, sum string, err error) {
	rep, err := conn.GetRange(ctx, key, 0, line.MaxRange, minIndex)
	if err != nil {
		return "", 0, "", err
	}
	got := sumHex(rep.Value)
	switch tok, known := reg.token(rep.Sum); {
	case rep.Len != uint64(len(rep.Value)):
		value = fmt.Sprintf("short-file(%d of %d bytes, sha256 %s);", len(rep.Value), rep.Len, rep.Sum)
	case got != rep.Sum:
		value = fmt.Sprintf("bad-bytes(sha256 %s, the reply names %s);", got, rep.Sum)
	case !known:
		value = fmt.Sprintf("unknown-file(sha256 %s);", rep.Sum)
	default:
		value = tok
	}
	return value, rep.Version, rep.Sum, nil
}

// getValue reads op's key on conn: with GET or, if op is a file read,
// with readFile, recording the checksum its reply named on op.
func getValue(ctx context.Context, conn *line.Client, rec *Recorder, files *fileRegistry, op *Op, minIndex uint64) ([]byte, uint64, error) {
	if !op.File {
		return conn.Get(ctx, op.Key, minIndex)
	}
	v, ver, sum, err := readFile(ctx, conn, files, op.Key, minIndex)
	rec.Sum(op, sum)
	return []byte(v), ver, err
}

// fileStep runs one file operation on a file key: a PUTFILE, a PUTFILE
// ... VERSION (CAS) at the version the client saw last, or a whole-file
// read at any level.
func (c *client) fileStep(ctx context.Context) {
	key := c.w.FileKeys[c.rng.Intn(len(c.w.FileKeys))]
	switch p := c.rng.Intn(100); {
	case p < 35:
		c.putFile(ctx, key, false, 0)
	case p < 50:
		c.putFile(ctx, key, true, c.versions[key])
	case p < 75:
		c.read(ctx, key, line.LevelLinearizable)
	case p < 88:
		c.read(ctx, key, line.LevelSession)
	default:
		c.read(ctx, key, line.LevelStale)
	}
}

// putFile uploads a new file as key: a PUT of the key in the history (a
// CAS with cas), whose value is the file's token.
func (c *client) putFile(ctx context.Context, key string, cas bool, expect uint64) {
	tok := c.token()
	data, sum := c.w.Files.add(tok)
	kind := KindPut
	if cas {
		kind = KindCAS
	}
	op := c.begin(Op{Kind: kind, File: true, Sum: sum, Key: key, Value: tok, Expect: expect})
	octx, cancel := context.WithTimeout(ctx, c.w.Timeout)
	var idx uint64
	var err error
	if cas {
		idx, err = c.conn.PutFileCAS(octx, key, expect, uint64(len(data)), sum, bytes.NewReader(data))
	} else {
		idx, err = c.conn.PutFile(octx, key, uint64(len(data)), sum, bytes.NewReader(data))
	}
	cancel()
	c.endWrite(op, key, idx, err)
	// The proxy closes the connection after a PUTFILE it could not store
	// (its bytes may not all have been read): start afresh after any
	// failure but a conflict.
	var se *line.ServerError
	if err != nil && !(errors.As(err, &se) && se.Code == line.CodeConflict) {
		c.drop()
	}
}

// replicaFileCheck bounds how long checkReplicaFiles tries a replica
// that does not serve a file right (it fetches chunks it lacks from its
// peers first, and a peer may be slow to answer just after a run).
const replicaFileCheck = 30 * time.Second

// checkReplicaFiles reads, from every replica in ids straight over the
// wire (a stale GET RANGE, as a proxy would send it to a follower), the
// file that each file key's final read found, and reports every replica
// that does not serve it byte for byte at that version: the last file of
// every key, acknowledged or of unknown outcome but there at the end,
// must be whole on every member, even one wiped or rebuilt from a
// snapshot during the run. It returns what it checked and what failed.
func checkReplicaFiles(ctx context.Context, dial func(context.Context, uint64) (*wire.Client, error), ids []uint64, ops []Op, reg *fileRegistry) (checked int, errs []string) {
	type final struct {
		key, token string
		version    uint64
	}
	var finals []final
	for i := range ops {
		op := &ops[i]
		if op.Final && op.Outcome == OK && isFileKey(op.Key) {
			finals = append(finals, final{op.Key, op.Value, op.Index})
		}
	}
	for _, f := range finals {
		if !strings.HasSuffix(f.token, ";") || strings.Contains(f.token, "(") {
			continue // not a file that was written: the read checks report it
		}
		want := fileData(f.token, reg.chunk)
		for _, id := range ids {
			checked++
			if err := replicaServes(ctx, dial, id, f.key, f.version, want); err != nil {
				errs = append(errs, fmt.Sprintf("file %s (%q, version %d, %d bytes) on replica %d: %v", f.key, f.token, f.version, len(want), id, err))
			}
		}
	}
	return checked, errs
}

// replicaServes reads key from replica id until it answers want at
// version, or replicaFileCheck (or ctx) runs out.
func replicaServes(ctx context.Context, dial func(context.Context, uint64) (*wire.Client, error), id uint64, key string, version uint64, want []byte) error {
	ctx, cancel := context.WithTimeout(ctx, replicaFileCheck)
	defer cancel()
	var last error
	for {
		last = replicaRead(ctx, dial, id, key, version, want)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (for %v)", last, replicaFileCheck)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func replicaRead(ctx context.Context, dial func(context.Context, uint64) (*wire.Client, error), id uint64, key string, version uint64, want []byte) error {
	cl, err := dial(ctx, id)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer cl.Close()
	rep, err := cl.Do(ctx, &wire.Request{Op: wire.OpGetRange, Key: key, Consistency: wire.Stale, Offset: 0, Length: uint64(len(want))})
	switch {
	case err != nil:
		return fmt.Errorf("GET RANGE: %w", err)
	case rep.Code != wire.CodeOK:
		return fmt.Errorf("%w: answered %v %s", errFileRead, rep.Code, rep.Msg)
	case rep.Version != version:
		return fmt.Errorf("%w: version %d", errFileRead, rep.Version)
	case rep.Size != uint64(len(want)) || !bytes.Equal(rep.Value, want):
		return fmt.Errorf("%w: %d of %d bytes, sha256 %s", errFileRead, len(rep.Value), rep.Size, sumHex(rep.Value))
	case rep.Sum != sumHex(want):
		return fmt.Errorf("%w: the reply names sha256 %s", errFileRead, rep.Sum)
	}
	return nil
}
