package bench

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
)

// fileTarget is memTarget whose connections are FileConns, keeping every
// file written, to check what the runner sends in file mode.
type fileTarget struct {
	*memTarget
	fmu      sync.Mutex
	files    map[string][]byte // key -> latest file
	all      [][]byte          // every file written, in no order
	getFiles int
}

func (t *fileTarget) Connect(ctx context.Context, i int) (Conn, error) {
	return &fileConn{memConn{t.memTarget}, t}, nil
}

type fileConn struct {
	memConn
	t *fileTarget
}

func (c *fileConn) PutFile(ctx context.Context, key string, data []byte) error {
	c.t.fmu.Lock()
	defer c.t.fmu.Unlock()
	cp := append([]byte(nil), data...)
	c.t.files[key] = cp
	c.t.all = append(c.t.all, cp)
	return nil
}

func (c *fileConn) GetFile(ctx context.Context, key string, size int64) error {
	c.t.fmu.Lock()
	defer c.t.fmu.Unlock()
	if f, ok := c.t.files[key]; ok && int64(len(f)) != size {
		return &OpError{Kind: "size", Err: context.Canceled}
	}
	c.t.getFiles++
	return nil
}

func TestRunFiles(t *testing.T) {
	ft := &fileTarget{memTarget: newMem(), files: map[string][]byte{}}
	w := quick()
	w.Keys = 8
	w.FileSize = 3*StampBlock + 100
	res, err := Run(context.Background(), w, Options{Target: ft, Cluster: ft.memTarget, System: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ft.files) != w.Keys || ft.putCalls != 0 || ft.getCalls != 0 || ft.getFiles == 0 {
		t.Fatalf("files %d, puts %d, gets %d, file reads %d", len(ft.files), ft.putCalls, ft.getCalls, ft.getFiles)
	}
	if res.Total.Errors != 0 || res.Writes.Count == 0 {
		t.Fatalf("totals %+v", res.Total)
	}
	if res.CPU.ServerSeconds > 0 && res.CPU.ServerNsPerByte <= 0 {
		t.Fatalf("cpu %+v: no ns/byte", res.CPU)
	}
	// No two files, and no two blocks of any, are alike.
	blocks := map[string]bool{}
	for _, f := range ft.all {
		if int64(len(f)) != w.FileSize {
			t.Fatalf("a file of %d bytes, want %d", len(f), w.FileSize)
		}
		for off := 0; off < len(f); off += StampBlock {
			b := string(f[off:min(off+StampBlock, len(f))])
			if blocks[b] {
				t.Fatalf("a block at %d repeats", off)
			}
			blocks[b] = true
		}
		if bytes.ContainsFunc(f, func(r rune) bool { return r < 'a' || r > 'z' }) {
			t.Fatal("a file is not lower-case letters")
		}
	}
	var report strings.Builder
	if err := res.WriteReport(&report); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report.String(), "files of 12388 bytes") || !strings.Contains(report.String(), "MB/s") {
		t.Fatalf("report:\n%s", report.String())
	}

	// Without a FileConn the files go as values.
	m := newMem()
	w.Reads = 0
	if _, err := Run(context.Background(), w, Options{Target: m, System: "mem"}); err != nil {
		t.Fatal(err)
	}
	if m.putCalls == 0 {
		t.Fatal("no Put without a FileConn")
	}
	for k, v := range m.data {
		if int64(len(v)) != w.FileSize {
			t.Fatalf("%s: a value of %d bytes, want the file's %d", k, len(v), w.FileSize)
		}
	}
}

func TestValidateFiles(t *testing.T) {
	w := quick()
	for _, tc := range []struct {
		size     int64
		pipeline int
		ok       bool
	}{{0, 1, true}, {1, 1, true}, {MaxFileSize, 0, true}, {MaxFileSize + 1, 1, false}, {-1, 1, false}, {100, 4, false}} {
		w.FileSize, w.Pipeline = tc.size, tc.pipeline
		if err := w.Validate(); (err == nil) != tc.ok {
			t.Errorf("file size %d, pipeline %d: %v", tc.size, tc.pipeline, err)
		}
	}
}
