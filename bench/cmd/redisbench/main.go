// Command redisbench runs Redis's own load generator, redis-benchmark,
// against a fresh local synod cluster (`synod up`, three replicas and the
// proxy, on loopback ports chosen at run time) through the proxy's RESP
// front door, and prints one Markdown table of its figures: SET and GET,
// without and with pipelining (`make bench-redis`).
package main

// This file owns all of it, on main's goroutine: the ports, the cluster's
// process (stopped with SIGINT, as Ctrl-C stops `synod up`), each
// redis-benchmark run and the table.

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	synodBin := flag.String("synod", "bin/synod", "the synod binary")
	requests := flag.Int("n", 100000, "requests per redis-benchmark run")
	clients := flag.Int("c", 64, "redis-benchmark connections")
	pipelines := flag.String("P", "1,16", "comma-separated pipeline depths, one run each")
	valueSize := flag.Int("d", 100, "value size in bytes")
	out := flag.String("out", "bin/bench-redis", "directory for the cluster's data and log")
	flag.Parse()
	if err := run(*synodBin, *requests, *clients, *valueSize, *pipelines, *out); err != nil {
		fmt.Fprintln(os.Stderr, "redisbench:", err)
		os.Exit(1)
	}
}

// freeBase finds a base port with base+1..base+nodes free, and a free
// port for the proxy.
func freeBase(nodes int) (base int, proxy string, err error) {
	for range 100 {
		base = 20000 + rand.IntN(30000)
		ok := true
		for i := 1; i <= nodes && ok; i++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if !ok {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, "", fmt.Errorf("listen: %w", err)
		}
		proxy = ln.Addr().String()
		ln.Close()
		return base, proxy, nil
	}
	return 0, "", errors.New("no free ports")
}

// ready waits until the proxy answers a RESP PING and a write succeeds (a
// master is elected).
func ready(ctx context.Context, addr string) error {
	for {
		if err := probe(addr); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("cluster not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func probe(addr string) error {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := nc.Write([]byte("*3\r\n$3\r\nSET\r\n$16\r\nredisbench/probe\r\n$1\r\nx\r\n")); err != nil {
		return err
	}
	l, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return err
	}
	if l != "+OK\r\n" {
		return fmt.Errorf("SET answered %q", strings.TrimSpace(l))
	}
	return nil
}

func run(synodBin string, requests, clients, valueSize int, pipelines, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(out, "data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, addr, err := freeBase(3)
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(out, "synod-up.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// No metrics listeners: their fixed default ports could be taken, and
	// they are not what is measured.
	up := exec.Command(synodBin, "up", "--dir", dir, "--listen", addr, "--base-port", strconv.Itoa(base), "--metrics-base-port", "0")
	up.Stdout, up.Stderr = logf, logf
	if err := up.Start(); err != nil {
		return fmt.Errorf("start synod up: %w", err)
	}
	defer func() {
		up.Process.Signal(syscall.SIGINT)
		up.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ready(ctx, addr); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	fmt.Printf("redis-benchmark against synod (3 replicas, proxy %s): -c %d -n %d -d %d, %s\n\n", addr, clients, requests, valueSize, time.Now().UTC().Format(time.RFC3339))
	fmt.Println("| test | pipeline | requests/s | avg ms | p50 ms | p95 ms | p99 ms | max ms |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range strings.Split(pipelines, ",") {
		p = strings.TrimSpace(p)
		cmd := exec.Command("redis-benchmark", "-h", host, "-p", port, "-t", "set,get", "-c", strconv.Itoa(clients),
			"-n", strconv.Itoa(requests), "-d", strconv.Itoa(valueSize), "-P", p, "-r", "100000", "--csv")
		cmd.Stderr = logf
		b, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("redis-benchmark -P %s: %w", p, err)
		}
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			return fmt.Errorf("redis-benchmark -P %s: its CSV: %w", p, err)
		}
		for _, r := range rows {
			// "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
			if len(r) < 8 || r[0] == "test" {
				continue
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r[0], p, r[1], r[2], r[4], r[5], r[6], r[7])
		}
	}
	return nil
}
