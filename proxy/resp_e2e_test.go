package proxy

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"synod/internal/cluster"
)

// redisCli runs Debian's redis-cli against addr (typed output, as on a
// terminal) and returns what it printed, trimmed.
func redisCli(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port, "--no-raw"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %q: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func needRedisCli(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli not found (make redis-tools installs it): %v", err)
	}
}

// TestRESPRedisCli drives every RESP command with redis-cli, a client
// nobody here wrote, against a real cluster: one process per command, in
// order, so each case sees the state the ones before it left.
func TestRESPRedisCli(t *testing.T) {
	needRedisCli(t)
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms")
	waitMaster(t, dialRaw(t, p.Addr))

	tests := []struct {
		args []string
		want string // "*" prefix: want contains the rest
	}{
		{[]string{"PING"}, "PONG"},
		{[]string{"PING", "hi there"}, `"hi there"`},
		{[]string{"ECHO", "a\tb"}, `"a\tb"`},
		{[]string{"SELECT", "0"}, "OK"},
		{[]string{"SELECT", "1"}, "(error) ERR DB index is out of range"},
		{[]string{"GET", "greeting"}, "(nil)"},
		{[]string{"SET", "greeting", "hello world"}, "OK"},
		{[]string{"GET", "greeting"}, `"hello world"`},
		{[]string{"SET", "greeting", "howdy", "GET"}, `"hello world"`},
		{[]string{"SET", "greeting", "x", "NX"}, "(nil)"},
		{[]string{"SET", "greeting", "hi", "XX"}, "OK"},
		{[]string{"SET", "fresh", "1", "XX"}, "(nil)"},
		{[]string{"SET", "fresh", "1", "XX", "GET"}, "(nil)"},
		{[]string{"SET", "fresh", "1", "NX"}, "OK"},
		{[]string{"SET", "fresh", "2", "NX", "GET"}, `"1"`},
		{[]string{"SET", "fresh", "2", "EX", "10"}, "*synod keeps no expiry"},
		{[]string{"SET", "fresh", "2", "NX", "XX"}, "(error) ERR syntax error"},
		{[]string{"SETNX", "fresh", "3"}, "(integer) 0"},
		{[]string{"SETNX", "other", "3"}, "(integer) 1"},
		{[]string{"GETSET", "other", "4"}, `"3"`},
		{[]string{"GETSET", "nokey", "4"}, "(nil)"},
		{[]string{"APPEND", "other", "56"}, "(integer) 3"},
		{[]string{"STRLEN", "other"}, "(integer) 3"},
		{[]string{"STRLEN", "nothing"}, "(integer) 0"},
		{[]string{"TYPE", "other"}, "string"},
		{[]string{"TYPE", "nothing"}, "none"},
		{[]string{"EXISTS", "other", "fresh", "nothing", "other"}, "(integer) 3"},
		{[]string{"MSET", "docs/a", "1", "docs/b", "2", "docs/c", "3"}, "OK"},
		{[]string{"MSET", "docs/a", "1", "docs/b"}, "(error) ERR wrong number of arguments for 'mset' command"},
		{[]string{"MGET", "docs/a", "nothing", "docs/c"}, "1) \"1\"\n2) (nil)\n3) \"3\""},
		{[]string{"KEYS", "docs/*"}, "1) \"docs/a\"\n2) \"docs/b\"\n3) \"docs/c\""},
		{[]string{"KEYS", "docs/[ab]"}, "1) \"docs/a\"\n2) \"docs/b\""},
		{[]string{"KEYS", "zz*"}, "(empty array)"},
		{[]string{"DBSIZE"}, "(integer) 7"},
		{[]string{"DEL", "docs/a", "docs/b", "nothing"}, "(integer) 2"},
		{[]string{"DEL", "docs/a"}, "(integer) 0"},
		{[]string{"SYNOD.STAT", "nothing"}, "(nil)"},
		{[]string{"SYNOD.CAS", "docs/c", "1", "x"}, "*(error) CONFLICT version "},
		{[]string{"SYNOD.CAS", "new", "0", "x"}, "*(integer) "},
		{[]string{"SYNOD.CAS", "new", "0", "x"}, "*(error) CONFLICT version "},
		{[]string{"SYNOD.STAT", "new"}, "*1) (integer) 1\n2) (integer) "},
		{[]string{"SYNOD.STATUS"}, "*role=master"},
		{[]string{"SYNOD.CONSISTENCY"}, `"linearizable"`},
		{[]string{"SYNOD.CONSISTENCY", "session"}, "OK"},
		{[]string{"SYNOD.CONSISTENCY", "eventual"}, "*(error) ERR unknown consistency level"},
		{[]string{"INFO", "replication"}, "*connected_slaves:2"},
		{[]string{"INFO"}, "*redis_version:"},
		{[]string{"CLIENT", "ID"}, "*(integer) "},
		{[]string{"CLIENT", "GETNAME"}, "(nil)"},
		{[]string{"CLIENT", "SETNAME", "me"}, "OK"},
		{[]string{"CLIENT", "KILL"}, "(error) ERR unknown subcommand 'KILL'. Try CLIENT HELP."},
		{[]string{"COMMAND", "COUNT"}, "*(integer) "},
		{[]string{"COMMAND", "INFO", "get"}, "*\"get\""},
		{[]string{"COMMAND", "DOCS", "get", "nosuch"}, "*1) \"get\"\n2) 1) \"summary\"\n   2) \"Returns the value of a key"},
		{[]string{"COMMAND", "DOCS", "nosuch"}, "(empty array)"},
		{[]string{"WAIT", "1", "0"}, "(integer) 2"},
		{[]string{"WAIT", "3", "100"}, "(integer) 2"}, // two followers: the timeout ends it
		{[]string{"HELLO", "4"}, "(error) NOPROTO unsupported protocol version"},
		{[]string{"HELLO", "3"}, "*\"synod\""},
		{[]string{"-3", "GET", "nothing"}, "(nil)"},
		{[]string{"-3", "MGET", "docs/c", "nothing"}, "1) \"3\"\n2) (nil)"},
		{[]string{"-3", "SYNOD.STAT", "nothing"}, "(nil)"},
		{[]string{"HELLO", "2"}, "*\"synod\""},
		{[]string{"AUTH", "pw"}, "*(error) ERR AUTH <password> called without any password"},
		{[]string{"INCR", "other"}, "(error) ERR unknown command 'INCR', with args beginning with: 'other'"},
		{[]string{"GET"}, "(error) ERR wrong number of arguments for 'get' command"},
		{[]string{"GET", "has space"}, "*(error) ERR invalid key"},
		{[]string{"QUIT"}, "OK"},
	}
	for _, tt := range tests {
		got := redisCli(t, p.Addr, tt.args...)
		if want, ok := strings.CutPrefix(tt.want, "*"); ok {
			if !strings.Contains(got, want) {
				t.Errorf("%q: got %q, want it to contain %q", tt.args, got, want)
			}
		} else if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.args, got, tt.want)
		}
	}

	// SCAN: every key once, in batches, with MATCH and COUNT; the cursor
	// goes from one redis-cli process (connection) to the next.
	for i := range 25 {
		redisCli(t, p.Addr, "SET", fmt.Sprintf("scan/%02d", i), "v")
	}
	seen := map[string]int{}
	cursor, calls := "0", 0
	for {
		out := redisCli(t, p.Addr, "SCAN", cursor, "MATCH", "scan/*", "COUNT", "7")
		lines := strings.Split(out, "\n")
		cursor = strings.Trim(strings.TrimPrefix(lines[0], "1) "), `"`)
		for _, l := range lines[1:] {
			l = strings.TrimSpace(strings.TrimPrefix(l, "2)"))
			if _, k, ok := strings.Cut(l, ") "); ok {
				seen[strings.Trim(k, `"`)]++
			}
		}
		calls++
		if cursor == "0" || calls > 100 {
			break
		}
	}
	if len(seen) != 25 || calls < 4 {
		t.Errorf("SCAN saw %d keys in %d calls, want 25 in at least 4: %v", len(seen), calls, seen)
	}
	for k, n := range seen {
		if n != 1 || !strings.HasPrefix(k, "scan/") {
			t.Errorf("SCAN returned %q %d times", k, n)
		}
	}

	// Values survive as bytes (redis-cli -x sends stdin as the last argument).
	cmd := exec.Command("redis-cli", "-p", p.Addr[strings.LastIndexByte(p.Addr, ':')+1:], "-x", "SET", "bin")
	cmd.Stdin = strings.NewReader("a\r\nb\x00c")
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("redis-cli -x SET: %v %q", err, out)
	}
	if got := redisCli(t, p.Addr, "GET", "bin"); got != `"a\r\nb\x00c"` {
		t.Errorf("GET bin = %s", got)
	}
}

// TestRESPGoRedisFailover runs go-redis clients (appends, pipelined MSETs
// and MGETs), in RESP2 and in RESP3, through a SIGKILL of the master: no
// client sees an error, and every acknowledged append is in its key
// exactly once, in order.
func TestRESPGoRedisFailover(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) { goRedisFailover(t, proto) })
	}
}

func goRedisFailover(t *testing.T, proto int) {
	c := cluster.New(t, cluster.Options{NodeFlags: fastFlags})
	p := c.StartProxy(t, "--poll=50ms")
	rc := dialRaw(t, p.Addr)
	master := waitMaster(t, rc)

	const clients = 12
	rdb := redis.NewClient(&redis.Options{
		Addr: p.Addr, Protocol: proto, PoolSize: clients, MaxRetries: -1, // a retry here could hide an error, or double an append
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, DialTimeout: 5 * time.Second,
	})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	acked := make([]int, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%3 == 2 {
					// Pipelined: MSET then MGET of the same keys must see them.
					k1, k2 := fmt.Sprintf("m/%d/a", i), fmt.Sprintf("m/%d/b", i)
					v := strconv.Itoa(j)
					var get *redis.SliceCmd
					_, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
						pl.MSet(ctx, k1, v, k2, v)
						get = pl.MGet(ctx, k1, k2)
						return nil
					})
					if err != nil {
						errs <- fmt.Errorf("client %d pipeline %d: %w", i, j, err)
						return
					}
					if vals := get.Val(); len(vals) != 2 || vals[0] != v || vals[1] != v {
						errs <- fmt.Errorf("client %d pipeline %d: MGET after MSET %q = %v", i, j, v, vals)
						return
					}
					continue
				}
				if err := rdb.Append(ctx, fmt.Sprintf("log/%d", i), fmt.Sprintf("%d,", j)).Err(); err != nil {
					errs <- fmt.Errorf("client %d append %d: %w", i, j, err)
					return
				}
				acked[i]++
			}
		}()
	}
	time.Sleep(time.Second)
	c.Nodes[master].Kill()
	killed := time.Now()
	var next uint64
	eventually(t, "a new master", func() bool {
		next = waitMaster(t, rc)
		return next != master
	})
	t.Logf("replica %d is master %v after the kill", next, time.Since(killed).Round(time.Millisecond))
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	total := 0
	for i := range clients {
		if i%3 == 2 {
			continue
		}
		total += acked[i]
		got, err := rdb.Get(ctx, fmt.Sprintf("log/%d", i)).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for j := range acked[i] {
			fmt.Fprintf(&want, "%d,", j)
		}
		if got != want.String() {
			t.Errorf("log/%d holds %q, want the %d acknowledged appends %q", i, got, acked[i], want.String())
		}
	}
	st := rc.stats()
	t.Logf("%d acknowledged appends by go-redis, zero errors; proxy: failovers=%s retries=%s write_max_ms=%s",
		total, st["failovers"], st["retries"], st["write_max_ms"])
	if statInt(t, st, "failovers") < 1 {
		t.Errorf("failovers = %s, want at least 1", st["failovers"])
	}
}

// TestRESPTLSAuth drives redis-cli over TLS against a proxy with users:
// nothing but AUTH before it, the same users and permissions as the line
// protocol after it, and .synod/ hidden from KEYS.
func TestRESPTLSAuth(t *testing.T) {
	needRedisCli(t)
	tc := makeCerts(t)
	pwFile := writePassword(t, "root pw")
	c := cluster.New(t, cluster.Options{NodeFlags: append(certFlags(tc.dir, "node"), fastFlags...), TLS: tc.bundle(t, "proxy").ClientConfig()})
	p := c.StartProxy(t, append(certFlags(tc.dir, "proxy"), "--poll=50ms", "--auth", "--bootstrap-admin=root", "--bootstrap-password-file="+pwFile)...)
	logShows(t, "the bootstrap admin", p.Proc, 0, "bootstrap admin created")
	tlsArgs := []string{"--tls", "--cacert", filepath.Join(tc.dir, "ca.crt"), "--no-auth-warning"}
	root := append(slices.Clone(tlsArgs), "--user", "root", "--pass", "root pw")
	tests := []struct {
		args []string
		want string
	}{
		{append(slices.Clone(tlsArgs), "PING"), "PONG"},
		{append(slices.Clone(tlsArgs), "GET", "a"), "(error) NOAUTH Authentication required."},
		{append(slices.Clone(tlsArgs), "INFO"), "NOAUTH Authentication required."}, // redis-cli prints INFO replies raw
		{append(slices.Clone(tlsArgs), "AUTH", "root", "wrong"), "(error) NOPERM invalid user name or password"},
		{append(slices.Clone(root), "SET", "a", "1"), "OK"},
		{append(slices.Clone(root), "GET", "a"), `"1"`},
		{append(slices.Clone(root), "KEYS", "*"), `1) "a"`},
		{append(slices.Clone(root), "GET", ".synod/auth/epoch"), "(error) NOPERM no read permission"},
		{append(slices.Clone(root), "MSET", "b", "2", ".synod/x", "3"), "(error) NOPERM no write permission"},
		{append(slices.Clone(root), "EXISTS", "b"), "(integer) 0"}, // the refused MSET started nothing
	}
	for _, tt := range tests {
		got := redisCli(t, p.Addr, tt.args...)
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.args, got, tt.want)
		}
	}
}
