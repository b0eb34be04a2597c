package profile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The test binary doubles as a profiled server when PROFILE_TEST_CHILD is set.
func TestMain(m *testing.M) {
	if os.Getenv("PROFILE_TEST_CHILD") != "" {
		if !ListenFromEnv() {
			os.Exit(2)
		}
		os.Stdout.WriteString("ready\n")
		x := 0
		for start := time.Now(); time.Since(start) < time.Minute; x++ { // burn CPU to be profiled
		}
		os.Exit(x & 1)
	}
	os.Exit(m.Run())
}

func TestSignals(t *testing.T) {
	if StartSignal == nil {
		t.Skip("no profiling signals on this system")
	}
	path := filepath.Join(t.TempDir(), "p.pprof")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PROFILE_TEST_CHILD=1", Env+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("child said %q: %v", buf, err)
	}
	if err := WaitWritten(path, 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("profile before any signal: %v", err)
	}
	cmd.Process.Signal(StartSignal)
	time.Sleep(200 * time.Millisecond) // let the profiler take some samples
	cmd.Process.Signal(StopSignal)
	if err := WaitWritten(path, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A pprof profile is gzipped protobuf.
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a gzipped profile: %v", err)
	}
	if raw, err := io.ReadAll(zr); err != nil || len(raw) == 0 {
		t.Fatalf("profile body: %d bytes, %v", len(raw), err)
	}
}

func TestListenWithoutEnv(t *testing.T) {
	t.Setenv(Env, "")
	if ListenFromEnv() {
		t.Fatal("listened without the variable")
	}
}
