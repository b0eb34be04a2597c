// Package plot draws a benchmark's timeline as a self-contained SVG file:
// throughput above, 99th percentile latency below on a log scale, on one time
// axis, with faults marked as vertical lines across both. It is written by
// hand rather than with a plotting library because two panels of step lines
// need about as much code as configuring one, and the file opens in any
// browser.
package plot

// This file owns all of it: the Timeline and WriteSVG. Pure: the caller's
// goroutine (benchcli, after a run).

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Timeline is what WriteSVG draws. The series hold one value per Step,
// starting at time 0.
type Timeline struct {
	// Title and Subtitle head the plot, Subtitle in smaller type.
	Title    string
	Subtitle string
	Step     time.Duration
	// Throughput is successful operations per second in each step.
	Throughput []float64
	// Errors is failed operations per second in each step; may be nil.
	Errors []float64
	// P99 is the 99th percentile latency in milliseconds; NaN, or zero and
	// below, where no operation completed.
	P99    []float64
	Events []Event
}

// Event is a moment marked on the plot, such as a kill.
type Event struct {
	At    time.Duration
	Label string
}

// Layout, in SVG user units.
const (
	width    = 960
	left     = 80 // room for the y labels
	right    = 24
	top      = 84 // title, subtitle and event labels
	panelH   = 200
	panelGap = 56
	bottom   = 48
	height   = top + 2*panelH + panelGap + bottom
	plotW    = width - left - right
)

// Colours.
const (
	colThroughput = "#1f77b4"
	colErrors     = "#d62728"
	colLatency    = "#9467bd"
	colEvent      = "#d62728"
	colGrid       = "#e0e0e0"
	colAxis       = "#444"
)

// WriteSVG writes t as an SVG document.
func WriteSVG(w io.Writer, t Timeline) error {
	bw := bufio.NewWriter(w)
	p := &painter{w: bw}
	n := max(len(t.Throughput), len(t.P99), len(t.Errors))
	step := t.Step
	if step <= 0 {
		step = 100 * time.Millisecond
	}
	span := float64(n) * step.Seconds()
	if span <= 0 {
		span = 1
	}
	xOf := func(sec float64) float64 { return left + plotW*sec/span }

	p.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p.printf(`<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	p.text(width/2, 22, "middle", 15, t.Title)
	p.text(width/2, 42, "middle", 12, t.Subtitle)

	// Throughput panel, linear from zero.
	y0 := float64(top)
	tmax := niceCeil(math.Max(maxFinite(t.Throughput), maxFinite(t.Errors)))
	linY := func(v float64) float64 { return y0 + panelH - panelH*v/tmax }
	for _, v := range ticks(tmax) {
		y := linY(v)
		p.hline(y, colGrid)
		p.text(left-6, y+4, "end", 11, formatNum(v))
	}
	p.axisLabel(y0, "throughput, ops/s")
	p.steps(t.Throughput, step, xOf, linY, colThroughput, 1.5)
	if len(t.Errors) > 0 && maxFinite(t.Errors) > 0 {
		p.steps(t.Errors, step, xOf, linY, colErrors, 1)
	}
	p.frame(y0)

	// Latency panel, log scale over whole decades.
	y1 := float64(top + panelH + panelGap)
	lo, hi := decades(t.P99)
	logY := func(v float64) float64 {
		return y1 + panelH - panelH*(math.Log10(v)-lo)/(hi-lo)
	}
	for d := lo; d <= hi; d++ {
		y := logY(math.Pow(10, d))
		p.hline(y, colGrid)
		p.text(left-6, y+4, "end", 11, formatNum(math.Pow(10, d)))
	}
	p.axisLabel(y1, "p99 latency, ms (log)")
	p.points(t.P99, step, xOf, logY, colLatency)
	p.frame(y1)

	// Time axis under the lower panel.
	ybase := y1 + panelH
	for _, s := range ticks(span) {
		x := xOf(s)
		p.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, ybase, x, ybase+5, colAxis)
		p.text(x, ybase+18, "middle", 11, formatNum(s))
	}
	p.text(left+plotW/2, ybase+36, "middle", 12, "time into the measured window, s")

	// Events across both panels, labels staggered so neighbours do not overlap.
	for i, e := range t.Events {
		sec := e.At.Seconds()
		if !(sec >= 0 && sec <= span) {
			continue
		}
		x := xOf(sec)
		p.printf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="5,4" stroke-width="1.5"/>`+"\n", x, top-8, x, ybase, colEvent)
		anchor := "start"
		if x > left+plotW*0.75 {
			anchor = "end"
		}
		dx := 4.0
		if anchor == "end" {
			dx = -4
		}
		p.text(x+dx, float64(top-12-14*(i%2)), anchor, 11, e.Label)
	}

	// Legend, top right of the upper panel.
	lx := float64(width - right - 10)
	p.legend(lx, y0+16, colThroughput, "successful ops/s")
	if len(t.Errors) > 0 && maxFinite(t.Errors) > 0 {
		p.legend(lx, y0+32, colErrors, "errors/s")
	}
	p.legend(lx, y1+16, colLatency, "p99 per "+step.String())
	p.printf("</svg>\n")
	if p.err != nil {
		return fmt.Errorf("plot: %w", p.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// painter writes SVG elements, keeping the first write error.
type painter struct {
	w   *bufio.Writer
	err error
}

func (p *painter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *painter) text(x, y float64, anchor string, size int, s string) {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	p.printf(`<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d">%s</text>`+"\n", x, y, anchor, size, b.String())
}

func (p *painter) hline(y float64, colour string) {
	p.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, y, left+plotW, y, colour)
}

func (p *painter) frame(y float64) {
	p.printf(`<rect x="%d" y="%.1f" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", left, y, plotW, panelH, colAxis)
}

func (p *painter) axisLabel(y float64, s string) {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	p.printf(`<text transform="translate(18,%.1f) rotate(-90)" text-anchor="middle" font-size="12">%s</text>`+"\n", y+panelH/2, b.String())
}

func (p *painter) legend(x, y float64, colour, label string) {
	p.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", x-150, y-4, x-130, y-4, colour)
	p.text(x-126, y, "start", 11, label)
}

// steps draws vs as a step line: each value held flat over its step.
func (p *painter) steps(vs []float64, step time.Duration, xOf, yOf func(float64) float64, colour string, w float64) {
	if len(vs) == 0 {
		return
	}
	var b strings.Builder
	for i, v := range vs {
		if !finite(v) || v < 0 {
			v = 0
		}
		t := float64(i) * step.Seconds()
		fmt.Fprintf(&b, "%.1f,%.1f %.1f,%.1f ", xOf(t), yOf(v), xOf(t+step.Seconds()), yOf(v))
	}
	p.printf(`<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"/>`+"\n", colour, w, strings.TrimSpace(b.String()))
}

// points draws vs as line segments through the middle of each step, broken
// where a step has no value.
func (p *painter) points(vs []float64, step time.Duration, xOf, yOf func(float64) float64, colour string) {
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			p.printf(`<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colour, strings.TrimSpace(b.String()))
			b.Reset()
		}
	}
	for i, v := range vs {
		if !finite(v) || v <= 0 {
			flush()
			continue
		}
		t := (float64(i) + 0.5) * step.Seconds()
		fmt.Fprintf(&b, "%.1f,%.1f ", xOf(t), yOf(v))
	}
	flush()
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func maxFinite(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		if finite(v) && v > m {
			m = v
		}
	}
	return m
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if !(v > 1) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// ticks returns 0 and round values up to top, about five of them.
func ticks(top float64) []float64 {
	if !(top > 0) || !finite(top) {
		return []float64{0}
	}
	step := niceCeil(top / 5)
	if top/5 < 1 { // below one: allow fractional steps
		step = math.Pow(10, math.Floor(math.Log10(top/5)))
		for _, m := range []float64{1, 2, 5, 10} {
			if m*step >= top/5 {
				step *= m
				break
			}
		}
	}
	var ts []float64
	for v := 0.0; v <= top*(1+1e-9); v += step {
		ts = append(ts, v)
	}
	return ts
}

// decades returns the whole powers of ten that bracket the positive finite
// values of vs, at least one decade apart; 0.1 to 10 ms when there are none.
func decades(vs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if finite(v) && v > 0 {
			lo = math.Min(lo, math.Floor(math.Log10(v)))
			hi = math.Max(hi, math.Ceil(math.Log10(v)))
		}
	}
	if math.IsInf(lo, 0) {
		return -1, 1
	}
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

// formatNum prints an axis value without needless digits.
func formatNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6 && math.Mod(v, 1e6) == 0:
		return fmt.Sprintf("%gM", v/1e6)
	case math.Abs(v) >= 1e3 && math.Mod(v, 1e3) == 0:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", math.Round(v*1000)/1000)
	}
}
