package compare

// This file owns the disk's own figure beside the file cases: what the
// filesystem the benches keep their data in takes for three copies of the
// same bytes, each appended to a file of its own with an fsync per MiB, as
// three replicas on one disk would store a file. MeasureDisk runs on the
// caller's goroutine (Execute's) and one goroutine per copy.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Disk is the name the disk's figures go under, beside the systems'.
const Disk = "disk"

// DiskCopies is how many copies the disk figure writes: one per replica.
const DiskCopies = 3

// diskSync is how many bytes a copy writes between fsyncs.
const diskSync = 1 << 20

// DiskOptions say how to measure the disk.
type DiskOptions struct {
	// Dir is a directory on the filesystem to measure ("": the system's
	// temporary directory, where bench --spawn keeps its clusters' data).
	Dir string
	// Copies writes that many copies at once (0: DiskCopies).
	Copies int
	// Duration and Max bound the measurement: it stops after Duration or
	// once each copy holds Max bytes, whichever comes first.
	Duration time.Duration
	Max      int64
}

// DiskResult is the disk's figure: client bytes (one copy's) per second
// while every copy was written and fsynced.
type DiskResult struct {
	Copies   int     `json:"copies"`
	Bytes    int64   `json:"bytes_per_copy"`
	Seconds  float64 `json:"seconds"`
	MBPerSec float64 `json:"mb_per_s"`
}

// MeasureDisk writes o.Copies files side by side in a new directory under
// o.Dir, each in 1 MiB writes with an fsync after every one, until
// o.Duration has passed or each file holds o.Max bytes, then removes them.
// Its figure is the bytes of one copy over the time all took.
func MeasureDisk(ctx context.Context, o DiskOptions) (DiskResult, error) {
	if o.Copies <= 0 {
		o.Copies = DiskCopies
	}
	if o.Duration <= 0 || o.Max <= 0 {
		return DiskResult{}, errors.New("compare: disk: no duration or size to measure for")
	}
	dir, err := os.MkdirTemp(o.Dir, "synod-disk-")
	if err != nil {
		return DiskResult{}, fmt.Errorf("compare: disk: %w", err)
	}
	defer os.RemoveAll(dir)
	buf := make([]byte, diskSync)
	for i := range buf {
		buf[i] = 'a' + byte(i*7%26)
	}
	files := make([]*os.File, o.Copies)
	for i := range files {
		if files[i], err = os.Create(filepath.Join(dir, fmt.Sprintf("copy-%d", i))); err != nil {
			for _, f := range files[:i] {
				f.Close()
			}
			return DiskResult{}, fmt.Errorf("compare: disk: %w", err)
		}
	}
	deadline := time.Now().Add(o.Duration)
	written := make([]int64, o.Copies)
	errs := make([]error, o.Copies)
	start := time.Now()
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			for written[i] < o.Max && time.Now().Before(deadline) && ctx.Err() == nil {
				n, err := f.Write(buf[:min(int64(len(buf)), o.Max-written[i])])
				if err == nil {
					err = f.Sync()
				}
				if err != nil {
					errs[i] = fmt.Errorf("compare: disk: %w", err)
					return
				}
				written[i] += int64(n)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return DiskResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return DiskResult{}, fmt.Errorf("compare: disk: %w", err)
	}
	least := written[0]
	for _, n := range written[1:] {
		least = min(least, n)
	}
	r := DiskResult{Copies: o.Copies, Bytes: least, Seconds: secs}
	if secs > 0 {
		r.MBPerSec = float64(least) / secs / 1e6
	}
	return r, nil
}
