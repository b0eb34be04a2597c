package compare

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"synod/bench"
)

// fileResult is a run of a file case: perSec files of size bytes a second
// at nsPerByte of server CPU.
func fileResult(system string, size int64, perSec, nsPerByte float64) *bench.Result {
	r := result(system, perSec, 100, nsPerByte*float64(size)/1000, 10)
	r.Workload.FileSize = size
	r.CPU.ServerNsPerByte = nsPerByte
	return r
}

func TestFileRows(t *testing.T) {
	o := opts("", 1, Cases(3*time.Second)...)
	o.Systems = []System{{Name: Synod}, {Name: Etcd}, {Name: ZooKeeper}}
	runs := []Run{
		{System: Synod, Case: "file-1m-16", Index: 1, Result: fileResult(Synod, 1_000_000, 80, 1.5)},
		{System: Etcd, Case: "file-1m-16", Index: 1, Result: fileResult(Etcd, 1_000_000, 40, 20)},
		{System: ZooKeeper, Case: "file-1m-16", Index: 1, Result: fileResult(ZooKeeper, 1_000_000, 20, 30)},
		{System: Disk, Case: "file-1m-16", Index: 1, Disk: &DiskResult{Copies: 3, MBPerSec: 100}},
		{System: Synod, Case: "file-64m-4", Index: 1, Result: fileResult(Synod, 64_000_000, 0.5, 3)},
		{System: Disk, Case: "file-64m-4", Index: 1, Disk: &DiskResult{Copies: 3, MBPerSec: 50}},
	}
	tab := Build(o, runs, "")
	if len(tab.Failed) != 0 {
		t.Fatalf("failed %v", tab.Failed)
	}
	r, _ := tab.row("file-1m-16", "MB/s")
	if r.Stats[0].Median != 80 || r.Ratios[0] != 2 || r.Ratios[1] != 4 {
		t.Fatalf("MB/s row %+v", r)
	}
	if r, _ := tab.row("file-1m-16", "server CPU ns/byte"); r.Stats[0].Median != 1.5 || r.Ratios[0] != 0.075 {
		t.Fatalf("ns/byte row %+v", r)
	}
	if len(tab.FileRows) != 4 {
		t.Fatalf("%d file rows", len(tab.FileRows))
	}
	byCase := map[string]FileRow{}
	for _, fr := range tab.FileRows {
		byCase[fr.Case] = fr
	}
	if fr := byCase["file-1m-16"]; fr.Ratio != 0.8 || fr.Disk.Median != 100 || fr.NsPerByte[2].Median != 30 {
		t.Fatalf("1 MB file row %+v", fr)
	}
	if fr := byCase["file-64m-4"]; fr.Ratio != 0.64 || fr.MBPerSec.Median != 32 {
		t.Fatalf("64 MB file row %+v", fr)
	}
	if fr := byCase["file-64k-16"]; !math.IsNaN(fr.Ratio) {
		t.Fatalf("unmeasured file row %+v", fr)
	}
	// 1.5 and 3 ns/byte: the CPU aim is missed; 80% and 64% of the disk:
	// missed at 64 MB.
	if len(tab.FileAims) != 2 || !tab.FileAims[0].Measured || tab.FileAims[0].Met || tab.FileAims[1].Met ||
		!strings.Contains(tab.FileAims[1].Detail, "64 MB, 4 clients 64%") {
		t.Fatalf("file aims %+v", tab.FileAims)
	}
	var md strings.Builder
	if err := tab.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| files of 64 MB, 4 clients | files/s | 0.50 | refused | refused |",
		"| files of 1 MB, 16 clients | 80.0 | 100 | 80% | 1.50 / 20.00 / 30.00 |",
		"| files of 64 MB, 4 clients | 32.0 | 50 | 64% | 3.00 / refused / refused |",
		"| files of 1 MB with PUTFILE, 16 clients | – | – | – | – / n/a / n/a |",
		"Aims (issue 22):",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if err := tab.WriteJSON(&md); err != nil {
		t.Fatal(err)
	}
}

func TestFileCasesArgs(t *testing.T) {
	byName := map[string]Case{}
	for _, c := range Cases(time.Second) {
		byName[c.Name] = c
	}
	o := Options{Duration: 4 * time.Second, Warmup: 2 * time.Second, Nodes: 3, OutDir: "out"}
	_, args, _ := o.Args(System{Name: Synod, Command: []string{"bin/synod", "bench"}}, byName["file-64m-4"], 1)
	got := strings.Join(args, " ")
	for _, want := range []string{"--duration 12s", "--clients 4 --reads 0 --file-size 64000000 --op-timeout 60s"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	_, args, _ = o.Args(System{Name: Synod, Command: []string{"bin/synod", "bench"}}, byName["file-1m-putfile-16"], 1)
	if got := strings.Join(args, " "); !strings.HasSuffix(got, "--file-size 1000000 --putfile-above 0") {
		t.Errorf("PUTFILE case's args %q", got)
	}
	if c := byName["file-64m-4"]; !c.Skips(Etcd) || !c.Skips(ZooKeeper) || c.Skips(Synod) {
		t.Error("64 MB files: etcd and ZooKeeper refuse them, synod runs them")
	}
	if c := byName["file-1m-16"]; c.Skips(Etcd) || c.Skips(ZooKeeper) {
		t.Error("1 MB files are within both peers' limits")
	}
}

func TestMeasureDisk(t *testing.T) {
	d, err := MeasureDisk(context.Background(), DiskOptions{Dir: t.TempDir(), Duration: time.Hour, Max: 3<<20 + 5})
	if err != nil {
		t.Fatal(err)
	}
	if d.Copies != DiskCopies || d.Bytes != 3<<20+5 || d.MBPerSec <= 0 {
		t.Fatalf("disk %+v", d)
	}
	if _, err := MeasureDisk(context.Background(), DiskOptions{Dir: t.TempDir()}); err == nil {
		t.Fatal("a measurement without bounds ran")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := MeasureDisk(ctx, DiskOptions{Dir: t.TempDir(), Duration: time.Hour, Max: 1 << 20}); err == nil {
		t.Fatal("a cancelled measurement gave a figure")
	}
}
