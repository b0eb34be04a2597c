package benchcli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"synod/bench"
)

// nullTarget answers every operation at once.
type nullTarget struct{}

func (nullTarget) Connect(context.Context, int) (bench.Conn, error) { return nullConn{}, nil }

type nullConn struct{}

func (nullConn) Put(context.Context, string, []byte) error { return nil }
func (nullConn) Get(context.Context, string) error         { return nil }
func (nullConn) Close() error                              { return nil }

func testApp(out *bytes.Buffer, connected *string) *cli.App {
	sys := System{
		Name:        "null",
		DefaultAddr: "here:1",
		Connect: func(ctx context.Context, c *cli.Context, addr string, w bench.Workload) (bench.Target, string, error) {
			*connected = addr
			return nullTarget{}, "nothing " + addr, nil
		},
		Spawn: func(ctx context.Context, c *cli.Context, n int, w bench.Workload) (*Spawned, error) {
			return nil, errors.New("no spawning here")
		},
	}
	return &cli.App{Name: "t", Flags: Flags(sys), Action: Action(sys), Writer: out, ErrWriter: out,
		ExitErrHandler: func(*cli.Context, error) {}}
}

func TestAction(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	var addr string
	app := testApp(&out, &addr)
	jsonPath, svgPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg")
	err := app.Run([]string{"t", "--clients", "2", "--duration", "300ms", "--warmup", "0s", "--reads", "0.5",
		"--keys", "10", "--dist", "zipf", "--json", jsonPath, "--timeline", svgPath})
	if err != nil {
		t.Fatal(err)
	}
	if addr != "here:1" {
		t.Fatalf("connected to %q, want the default address", addr)
	}
	if !strings.Contains(out.String(), "null via nothing here:1: 2 clients, 300ms (+0s warm-up), 50% reads") {
		t.Fatalf("report:\n%s", out.String())
	}
	res, err := bench.ReadResultFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if res.Workload.Clients != 2 || res.Workload.Dist != bench.DistZipf || res.Total.Count == 0 {
		t.Fatalf("result %+v", res)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("svg: %v %.40q", err, svg)
	}
}

func TestActionFiles(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	var addr string
	jsonPath := filepath.Join(dir, "r.json")
	if err := testApp(&out, &addr).Run([]string{"t", "--clients", "1", "--duration", "200ms", "--warmup", "0s",
		"--keys", "2", "--file-size", "10000", "--json", jsonPath}); err != nil {
		t.Fatal(err)
	}
	res, err := bench.ReadResultFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if res.Workload.FileSize != 10000 || res.Workload.WriteBytes() != 10000 || !strings.Contains(out.String(), "files of 10000 bytes") {
		t.Fatalf("workload %+v, report:\n%s", res.Workload, out.String())
	}
}

func TestActionUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--clients", "0"},
		{"--reads", "2"},
		{"--dist", "normal"},
		{"--kill-master-at", "1s"}, // without --spawn
		{"--spawn", "100"},
		{"--pipeline", "-1"},
		{"--pipeline", "5000"},
		{"--file-size", "-1"},
		{"--file-size", "4096", "--pipeline", "2"},
		{"stray-argument"},
	} {
		var out bytes.Buffer
		var addr string
		err := testApp(&out, &addr).Run(append([]string{"t", "--duration", "100ms"}, args...))
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want ErrUsage", args, err)
		}
		if addr != "" {
			t.Errorf("%v: connected anyway", args)
		}
	}
	var out bytes.Buffer
	var addr string
	if err := testApp(&out, &addr).Run([]string{"t", "--spawn", "3"}); err == nil || !strings.Contains(err.Error(), "no spawning") {
		t.Errorf("spawn error not passed on: %v", err)
	}
}

func TestTimelinePlot(t *testing.T) {
	res := &bench.Result{System: "s", Via: "v", Workload: bench.DefaultWorkload(),
		Timeline: bench.Timeline{StepMs: 100, Buckets: []bench.Bucket{{Ops: 10, P99Ms: 2}, {Ops: 0, Errors: 3}}},
		Events:   []bench.Event{{T: 0.15, What: "kill"}}}
	p := TimelinePlot(res)
	if p.Step != 100*time.Millisecond || len(p.Throughput) != 2 || p.Throughput[0] != 100 || p.Errors[1] != 30 || p.P99[0] != 2 {
		t.Fatalf("plot %+v", p)
	}
	if len(p.Events) != 1 || p.Events[0].At != 150*time.Millisecond || p.Title != "s via v" {
		t.Fatalf("plot %+v", p)
	}
	res.Timeline.Buckets[1].Errors = 0
	if p := TimelinePlot(res); p.Errors != nil {
		t.Fatalf("error series without errors: %v", p.Errors)
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("kill-master-at"); got != "KILL_MASTER_AT" {
		t.Fatal(got)
	}
}
