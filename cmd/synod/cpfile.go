package main

// This file owns `synod cp` of large files: an upload with PUTFILE that
// streams a local file (read twice: once for its SHA-256, once to send)
// or stdin's spool (cpstdin.go), with PUTFILE's VERSION for --version,
// and a download in GET ... RANGE pieces, into a temporary file renamed
// into place (or to stdout), checked against the file's SHA-256 and
// version at the end. Memory stays at one piece whatever the file's size.
// It runs on the command's goroutine, as every client verb.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// errChecksum is a download whose bytes do not hash to the file's SHA-256,
// or a file that changed while it was read.
var errChecksum = errors.New("checksum mismatch")

// rangePiece is the bytes a download asks for at a time.
const rangePiece = 4 << 20

// prepareUpload returns the request that uploads the local file src
// (size bytes) as dst's key with PUTFILE, at version *version if set.
func prepareUpload(c *cli.Context, src, dst cpEnd, size int64, version *uint64) (request, error) {
	sum, err := fileSum(src.Path)
	if err != nil {
		return request{}, fmt.Errorf("cp: %w", err)
	}
	return uploadRequest(c, src, dst, size, sum, func() (*os.File, error) { return os.Open(src.Path) }, version), nil
}

// uploadRequest is the request that uploads size bytes with SHA-256 sum,
// read from the file open gives (closed after), as dst's key with PUTFILE,
// or PUTFILE ... VERSION *version when version is set.
func uploadRequest(c *cli.Context, src, dst cpEnd, size int64, sum string, open func() (*os.File, error), version *uint64) request {
	what := fmt.Sprintf("cp %s %s", src, dst)
	prog := newCpProgress(c, "up", size)
	return request{what: what, send: func(s *session) (output, error) {
		f, err := open()
		if err != nil {
			return nil, fmt.Errorf("cp: %w", err)
		}
		defer f.Close()
		body := &countingReader{r: f, prog: prog}
		var idx uint64
		if version != nil {
			idx, err = s.cl.PutFileCAS(s.ctx, dst.Key, *version, uint64(size), sum, body)
		} else {
			idx, err = s.cl.PutFile(s.ctx, dst.Key, uint64(size), sum, body)
		}
		prog.done()
		if err != nil {
			return nil, err
		}
		return printed(cpResult{Src: src.String(), Dst: dst.String(), Bytes: int(size), Index: idx}, ""), nil
	}}
}

// fileSum returns the SHA-256 of the file at p in hex.
func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// download reads the large file src in ranges into dst (a path or
// stdout), and checks the whole against the SHA-256 the replicas gave.
// Every range must come from the same version of the file.
func download(c *cli.Context, s *session, src, dst cpEnd) (output, error) {
	what := fmt.Sprintf("cp %s %s", src, dst)
	first, err := s.cl.GetRange(s.ctx, src.Key, 0, rangePiece, 0)
	if err != nil {
		return nil, err
	}
	prog := newCpProgress(c, "down", int64(first.Len))
	var (
		out  io.Writer = s.out
		tmp  *os.File
		dest string
	)
	if !dst.Std {
		if tmp, dest, err = createBeside(dst.Path, src.Key); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		out = tmp
	}
	h := sha256.New()
	rep := first
	var off uint64
	for {
		if rep.Version != first.Version || rep.Len != first.Len || rep.Sum != first.Sum {
			return nil, fmt.Errorf("%s: %w: the file changed while it was read (version %d, then %d): try again", what, errChecksum, first.Version, rep.Version)
		}
		if len(rep.Value) == 0 && off < first.Len {
			return nil, fmt.Errorf("%s: an empty range at %d of %d bytes", what, off, first.Len)
		}
		if err := writeBoth(out, h, rep.Value); err != nil {
			return nil, fmt.Errorf("%s: write: %w", what, err)
		}
		off += uint64(len(rep.Value))
		prog.add(int64(len(rep.Value)))
		if off >= first.Len {
			break
		}
		if rep, err = s.cl.GetRange(s.ctx, src.Key, off, rangePiece, 0); err != nil {
			return nil, err
		}
	}
	prog.done()
	if got := hex.EncodeToString(h.Sum(nil)); got != first.Sum {
		return nil, fmt.Errorf("%s: %w: read bytes with sha256 %s, the file's is %s", what, errChecksum, got, first.Sum)
	}
	res := cpResult{Src: src.String(), Dst: dst.String(), Bytes: int(first.Len)}
	if dst.Std {
		return func(*session) error { return nil }, nil
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	tmp = nil
	res.Dst = dest
	return func(s *session) error { return s.print(res, "") }, nil
}

func writeBoth(w io.Writer, h hash.Hash, b []byte) error {
	h.Write(b)
	_, err := w.Write(b)
	return err
}

// createBeside opens a temporary file beside dst (or inside it, named by
// the key's last element, when dst is a directory) and returns it with the
// path it is to be renamed to, with dst's mode if it exists.
func createBeside(dst, key string) (*os.File, string, error) {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(dst); err == nil {
		if fi.IsDir() {
			dst = filepath.Join(dst, path.Base(key))
			if fi, err := os.Stat(dst); err == nil {
				mode = fi.Mode().Perm()
			}
		} else {
			mode = fi.Mode().Perm()
		}
	}
	dir, base := filepath.Split(dst)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".synod-*")
	if err != nil {
		return nil, "", err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, "", err
	}
	return tmp, dst, nil
}

// countingReader counts what an upload has read for the progress line.
type countingReader struct {
	r    io.Reader
	prog *cpProgress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.prog.add(int64(n))
	return n, err
}

// cpProgress shows a large copy's progress on one line of stderr, redrawn
// at most five times a second; a nil one shows nothing.
type cpProgress struct {
	w           io.Writer
	dir         string
	total, n    int64
	start, last time.Time
	shown       bool
}

func newCpProgress(c *cli.Context, dir string, total int64) *cpProgress {
	if !c.Bool("progress") && !isTerminal(c.App.ErrWriter) {
		return nil
	}
	return &cpProgress{w: c.App.ErrWriter, dir: dir, total: total, start: time.Now()}
}

func (p *cpProgress) add(n int64) {
	if p == nil {
		return
	}
	p.n += n
	now := time.Now()
	if p.shown && now.Sub(p.last) < 200*time.Millisecond && p.n < p.total {
		return
	}
	p.last, p.shown = now, true
	pct := 100 * p.n / max(p.total, 1)
	const width = 30
	bar := strings.Repeat("#", int(pct)*width/100) + strings.Repeat(".", width-int(pct)*width/100)
	rate := float64(p.n) / max(now.Sub(p.start).Seconds(), 1e-3) / (1 << 20)
	fmt.Fprintf(p.w, "\r[%s] %3d%%  %.1f of %.1f MiB  %.1f MiB/s %s ", bar, pct, float64(p.n)/(1<<20), float64(p.total)/(1<<20), rate, p.dir)
}

func (p *cpProgress) done() {
	if p != nil && p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}
