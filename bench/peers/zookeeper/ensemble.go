package main

// This file owns the ZooKeeper servers of one run: the configuration of
// each (zoo.cfg and myid, written by serverConfig), three java processes
// started, watched and stopped through synod's process supervisor
// (bench/proc), their leader found (the srvr four-letter word) and killed.
// It runs on the bench's goroutine; the supervisor reaps each server on a
// goroutine of its own.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"synod/bench"
	"synod/bench/proc"
)

// Where Debian's zookeeper package puts things.
const (
	defaultJava      = "/usr/bin/java"
	defaultClasspath = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
	mainClass        = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
)

// errNoLeader is returned when no server reports itself leader.
var errNoLeader = errors.New("zookeeper: no leader")

// server is one member of the ensemble as its configuration names it.
type server struct {
	id                      int
	client, quorum, elector string // loopback host:port each
}

// serverConfig returns zoo.cfg for server me of an ensemble: Debian's
// shipped zoo.cfg (tickTime 2000, initLimit 10, syncLimit 5), this
// server's data directory and client address, and the ensemble. Three
// settings are added, none of which changes what a write or a read costs:
// the admin HTTP server is off (it would take port 8080 on every server);
// srvr is allowed, the four-letter word that tells the bench who leads;
// and maxClientCnxns, ZooKeeper's limit on connections from one address (60),
// is lifted, because every client of this bench comes from 127.0.0.1.
// forceSync is left at its default, yes: the transaction log is fsynced
// before a write is acknowledged.
func serverConfig(me server, all []server, dataDir string) string {
	host, port, _ := strings.Cut(me.client, ":")
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=2000\ninitLimit=10\nsyncLimit=5\n")
	fmt.Fprintf(&b, "dataDir=%s\nclientPort=%s\nclientPortAddress=%s\n", dataDir, port, host)
	fmt.Fprintf(&b, "admin.enableServer=false\n4lw.commands.whitelist=srvr\nmaxClientCnxns=0\n")
	for _, s := range all {
		fmt.Fprintf(&b, "server.%d=%s:%s\n", s.id, s.quorum, portOf(s.elector))
	}
	return b.String()
}

func portOf(addr string) string {
	_, port, _ := strings.Cut(addr, ":")
	return port
}

// ensemble is a set of ZooKeeper servers started for one run, one java
// process each.
type ensemble struct {
	dir     string
	keep    bool
	group   *proc.Group
	servers []server
	procs   []*proc.Proc
}

// javaOptions say how to run a server.
type javaOptions struct {
	Java, Classpath string
}

// startEnsemble starts n servers and waits until a write through them
// succeeds.
func startEnsemble(ctx context.Context, n int, keep bool, jo javaOptions) (_ *ensemble, err error) {
	if jo.Java == "" {
		jo.Java = defaultJava
	}
	if jo.Classpath == "" {
		jo.Classpath = defaultClasspath
	}
	for _, jar := range filepath.SplitList(jo.Classpath) {
		if _, err := os.Stat(jar); err != nil {
			return nil, fmt.Errorf("zookeeper: %w (is Debian's zookeeper package installed? make bench-compare installs it)", err)
		}
	}
	dir, err := os.MkdirTemp("", "zk-bench-")
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	ports, err := proc.FreePorts(3 * n)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &ensemble{dir: dir, keep: keep, group: proc.NewGroup()}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	for i := range n {
		e.servers = append(e.servers, server{id: i + 1, client: ports[3*i], quorum: ports[3*i+1], elector: ports[3*i+2]})
	}
	for _, s := range e.servers {
		name := fmt.Sprintf("zk%d", s.id)
		sdir := filepath.Join(dir, name)
		data := filepath.Join(sdir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, fmt.Errorf("zookeeper: %w", err)
		}
		if err := os.WriteFile(filepath.Join(data, "myid"), []byte(fmt.Sprintf("%d\n", s.id)), 0o644); err != nil {
			return nil, fmt.Errorf("zookeeper: %w", err)
		}
		cfg := filepath.Join(sdir, "zoo.cfg")
		if err := os.WriteFile(cfg, []byte(serverConfig(s, e.servers, data)), 0o644); err != nil {
			return nil, fmt.Errorf("zookeeper: %w", err)
		}
		// As zkServer.sh start-foreground runs it, with the log (slf4j's
		// simple binding, warnings and worse) on stderr into the log file.
		args := []string{"-Dzookeeper.log.dir=" + sdir, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
			"-XX:+HeapDumpOnOutOfMemoryError", "-XX:OnOutOfMemoryError=kill -9 %p",
			"-cp", jo.Classpath, mainClass, cfg}
		p, err := e.group.Start(proc.Spec{Name: name, Path: jo.Java, Args: args, Log: filepath.Join(dir, name+".log")})
		if err != nil {
			return nil, err
		}
		e.procs = append(e.procs, p)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := e.waitWrite(rctx); err != nil {
		return nil, err
	}
	return e, nil
}

// clientAddrs lists the servers' client addresses, in server order.
func (e *ensemble) clientAddrs() []string {
	var addrs []string
	for _, s := range e.servers {
		addrs = append(addrs, s.client)
	}
	return addrs
}

func (e *ensemble) waitWrite(ctx context.Context) error {
	var last error
	for {
		for _, p := range e.procs {
			if !p.Running() {
				return fmt.Errorf("zookeeper: %s exited (%v): %s", p.Name, p.ExitErr(), p.Tail(2000))
			}
		}
		if last = tryWrite(e.clientAddrs()); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zookeeper: ensemble not ready: %w (last error: %w)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryWrite connects to the ensemble and writes one node.
func tryWrite(addrs []string) error {
	c, err := dial(addrs)
	if err != nil {
		return err
	}
	defer c.Close()
	return put(c, "/bench-ready", []byte("1"))
}

// Procs lists the servers' processes.
func (e *ensemble) Procs() []bench.Proc {
	var ps []bench.Proc
	for _, p := range e.procs {
		ps = append(ps, bench.Proc{Name: p.Name, PID: p.PID()})
	}
	return ps
}

// leader returns the index of the server that leads.
func (e *ensemble) leader() (int, error) {
	return leaderOf(e.clientAddrs(), func(i int) bool { return e.procs[i].Running() })
}

// leaderOf asks the servers at addrs which of them leads.
func leaderOf(addrs []string, alive func(int) bool) (int, error) {
	var errs []error
	for i, addr := range addrs {
		if alive != nil && !alive(i) {
			continue
		}
		mode, err := srvrMode(addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if mode == "leader" {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %w", errNoLeader, errors.Join(errs...))
}

// srvrMode asks the server at addr for its mode ("leader", "follower",
// "standalone") with the srvr four-letter word. zk.FLWSrvr cannot be used:
// it refuses the reply of Debian's build, whose version line ("3.8.0-${mvngit.commit.id},
// built on 2024-12-29 17:54 UTC") its pattern does not match.
func srvrMode(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("zookeeper: srvr: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", fmt.Errorf("zookeeper: srvr: %w", err)
	}
	if _, err := c.Write([]byte("srvr")); err != nil {
		return "", fmt.Errorf("zookeeper: srvr %s: %w", addr, err)
	}
	reply, err := io.ReadAll(io.LimitReader(c, 64<<10))
	if err != nil {
		return "", fmt.Errorf("zookeeper: srvr %s: %w", addr, err)
	}
	return parseMode(string(reply))
}

// parseMode finds the Mode line of a srvr reply.
func parseMode(reply string) (string, error) {
	for _, line := range strings.Split(reply, "\n") {
		if v, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("zookeeper: srvr: no mode in %q", reply)
}

// KillMaster SIGKILLs the leader and waits until it is reaped.
func (e *ensemble) KillMaster(ctx context.Context) (bench.Proc, error) {
	i, err := e.leader()
	if err != nil {
		return bench.Proc{}, err
	}
	p := e.procs[i]
	return bench.Proc{Name: p.Name, PID: p.PID()}, p.Kill()
}

// Close stops the servers and removes their data unless keep.
func (e *ensemble) Close() error {
	err := e.group.Close(10 * time.Second)
	if !e.keep {
		err = errors.Join(err, os.RemoveAll(e.dir))
	}
	return err
}
