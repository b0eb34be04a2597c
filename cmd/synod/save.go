package main

// This file owns `synod snapshot save FILE`: an online backup through the
// proxy at --addr (the SNAPSHOT stream, wire/line/snapshot.go). The
// stream goes into a temporary file beside FILE as it arrives; once it is
// whole (its size and CRC-32C are the ones the stream's END announced),
// the file is fsynced, read back as `snapshot status` reads it (every
// line's checksum, the trailer, the counts, and the state digest against
// the one the replica reported; for a tar archive of large files, every
// chunk against its name and none missing: backupfile.go), renamed to FILE
// and the directory
// fsynced. So FILE is either the old file or a whole, checked backup,
// never a part of one. A stream that breaks off (the replica or the proxy
// died, a transient ERR) starts again from the beginning, --retries times.
// It runs on the command's goroutine; the progress line is written from it.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synod/wire/line"
)

func init() { snapshotSubcommands = append(snapshotSubcommands, snapshotSaveCommand) }

// saveResult is what save did, and its --json form.
type saveResult struct {
	File     string `json:"file"`
	Index    uint64 `json:"index"`
	Slot     uint64 `json:"slot"`
	Replica  uint64 `json:"replica"`
	Keys     int    `json:"keys"`
	Bytes    int64  `json:"bytes"` // of every value
	Size     uint64 `json:"size"`  // of the file
	Checksum string `json:"checksum"`
	Digest   string `json:"digest"`
	// Chunks of large files the backup carries (then a tar archive of the
	// snapshot and them: backupfile.go).
	Chunks     int    `json:"chunks"`
	ChunkBytes int64  `json:"chunk_bytes"`
	Attempts   int    `json:"attempts"`
	Took       string `json:"took"`
}

func snapshotSaveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "take a backup of the whole store while the cluster serves (through the proxy)",
		ArgsUsage: "FILE",
		Description: "Asks the proxy at --addr for a consistent snapshot of the whole store at one index,\n" +
			"taken by a follower (the master only when no follower can) without pausing writes,\n" +
			"and writes it to FILE: first to a temporary file beside it, which is checked, fsynced\n" +
			"and renamed, so FILE is a whole backup or left as it was. At the default consistency\n" +
			"(linearizable) the backup holds every write acknowledged before save began; with\n" +
			"--consistency stale it is what the most advanced live replica has applied, which\n" +
			"needs no master (after the loss of a majority, say). Prints the index it was taken\n" +
			"at, the keys, the bytes and the checksum. When the store holds large files, FILE is a\n" +
			"tar archive of the snapshot and every chunk they refer to, each checked. A stream\n" +
			"that breaks off starts again, up to --retries times. Exit 3 when the cluster could\n" +
			"not give one.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:7000", Usage: "the proxy to talk to", EnvVars: env("addr")},
			&cli.StringFlag{Name: "consistency", Usage: "linearizable (the default), session or stale", EnvVars: env("consistency")},
			&cli.IntFlag{Name: "chunk", Value: line.DefaultSnapshotChunk, Usage: fmt.Sprintf("bytes per piece of the stream (%d to %d)", line.MinSnapshotChunk, line.MaxSnapshotChunk)},
			&cli.IntFlag{Name: "retries", Value: 2, Usage: "how often a stream that broke off starts again"},
			&cli.DurationFlag{Name: "timeout", Value: time.Hour, Usage: "give up after this long", EnvVars: env("timeout")},
			&cli.BoolFlag{Name: "json", Usage: "print what was saved as one JSON object"},
			&cli.BoolFlag{Name: "progress", Usage: "show progress on stderr even when it is not a terminal"},
			maxValueFlag(),
		},
		OnUsageError: onUsageError,
		Action:       withLateFlags(nil, runSave),
	}
}

func runSave(c *cli.Context, args []string) error {
	if len(args) != 1 {
		return usageError("snapshot save wants one argument, the file to write")
	}
	file := args[0]
	what := "snapshot save " + file
	chunk := c.Int("chunk")
	if chunk < line.MinSnapshotChunk || chunk > line.MaxSnapshotChunk {
		return usageError("--chunk %d: want %d to %d bytes", chunk, line.MinSnapshotChunk, line.MaxSnapshotChunk)
	}
	if c.Int("retries") < 0 {
		return usageError("--retries %d: want 0 or more", c.Int("retries"))
	}
	var level line.Level
	hasLevel := c.String("consistency") != ""
	if hasLevel {
		var err error
		if level, err = line.ParseLevel(c.String("consistency")); err != nil {
			return usageError("--consistency %q: want linearizable, session or stale", c.String("consistency"))
		}
	}
	timeout := c.Duration("timeout")
	if timeout <= 0 {
		return usageError("--timeout %v: want a positive duration", timeout)
	}
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return usageError("%s is a directory; name the backup file", file)
	}
	dir := filepath.Dir(file)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return &exitError{code: 1, err: fmt.Errorf("%s: the directory %s does not exist", what, dir)}
	}
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	start := time.Now()
	var prog *progressLine
	if c.Bool("progress") || isTerminal(c.App.ErrWriter) {
		prog = &progressLine{w: c.App.ErrWriter}
	}
	s := saver{ctx: ctx, addr: c.String("addr"), level: level, hasLevel: hasLevel, chunk: uint64(chunk),
		file: file, maxValue: c.Int("max-value"), prog: prog}
	var res saveResult
	var err error
	for attempt := 1; ; attempt++ {
		var started bool
		res, started, err = s.attempt()
		if err == nil {
			res.Attempts = attempt
			break
		}
		if !retryable(err, started) || attempt > c.Int("retries") || ctx.Err() != nil {
			return saveError(what, err)
		}
		fmt.Fprintf(c.App.ErrWriter, "synod: %v; starting again (attempt %d of %d)\n", &verbError{what: what, err: err}, attempt+1, c.Int("retries")+1)
		select {
		case <-ctx.Done():
			return saveError(what, ctx.Err())
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	res.Took = time.Since(start).Round(time.Millisecond).String()
	if c.Bool("json") {
		err = json.NewEncoder(c.App.Writer).Encode(res)
	} else {
		_, err = fmt.Fprintf(c.App.Writer, "saved %s: index %d (slot %d) from replica %d\n"+
			"  keys      %d\n"+
			"  bytes     %d of values, %d in the file\n"+
			"  checksum  crc32c %s\n"+
			"  digest    %s\n",
			res.File, res.Index, res.Slot, res.Replica, res.Keys, res.Bytes, res.Size, res.Checksum, res.Digest)
		if err == nil && res.Chunks > 0 {
			_, err = fmt.Fprintf(c.App.Writer, "  chunks    %d of large files, %d bytes (the file is a tar archive of the snapshot and them)\n", res.Chunks, res.ChunkBytes)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: write output: %w", what, err)
	}
	return nil
}

// errReceivedBad marks a backup that arrived whole but does not check out:
// not worth a retry from the same cluster, exit 1.
var errReceivedBad = errors.New("the backup received does not check out")

// retryable reports whether a new attempt may succeed where err failed:
// a stream that broke off (started: its header had come) with a transient
// ERR, or a connection that broke. A refusal before the stream started
// comes after the proxy tried every replica for its hold window: trying
// again would only wait as long again.
func retryable(err error, started bool) bool {
	var se *line.ServerError
	switch {
	case errors.Is(err, errReceivedBad), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &se):
		return started && se.Transient()
	case errors.Is(err, line.ErrBadRequest), errors.Is(err, line.ErrTooLarge):
		return false
	}
	var pe *os.PathError
	return !errors.As(err, &pe) // a local file's trouble does not go away
}

func saveError(what string, err error) error {
	code := exitUnavailable
	var pe *os.PathError
	switch {
	case errors.Is(err, errReceivedBad), errors.As(err, &pe):
		code = 1
	case errors.Is(err, line.ErrBadRequest), errors.Is(err, line.ErrTooLarge):
		code = exitUsage
	}
	return &exitError{code: code, err: &verbError{what: what, err: err}}
}

// saver is one save's settings.
type saver struct {
	ctx      context.Context
	addr     string
	level    line.Level
	hasLevel bool
	chunk    uint64
	file     string
	maxValue int
	prog     *progressLine
}

// attempt takes one backup into a temporary file and, if it checks out,
// renames it to the file. started says whether the stream's header came.
func (s *saver) attempt() (res saveResult, started bool, err error) {
	res, err = s.take(&started)
	return res, started, err
}

func (s *saver) take(started *bool) (saveResult, error) {
	cl, err := line.Dial(s.ctx, s.addr, line.Options{})
	if err != nil {
		return saveResult{}, fmt.Errorf("cannot reach synod at %s (is `synod up` running? --addr / SYNOD_ADDR choose another): %w", s.addr, err)
	}
	defer cl.Close()
	if s.hasLevel {
		if err := cl.SetConsistency(s.ctx, s.level); err != nil {
			return saveResult{}, err
		}
	}
	dir, base := filepath.Split(s.file)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return saveResult{}, err
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	info, err := cl.Snapshot(s.ctx, s.chunk, bw, func(h line.SnapshotHeader, n uint64) {
		*started = true
		s.prog.update(h, n)
	})
	s.prog.done()
	if err != nil {
		return saveResult{}, err
	}
	if err := bw.Flush(); err != nil {
		return saveResult{}, err
	}
	if err := tmp.Sync(); err != nil {
		return saveResult{}, err
	}
	if err := tmp.Close(); err != nil {
		return saveResult{}, err
	}
	bf, err := loadBackup(tmp.Name(), s.maxValue)
	if err != nil {
		return saveResult{}, fmt.Errorf("%w: %w", errReceivedBad, err)
	}
	m, meta := bf.m, bf.meta
	switch {
	case meta.Index != info.Index || meta.Slot != info.Slot:
		return saveResult{}, fmt.Errorf("%w: it holds index %d, slot %d; the stream said %d and %d", errReceivedBad, meta.Index, meta.Slot, info.Index, info.Slot)
	case info.Digest != "" && m.Digest() != info.Digest:
		return saveResult{}, fmt.Errorf("%w: its state digest is %s, replica %d had %s", errReceivedBad, m.Digest(), info.Replica, info.Digest)
	}
	if err := os.Rename(tmp.Name(), s.file); err != nil {
		return saveResult{}, err
	}
	keep = true
	if err := syncDirOf(dir); err != nil {
		return saveResult{}, err
	}
	return saveResult{File: s.file, Index: meta.Index, Slot: meta.Slot, Replica: info.Replica, Keys: meta.Files,
		Bytes: m.ValueBytes(), Size: info.Size, Checksum: fmt.Sprintf("%08x", meta.Checksum), Digest: m.Digest(),
		Chunks: bf.held, ChunkBytes: bf.heldBytes}, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine shows a backup's progress on one line of stderr, redrawn at
// most five times a second. A nil *progressLine shows nothing.
type progressLine struct {
	w      io.Writer
	start  time.Time
	last   time.Time
	shown  bool
	header line.SnapshotHeader
}

// update is Client.Snapshot's progress callback.
func (p *progressLine) update(h line.SnapshotHeader, n uint64) {
	if p == nil {
		return
	}
	now := time.Now()
	if n == 0 {
		p.start, p.header = now, h
	}
	if p.shown && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	// The file's size is not known before its end: values (escaped) and
	// one line per key, about 40 bytes besides the key and value.
	est := h.Bytes + 48*h.Keys + 64
	pct := min(99, 100*n/max(est, 1))
	rate := float64(n) / max(now.Sub(p.start).Seconds(), 1e-3) / (1 << 20)
	const width = 30
	bar := strings.Repeat("#", int(pct)*width/100) + strings.Repeat(".", width-int(pct)*width/100)
	fmt.Fprintf(p.w, "\r[%s] ~%2d%%  %.1f MiB  %.1f MiB/s  index %d from replica %d ", bar, pct,
		float64(n)/(1<<20), rate, h.Index, h.Replica)
}

// done ends the progress line.
func (p *progressLine) done() {
	if p != nil && p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}
