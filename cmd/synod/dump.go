package main

// This file owns `synod dump DIR`: the log of a stopped replica as readable
// lines, one per record (slot, ballot, kind, the commands decoded), or one
// JSON object per record, for debugging and grep. It reads the log with
// wal.Verify, so it never writes, and it goes on past damage, which it
// reports on stderr (exit 1). It runs on the command's goroutine.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
	"synod/wire"
)

func init() { commandMakers = append(commandMakers, dumpCommand) }

func dumpCommand() *cli.Command {
	return &cli.Command{
		Name:      "dump",
		Usage:     "print a stopped replica's log, one record a line (offline; it never writes)",
		ArgsUsage: "DIR",
		Description: "DIR is a data directory (or its log directory). Each line is one record:\n" +
			"  <slot> <ballot> cmds <n> | <op> <key> ... s=<client>.<seq>.<ack>[.r] | ...\n" +
			"  <slot> <ballot> noop\n" +
			"  <slot> <ballot> config <id>=<addr> ... (+ marks a learner)\n" +
			"  <slot> - commit            (every slot up to <slot> is chosen)\n" +
			"Values are quoted with Go escapes and cut after 48 bytes. Damage is reported on\n" +
			"stderr, and the dump goes on from the next whole batch (exit 1).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per record, values whole"},
			&cli.Uint64Flag{Name: "from", Usage: "only slots from this one"},
			&cli.Uint64Flag{Name: "to", Usage: "only slots up to this one (0: the end)"},
		},
		OnUsageError: onUsageError,
		Action:       withLateFlags(nil, runDump),
	}
}

// logDirOf returns the log directory of dir: dir/log, or dir itself if it
// is a log directory.
func logDirOf(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	if fi, err := os.Stat(filepath.Join(dir, "log")); err == nil && fi.IsDir() {
		return filepath.Join(dir, "log"), nil
	}
	if _, err := os.Stat(filepath.Join(dir, "SEGMENTS")); err == nil {
		return dir, nil
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(m) > 0 {
		return dir, nil
	}
	return "", fmt.Errorf("%s has no log: %w", dir, fs.ErrNotExist)
}

func runDump(c *cli.Context, args []string) error {
	if len(args) != 1 {
		return usageError("dump wants one argument, the data directory (see synod dump --help)")
	}
	dir := args[0]
	from, to := c.Uint64("from"), c.Uint64("to")
	if to != 0 && to < from {
		return usageError("dump: --to %d is below --from %d", to, from)
	}
	logDir, err := logDirOf(dir)
	if err != nil {
		return usageError("dump %s: %v", dir, err)
	}
	w := bufio.NewWriterSize(c.App.Writer, 64<<10)
	asJSON := c.Bool("json")
	enc := json.NewEncoder(w)
	var line []byte
	rep, err := wal.Verify(logDir, wal.Options{}, func(at wal.Position, r wal.Record) error {
		if r.Slot < from || (to != 0 && r.Slot > to) {
			return nil
		}
		if asJSON {
			return enc.Encode(dumpJSON(relTo(dir, at.File), at.Line, r))
		}
		line = appendDumpLine(line[:0], r)
		_, err := w.Write(line)
		return err
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("dump %s: %w", dir, err)
	}
	var problems []string
	if rep.ManifestDamage != nil {
		problems = append(problems, rep.ManifestDamage.Error())
	}
	for _, m := range rep.Missing {
		problems = append(problems, "missing: "+m)
	}
	for _, s := range rep.Segments {
		switch {
		case s.Stale:
			continue
		case s.Err != nil:
			problems = append(problems, s.Err.Error())
		case s.Torn:
			fmt.Fprintf(c.App.ErrWriter, "synod: dump: %s:%d: an incomplete last batch of %d bytes (never acknowledged; the node cuts it off)\n", relTo(dir, s.Path), s.TornLine, s.TornBytes)
		}
		for _, d := range s.Damage {
			problems = append(problems, fmt.Sprintf("%s:%d: %s", relTo(dir, d.File), d.Line, d.Reason))
		}
	}
	for _, p := range problems[:max(0, len(problems)-1)] {
		fmt.Fprintf(c.App.ErrWriter, "synod: dump: %s\n", p)
	}
	if len(problems) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("dump: %s", problems[len(problems)-1])}
	}
	return nil
}

// relTo names path relative to dir when it is inside it.
func relTo(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return path
}

// dumpValueMax is how much of a value a text dump shows.
const dumpValueMax = 48

// appendDumpLine appends r's text line, newline included.
func appendDumpLine(b []byte, r wal.Record) []byte {
	b = strconv.AppendUint(b, r.Slot, 10)
	if r.Kind == wal.KindCommit {
		return append(b, " - commit\n"...)
	}
	b = append(b, ' ')
	b = append(b, r.Ballot.String()...)
	b = append(b, ' ')
	b = append(b, r.Value.String()...)
	switch r.Value {
	case paxos.ValueCmds:
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(len(r.Cmds)), 10)
		for _, cmd := range r.Cmds {
			b = append(b, " | "...)
			b = appendCommandText(b, cmd)
		}
	case paxos.ValueConfig:
		conf, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: r.Cmds})
		if err != nil {
			b = append(b, " ?"...)
			for _, cmd := range r.Cmds {
				b = append(b, ' ')
				b = appendQuoted(b, cmd)
			}
			break
		}
		b = append(b, ' ')
		b = append(b, membersText(conf)...)
	}
	return append(b, '\n')
}

// appendCommandText appends one command: op, key, the CAS version, the
// value (quoted, cut) and the session.
func appendCommandText(b []byte, raw []byte) []byte {
	cmd, err := filestore.DecodeCommand(raw)
	if err != nil {
		b = append(b, '?')
		return appendQuoted(b, raw)
	}
	b = append(b, filestore.OpWord(cmd.Op)...)
	b = append(b, ' ')
	b = append(b, cmd.Key...)
	if cmd.Op == wire.OpCAS {
		b = append(b, " if="...)
		b = strconv.AppendUint(b, cmd.Version, 10)
	}
	if cmd.Op != wire.OpDel {
		b = append(b, ' ')
		b = appendQuoted(b, cmd.Value)
	}
	b = append(b, " s="...)
	return appendSession(b, cmd)
}

// appendSession writes the session field as the command encoding does:
// client.seq.ack[.r]; "-" (or "-.<seq>") for no session, client.seq(v1)
// for the version 1 form.
func appendSession(b []byte, cmd filestore.Command) []byte {
	switch {
	case cmd.ClientID == 0 && cmd.Seq == 0:
		return append(b, '-')
	case cmd.ClientID == 0:
		b = append(b, "-."...)
		return strconv.AppendUint(b, cmd.Seq, 10)
	case cmd.Legacy:
		b = strconv.AppendUint(b, cmd.ClientID, 10)
		b = append(b, '.')
		b = strconv.AppendUint(b, cmd.Seq, 10)
		return append(b, "(v1)"...)
	}
	b = strconv.AppendUint(b, cmd.ClientID, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, cmd.Seq, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, cmd.Ack, 10)
	if cmd.Retry {
		b = append(b, ".r"...)
	}
	return b
}

// appendQuoted appends v Go-quoted, cut after dumpValueMax bytes (on a
// rune boundary) with its length: "abc…"(1000B).
func appendQuoted(b []byte, v []byte) []byte {
	if len(v) <= dumpValueMax {
		return strconv.AppendQuote(b, string(v))
	}
	cut := dumpValueMax
	for cut > dumpValueMax-utf8.UTFMax && !utf8.RuneStart(v[cut]) {
		cut--
	}
	b = strconv.AppendQuote(b, string(v[:cut]))
	b = append(b, "…("...)
	b = strconv.AppendInt(b, int64(len(v)), 10)
	return append(b, "B)"...)
}

// dumpRecord is the --json form of one record.
type dumpRecord struct {
	File    string       `json:"file"`
	Line    int          `json:"line"`
	Slot    uint64       `json:"slot"`
	Kind    string       `json:"kind"` // "accept" or "commit"
	Ballot  string       `json:"ballot,omitempty"`
	Value   string       `json:"value,omitempty"` // "cmds", "noop" or "config"
	Cmds    []dumpCmd    `json:"cmds,omitempty"`
	Members []dumpMember `json:"members,omitempty"`
	// Raw holds the commands of a config value that does not decode.
	Raw []string `json:"raw,omitempty"`
}

// dumpCmd is one decoded command; a command that does not decode has only
// Error and Raw (or RawBase64).
type dumpCmd struct {
	Op          string `json:"op,omitempty"`
	Key         string `json:"key,omitempty"`
	Client      uint64 `json:"client"`
	Seq         uint64 `json:"seq"`
	Ack         uint64 `json:"ack,omitempty"`
	Retry       bool   `json:"retry,omitempty"`
	Legacy      bool   `json:"legacy,omitempty"`
	Stamp       int64  `json:"stamp"`
	Version     uint64 `json:"version,omitempty"` // the CAS's expected version
	Value       string `json:"value,omitempty"`
	ValueBase64 []byte `json:"value_base64,omitempty"`
	Size        int    `json:"size"`
	Error       string `json:"error,omitempty"`
	Raw         string `json:"raw,omitempty"`
	RawBase64   []byte `json:"raw_base64,omitempty"`
}

type dumpMember struct {
	ID    uint64 `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}

func dumpJSON(file string, line int, r wal.Record) dumpRecord {
	d := dumpRecord{File: file, Line: line, Slot: r.Slot, Kind: "commit"}
	if r.Kind == wal.KindCommit {
		return d
	}
	d.Kind, d.Ballot, d.Value = "accept", r.Ballot.String(), r.Value.String()
	switch r.Value {
	case paxos.ValueCmds:
		d.Cmds = make([]dumpCmd, 0, len(r.Cmds))
		for _, raw := range r.Cmds {
			d.Cmds = append(d.Cmds, dumpCommandJSON(raw))
		}
	case paxos.ValueConfig:
		conf, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: r.Cmds})
		if err != nil {
			for _, c := range r.Cmds {
				d.Raw = append(d.Raw, strconv.Quote(string(c)))
			}
			break
		}
		for _, m := range conf.Members {
			d.Members = append(d.Members, dumpMember{ID: uint64(m.ID), Addr: m.Addr, Voter: m.Voter})
		}
	}
	return d
}

func dumpCommandJSON(raw []byte) dumpCmd {
	cmd, err := filestore.DecodeCommand(raw)
	if err != nil {
		d := dumpCmd{Error: err.Error(), Size: len(raw)}
		if utf8.Valid(raw) {
			d.Raw = string(raw)
		} else {
			d.RawBase64 = raw
		}
		return d
	}
	d := dumpCmd{Op: filestore.OpWord(cmd.Op), Key: cmd.Key, Client: cmd.ClientID, Seq: cmd.Seq, Ack: cmd.Ack,
		Retry: cmd.Retry, Legacy: cmd.Legacy, Stamp: cmd.Stamp, Size: len(cmd.Value)}
	if cmd.Op == wire.OpCAS {
		d.Version = cmd.Version
	}
	if utf8.Valid(cmd.Value) {
		d.Value = string(cmd.Value)
	} else {
		d.ValueBase64 = cmd.Value
	}
	return d
}
