package benchcli

// This file owns the progress bar a run shows on a terminal: its phase and,
// while measuring, the throughput so far. Its update is bench.Run's
// Progress callback, called on the goroutine that called bench.Run, one
// call at a time; finish runs there too, after Run returns.

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"synod/bench"
)

// isTerminal reports whether w is a terminal: the progress bar is for people,
// and would litter a log file or a pipe.
func isTerminal(w io.Writer) bool {
	f, ok := w.(writerFd)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows a run's phase and, while measuring, the throughput so far.
type progress struct {
	bar   *progressbar.ProgressBar
	phase string
}

func newProgress(w io.Writer) *progress {
	return &progress{bar: progressbar.NewOptions64(1000,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionShowElapsedTimeOnFinish(),
	)}
}

func (p *progress) update(pr bench.Progress) {
	if pr.Phase != p.phase {
		p.phase = pr.Phase
		p.bar.Reset()
	}
	desc := pr.Phase
	if pr.Phase == "measure" && pr.Elapsed > 0 {
		desc = fmt.Sprintf("measure %7.0f ops/s", float64(pr.Ops)/pr.Elapsed.Seconds())
	}
	p.bar.Describe(fmt.Sprintf("%-20s", desc))
	if pr.Total > 0 {
		_ = p.bar.Set64(min(1000, int64(1000*pr.Elapsed/pr.Total)))
	}
}

func (p *progress) finish() {
	_ = p.bar.Clear()
}
