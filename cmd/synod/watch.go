package main

// This file owns the watch verb: synod watch [--from N] [--prev] [--json]
// KEY|PREFIX* prints every change to KEY (or under PREFIX) as it comes,
// one line each, until interrupted. A watch the proxy cuts for reading
// too slowly (CANCELED ... SLOW) is resumed from where it stopped, as is
// one whose connection breaks, so nothing is missed or printed twice. It
// runs on the command's goroutine.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"synod/wire/line"
)

func init() {
	commandMakers = append(commandMakers, watchCommand)
}

// eventResult is the --json form of one event or progress mark.
type eventResult struct {
	Index       uint64  `json:"index"`
	Op          string  `json:"op,omitempty"` // PUT, APPEND, DEL; empty for a progress mark
	Key         string  `json:"key,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	Prev        *string `json:"prev,omitempty"`
	PrevBase64  *string `json:"prev_base64,omitempty"`
	Progress    bool    `json:"progress,omitempty"`
}

func textOrBase64(b []byte) (text, b64 *string) {
	v := newValueResult("", b, 0)
	return v.Value, v.ValueBase64
}

func watchCommand() *cli.Command {
	flags := append(clientFlags(false),
		&cli.Uint64Flag{Name: "from", Usage: "the first index to show (the index after the state you read); default: from now"},
		&cli.BoolFlag{Name: "prev", Usage: "show each change's previous value too"},
		&cli.BoolFlag{Name: "progress", Usage: "print the PROGRESS marks of an idle watch too"},
		&cli.IntFlag{Name: "count", Usage: "exit after this many events (0: never)"},
	)
	return &cli.Command{
		Name:  "watch",
		Usage: "print every change to KEY, or to every key under PREFIX*, as it comes",
		Description: "Events print as `<index> PUT|APPEND|DEL <key> <value>` (APPEND shows the bytes appended), in index order,\n" +
			"each once. --from N resumes after a change you saw at N-1; an index older than the replicas' history is\n" +
			"refused COMPACTED with the oldest index left: read the keys (get/ls), then watch from their index + 1.",
		ArgsUsage:    "KEY|PREFIX*",
		OnUsageError: onUsageError,
		Flags:        flags,
		Action:       runWatch,
	}
}

func runWatch(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("watch takes KEY or PREFIX* (quote the * from the shell)")
	}
	req := line.Request{Cmd: line.CmdWatch, From: c.Uint64("from"), Prev: c.Bool("prev")}
	arg := c.Args().First()
	if strings.HasSuffix(arg, "*") {
		req.WatchPrefix, req.Key = true, strings.TrimSuffix(arg, "*")
	} else {
		req.Key = arg
	}
	if _, err := line.AppendRequest(nil, req); err != nil {
		return usageError("watch %q: %v", arg, err)
	}
	count := c.Int("count")
	seen := 0
	for backoff := 0; ; {
		s, err := openSession(c)
		if err != nil {
			return err
		}
		w, err := s.cl.Watch(s.ctx, req)
		if err != nil {
			s.close()
			return s.fail("watch "+arg, err)
		}
		if req.From == 0 {
			req.From = w.From()
		}
		stop := make(chan struct{})
		go func() {
			select {
			case <-c.Context.Done():
				w.Close()
			case <-stop:
			}
		}()
		var last line.WatchMessage
		err = func() error {
			for {
				m, err := w.Next()
				if err != nil {
					last = m
					return err
				}
				if m.Kind == line.WatchProgress {
					req.From = max(req.From, m.Index+1)
					if c.Bool("progress") {
						if err := s.print(eventResult{Index: m.Index, Progress: true}, "PROGRESS "+strconv.FormatUint(m.Index, 10)+"\n"); err != nil {
							return err
						}
					}
					continue
				}
				req.From = m.Index + 1
				if err := printEvent(s, m.Event); err != nil {
					return err
				}
				backoff = 0
				if seen++; count > 0 && seen >= count {
					return nil
				}
			}
		}()
		close(stop)
		s.close()
		var se *line.ServerError
		switch {
		case err == nil:
			return nil
		case c.Context.Err() != nil:
			return nil
		case errors.Is(err, line.ErrWatchCanceled) && last.Code == line.CodeSlow:
			// Cut for reading too slowly: resume where it stopped.
		case errors.As(err, &se), errors.Is(err, line.ErrWatchCanceled):
			return s.fail("watch "+arg, err)
		}
		// The connection broke (the proxy restarted?): resume.
		backoff++
		fmt.Fprintf(c.App.ErrWriter, "synod: watch %s interrupted (%v); resuming from %d\n", arg, err, req.From)
		time.Sleep(min(time.Duration(backoff)*100*time.Millisecond, 2*time.Second))
	}
}

// printEvent prints one event: a line of text, or one JSON object.
func printEvent(s *session, ev line.Event) error {
	r := eventResult{Index: ev.Index, Op: string(ev.Op), Key: ev.Key}
	r.Value, r.ValueBase64 = textOrBase64(ev.Value)
	if ev.Op == line.EventDel {
		r.Value, r.ValueBase64 = nil, nil
	}
	if ev.HadPrev {
		r.Prev, r.PrevBase64 = textOrBase64(ev.Prev)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s", ev.Index, ev.Op, ev.Key)
	if ev.Op != line.EventDel {
		b.WriteByte(' ')
		b.WriteString(shown(ev.Value))
	}
	if ev.WithPrev {
		if ev.HadPrev {
			b.WriteString(" (was " + shown(ev.Prev) + ")")
		} else {
			b.WriteString(" (new)")
		}
	}
	b.WriteByte('\n')
	return s.print(r, b.String())
}

// shown is a value as a person reads it on one line: text quoted only
// when it holds a newline or is not UTF-8.
func shown(v []byte) string {
	if utf8.Valid(v) && !strings.ContainsAny(string(v), "\r\n") {
		return string(v)
	}
	return strconv.Quote(string(v))
}
