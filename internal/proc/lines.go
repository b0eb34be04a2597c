package proc

// This file owns labelled log lines: several children's output merged into
// one stream (`synod up`'s stderr), each line labelled with the child's
// name. A child's writer is called by the exec.Cmd goroutine that copies its
// pipe, and flushed by the goroutine that reaps the child once that copy has
// ended; the merged stream is written under a mutex, whole lines at a time.

import (
	"bytes"
	"io"
	"sync"
)

// maxPartialLine bounds how much of an unfinished line a child's writer
// holds; a child that writes a longer line without '\n' has it cut there,
// so a runaway child cannot make its supervisor grow without bound.
const maxPartialLine = 64 << 10

// Lines is where the output of children started with Spec.Lines meets.
// Each line is labelled with the child's name: as "node1 | …" for text, or,
// if json is set and the line is a JSON object, as a leading "proc" field so
// it stays valid JSON. Lines of different children never interleave.
type Lines struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

// NewLines returns a Lines that writes to w.
func NewLines(w io.Writer, json bool) *Lines { return &Lines{w: w, json: json} }

func (l *Lines) writeLine(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A failed write to our own stderr must not stall or kill a child: drop it.
	l.w.Write(b)
}

// writer returns the writer for one child's stdout and stderr.
func (l *Lines) writer(name string) *lineWriter {
	return &lineWriter{lines: l, name: name, prefix: []byte(padRight(name, 6) + "| ")}
}

func padRight(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}

// lineWriter labels each line one child writes. exec.Cmd calls Write from
// one goroutine when Stdout and Stderr are the same writer; flush is called
// after Wait, when no Write can follow.
type lineWriter struct {
	lines  *Lines
	name   string
	prefix []byte
	buf    []byte // the current unfinished line
	out    []byte // scratch for the labelled line
}

// Write never fails: what a child logs is best effort, its life is not.
func (w *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			room := maxPartialLine - len(w.buf)
			if len(b) <= room {
				w.buf = append(w.buf, b...)
				break
			}
			w.buf = append(w.buf, b[:room]...)
			b = b[room:]
			w.emit()
			continue
		}
		w.buf = append(w.buf, b[:i]...)
		b = b[i+1:]
		w.emit()
	}
	return n, nil
}

// flush writes out an unfinished last line.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit()
	}
}

// emit writes w.buf, labelled and ended with '\n', and empties it.
func (w *lineWriter) emit() {
	line := bytes.TrimSuffix(w.buf, []byte("\r"))
	out := w.out[:0]
	if w.lines.json && len(line) > 0 && line[0] == '{' {
		out = append(out, `{"proc":"`...)
		out = append(out, w.name...)
		out = append(out, '"')
		if rest := bytes.TrimLeft(line[1:], " "); len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		out = append(out, line[1:]...)
	} else {
		out = append(out, w.prefix...)
		out = append(out, line...)
	}
	out = append(out, '\n')
	w.lines.writeLine(out)
	w.out = out
	w.buf = w.buf[:0]
}
