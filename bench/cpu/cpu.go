// Package cpu reads how much CPU time processes and the whole machine have
// used, from Linux's /proc, so a benchmark can report CPU seconds per
// operation next to throughput: on a small machine the servers and the load
// generator compete for the same cores, and ops/s alone hides who paid.
package cpu

// This file owns the readings from /proc: a process's CPU time and the
// machine's. Pure reads: the caller's goroutine (bench.Run's coordinator).

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ticksPerSecond is USER_HZ, the unit of /proc's CPU times. It is 100 on
// every Linux architecture Go supports (the kernel fixes it for user space).
const ticksPerSecond = 100

// maxStatLine bounds what the parsers accept; a real /proc/<pid>/stat line
// is well under 1 KiB, /proc/stat's first line under 256 bytes.
const maxStatLine = 64 << 10

// ErrUnsupported is returned by Self where the system cannot tell.
var ErrUnsupported = errors.New("cpu: not supported on this system")

// ErrFormat is returned when a /proc file does not have the expected layout.
var ErrFormat = errors.New("cpu: unexpected /proc format")

// Process returns the user plus system CPU time that process pid has used,
// from /proc/<pid>/stat. Resolution is 10 ms.
func Process(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu: process %d: %w", pid, err)
	}
	d, err := ParseProcessStat(b)
	if err != nil {
		return 0, fmt.Errorf("cpu: process %d: %w", pid, err)
	}
	return d, nil
}

// ParseProcessStat returns utime+stime from the contents of a
// /proc/<pid>/stat file. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last ')'.
func ParseProcessStat(b []byte) (time.Duration, error) {
	if len(b) > maxStatLine {
		return 0, fmt.Errorf("%w: stat line of %d bytes", ErrFormat, len(b))
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("%w: no ')' after the command name", ErrFormat)
	}
	// After ") " come field 3 (state) onwards; utime and stime are fields 14
	// and 15, so the 12th and 13th after the name.
	fields := bytes.Fields(b[end+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("%w: %d fields after the command name", ErrFormat, len(fields))
	}
	utime, err1 := strconv.ParseUint(string(fields[11]), 10, 63)
	stime, err2 := strconv.ParseUint(string(fields[12]), 10, 63)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: utime %q stime %q", ErrFormat, fields[11], fields[12])
	}
	return ticks(utime + stime)
}

func ticks(n uint64) (time.Duration, error) {
	const max = uint64(1<<63-1) / uint64(time.Second/ticksPerSecond)
	if n > max {
		return 0, fmt.Errorf("%w: %d ticks overflow", ErrFormat, n)
	}
	return time.Duration(n) * (time.Second / ticksPerSecond), nil
}

// Machine is a reading of the whole machine's CPU counters.
type Machine struct {
	Busy  time.Duration // summed over all CPUs: time not idle nor waiting for I/O
	Total time.Duration // summed over all CPUs
}

// ReadMachine reads the first line of /proc/stat.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, fmt.Errorf("cpu: %w", err)
	}
	m, err := ParseMachineStat(b)
	if err != nil {
		return Machine{}, fmt.Errorf("cpu: /proc/stat: %w", err)
	}
	return m, nil
}

// ParseMachineStat parses the aggregate "cpu" line, the first line of
// /proc/stat: user nice system idle iowait irq softirq steal [guest
// guest_nice]. Guest time is already counted in user and nice, so it is left
// out of the total.
func ParseMachineStat(b []byte) (Machine, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	if len(line) > maxStatLine {
		return Machine{}, fmt.Errorf("%w: first line of %d bytes", ErrFormat, len(line))
	}
	fields := bytes.Fields(line)
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return Machine{}, fmt.Errorf("%w: first line %q", ErrFormat, truncate(line))
	}
	var total, idle uint64
	for i, f := range fields[1:] {
		if i >= 8 { // guest, guest_nice
			break
		}
		v, err := strconv.ParseUint(string(f), 10, 63)
		if err != nil {
			return Machine{}, fmt.Errorf("%w: field %d %q", ErrFormat, i+1, truncate(f))
		}
		if total+v < total || total+v > 1<<62 {
			return Machine{}, fmt.Errorf("%w: counters overflow", ErrFormat)
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	t, err := ticks(total)
	if err != nil {
		return Machine{}, err
	}
	busy, _ := ticks(total - idle)
	return Machine{Busy: busy, Total: t}, nil
}

// Sub returns the counters' change from earlier to m.
func (m Machine) Sub(earlier Machine) Machine {
	return Machine{Busy: m.Busy - earlier.Busy, Total: m.Total - earlier.Total}
}

// Percent returns busy time as a percentage of one CPU's time, so a machine
// with two fully busy CPUs gives 200, the way top counts.
func (m Machine) Percent(ncpu int) float64 {
	if m.Total <= 0 {
		return 0
	}
	return 100 * float64(ncpu) * float64(m.Busy) / float64(m.Total)
}

func truncate(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
