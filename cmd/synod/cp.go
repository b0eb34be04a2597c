package main

// This file owns `synod cp`: a local file (or stdin) to a key, a key to a
// local file (written whole or not at all) or stdout, a key to a key. It
// runs on the command's goroutine, in the shape client.go gives every
// client verb.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/urfave/cli/v2"

	"synod/wire/line"
)

func init() { commandMakers = append(commandMakers, cpVerb.command) }

// cpResult is the --json form of cp.
type cpResult struct {
	Src   string `json:"src"`
	Dst   string `json:"dst"`
	Bytes int    `json:"bytes"`
	Index uint64 `json:"index,omitempty"` // the write's index, when DST is a key
}

var cpVerb = clientVerb{
	name:  "cp",
	usage: "copy a local file to a key, a key to a local file, or a key to a key; keys are written :key, - is stdin or stdout",
	description: "synod cp photo.jpg :img/cat.jpg    upload a file\n" +
		"synod cp :img/cat.jpg out.jpg      download (into a directory: its last path element)\n" +
		"synod cp - :notes                  from stdin; synod cp :notes - to stdout\n" +
		"synod cp --version 7 new.jpg :img/cat.jpg   replace the key only if it is at version 7 (0: only if it does not exist)\n" +
		"A download is written to a temporary file, synced and renamed into place.\n" +
		"A local file over --chunked-above bytes is uploaded with PUTFILE, streamed in chunks (up to the proxy's\n" +
		"--max-file-size, 16 GiB by default) and checked by its SHA-256; a large file is downloaded in ranges and\n" +
		"checked the same way. Stdin over --chunked-above bytes is first spooled to an unnamed temporary file in\n" +
		"$TMPDIR (PUTFILE needs the size and SHA-256 before the bytes; the file is gone once cp ends), then\n" +
		"uploaded the same way. --timeout bounds the whole copy: raise it for large files.",
	argsUsage: "SRC DST",
	read:      true,
	prepare:   prepareCp,
	flags: []cli.Flag{
		&cli.Int64Flag{Name: "chunked-above", Value: line.DefaultMaxValue, Usage: "upload a local file larger than this many bytes with PUTFILE, in chunks (the cluster's --max-value)", EnvVars: env("chunked-above")},
		&cli.BoolFlag{Name: "progress", Usage: "show a large copy's progress on stderr even when it is not a terminal"},
		&cli.Uint64Flag{Name: "version", Usage: "write DST only if that key is at this version (0: only if it does not exist), as CAS does; otherwise ERR CONFLICT and exit 1"},
	},
}

// prepareCp checks SRC and DST and reads a local source before connecting:
// a missing file is reported as such, not as a cluster problem.
func prepareCp(c *cli.Context) (request, error) {
	src, dst, err := parseCpArgs(c.Args().Slice())
	if err != nil {
		return request{}, err
	}
	if dst.Std && c.Bool("json") {
		return request{}, usageError("cp to - writes raw bytes to stdout: leave out --json")
	}
	var version *uint64 // --version, if set
	if c.IsSet("version") {
		if !dst.IsKey {
			return request{}, usageError("cp --version checks the key written: DST must be a key (:key)")
		}
		v := c.Uint64("version")
		version = &v
	}
	if !src.IsKey && !src.Std && dst.IsKey {
		if fi, err := os.Stat(src.Path); err == nil && fi.Mode().IsRegular() && fi.Size() > c.Int64("chunked-above") {
			return prepareUpload(c, src, dst, fi.Size(), version)
		}
	}
	var data []byte
	switch {
	case src.Std:
		d, sp, err := readStdin(c.App.Reader, min(c.Int64("chunked-above"), maxLocalValue))
		if err != nil {
			return request{}, fmt.Errorf("cp: %w", err)
		}
		if sp != nil {
			return uploadRequest(c, src, dst, sp.size, sp.sum, func() (*os.File, error) { return sp.f, nil }, version), nil
		}
		data = d
	case !src.IsKey:
		if data, err = readLocal(c, src); err != nil {
			return request{}, err
		}
	}
	what := fmt.Sprintf("cp %s %s", src, dst)
	return request{what: what, send: func(s *session) (output, error) {
		if src.IsKey {
			var err error
			if data, _, err = s.cl.Get(s.ctx, src.Key, 0); err != nil {
				if errors.Is(err, line.ErrTooLarge) && !dst.IsKey {
					// A large file: read it in ranges.
					return download(c, s, src, dst)
				}
				return nil, err
			}
		}
		res := cpResult{Src: src.String(), Dst: dst.String(), Bytes: len(data)}
		if dst.IsKey {
			var err error
			if version != nil {
				res.Index, err = s.cl.CAS(s.ctx, dst.Key, *version, data)
			} else {
				res.Index, err = s.cl.Put(s.ctx, dst.Key, data)
			}
			if err != nil {
				return nil, err
			}
			return printed(res, ""), nil
		}
		return func(s *session) error {
			if dst.Std {
				if _, err := s.out.Write(data); err != nil {
					return fmt.Errorf("%s: write stdout: %w", what, err)
				}
				return nil
			}
			p, err := writeLocal(dst.Path, src.Key, data)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			res.Dst = p
			return s.print(res, "")
		}, nil
	}}, nil
}

// readLocal reads a local file SRC.
func readLocal(c *cli.Context, src cpEnd) ([]byte, error) {
	f, err := os.Open(src.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &exitError{code: exitNotFound, err: fmt.Errorf("cp: %w", err)}
		}
		return nil, fmt.Errorf("cp: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, usageError("cp: %s is a directory: copy one file at a time", src.Path)
	}
	return readLimited(f, maxLocalValue, src.Path)
}

// writeLocal writes data to dst, or into dst/<last element of key> when dst
// is a directory, and returns the path written. The file appears whole or
// not at all: written to a temporary file beside it, synced, then renamed.
func writeLocal(dst, key string, data []byte) (string, error) {
	tmp, dst, err := createBeside(dst, key)
	if err != nil {
		return "", err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	done = true
	return dst, nil
}
