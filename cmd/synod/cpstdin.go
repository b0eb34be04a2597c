package main

// This file owns `synod cp - :key` of a large stream: stdin up to
// --chunked-above bytes is kept in memory and sent as one value; past it,
// the whole stream is spooled to an unnamed temporary file (created in
// $TMPDIR and removed at once, so nothing is left behind however cp ends)
// while its SHA-256 is computed, and then uploaded from there with
// PUTFILE, which needs the size and the checksum before the bytes. It runs
// on the command's goroutine, as every client verb.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// spool is stdin written to an unnamed temporary file.
type spool struct {
	f    *os.File // at offset 0; closed by the upload
	size int64
	sum  string // SHA-256, hex
}

// readStdin reads r. A stream of at most limit bytes is returned whole; a
// longer one is spooled and returned as sp (data is then nil).
func readStdin(r io.Reader, limit int64) (data []byte, sp *spool, err error) {
	var head bytes.Buffer
	n, err := io.Copy(&head, io.LimitReader(r, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read stdin: %w", err)
	}
	if n <= limit {
		return head.Bytes(), nil, nil
	}
	f, err := os.CreateTemp("", "synod-cp-stdin-*")
	if err != nil {
		return nil, nil, fmt.Errorf("spool stdin: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("spool stdin: %w", err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	size, err := io.Copy(w, io.MultiReader(&head, r))
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("spool stdin in %s (TMPDIR): %w", os.TempDir(), err)
	}
	return nil, &spool{f: f, size: size, sum: hex.EncodeToString(h.Sum(nil))}, nil
}
