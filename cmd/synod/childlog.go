package main

import (
	"bytes"
	"io"
	"sync"
)

// maxPartialLine bounds how much of an unfinished log line a prefixWriter
// holds; a child that writes a longer line without '\n' has it cut there, so
// a runaway child cannot make `synod up` grow without bound.
const maxPartialLine = 64 << 10

// lineSink is where every child's log lines meet. Whole lines are written in
// one call under a mutex, so lines of different children never interleave.
type lineSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *lineSink) writeLine(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A failed write to our own stderr must not stall or kill a child: drop it.
	s.w.Write(b)
}

// prefixWriter labels each line a child writes with the child's name: as
// "node1 | …" for console logs, or as a leading "proc" field for JSON lines
// so they stay valid JSON. exec.Cmd calls Write from one goroutine when
// Stdout and Stderr are the same writer; Flush is called after Wait.
type prefixWriter struct {
	sink   *lineSink
	name   string
	json   bool
	prefix []byte
	buf    []byte // the current unfinished line
	out    []byte // scratch for the labelled line
}

func newPrefixWriter(sink *lineSink, name string, json bool) *prefixWriter {
	return &prefixWriter{sink: sink, name: name, json: json, prefix: []byte(padRight(name, 6) + "| ")}
}

func padRight(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}

// Write never fails: what a child logs is best effort, its life is not.
func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			room := maxPartialLine - len(p.buf)
			if len(b) <= room {
				p.buf = append(p.buf, b...)
				break
			}
			p.buf = append(p.buf, b[:room]...)
			b = b[room:]
			p.emit()
			continue
		}
		p.buf = append(p.buf, b[:i]...)
		b = b[i+1:]
		p.emit()
	}
	return n, nil
}

// Flush writes out an unfinished last line.
func (p *prefixWriter) Flush() {
	if len(p.buf) > 0 {
		p.emit()
	}
}

// emit writes p.buf, labelled and ended with '\n', and empties it.
func (p *prefixWriter) emit() {
	line := bytes.TrimSuffix(p.buf, []byte("\r"))
	out := p.out[:0]
	if p.json && len(line) > 0 && line[0] == '{' {
		out = append(out, `{"proc":"`...)
		out = append(out, p.name...)
		out = append(out, '"')
		if rest := bytes.TrimLeft(line[1:], " "); len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		out = append(out, line[1:]...)
	} else {
		out = append(out, p.prefix...)
		out = append(out, line...)
	}
	out = append(out, '\n')
	p.sink.writeLine(out)
	p.out = out
	p.buf = p.buf[:0]
}
