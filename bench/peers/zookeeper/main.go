// Command zkbench runs synod's benchmark workloads against ZooKeeper, the
// store built most like synod (one leader, followers that serve reads), so
// that synod's figures are ratios measured on the same machine in the same
// sitting. It takes the same flags as `synod bench` and gives the same
// report and JSON, because both are built on synod's bench/benchcli; it is
// a Go module of its own so that the ZooKeeper client
// (github.com/go-zookeeper/zk) never enters synod's go.mod.
//
// With --spawn 3 it starts an ensemble of three ZooKeeper servers from
// Debian's zookeeper package (3.8), each a java process of its own running
// QuorumPeerMain, on loopback ports chosen at run time, each with a fresh
// data directory. The configuration is the package's zoo.cfg (tickTime
// 2000, initLimit 10, syncLimit 5) with the ensemble's addresses, and
// nothing that changes durability: forceSync stays on, so a write is
// acknowledged only after a quorum fsynced its transaction log. A fresh
// JVM interprets what it runs until it has run it some thousands of times,
// so before the run the ensemble is driven for --jit-warmup (4 s) with
// writes and reads on nodes of its own; the measured run then meets servers
// warmed up as a long-running ensemble is.
//
// Reads: ZooKeeper's plain read is served by the server the client is
// connected to, without asking the leader (--consistency plain, or session
// and stale, the synod levels it is compared with); --consistency sync
// issues sync on the key's node before each read, which makes the server
// catch up with the leader first (ZooKeeper's nearest to a linearizable
// read; linearizable is accepted as its alias).
package main

// This file owns the command: its flags and the action, on main's
// goroutine.

import (
	"synod/bench/benchcli"
)

func main() {
	benchcli.Main("zkbench", "run synod's benchmark workloads against ZooKeeper", zkSystem(), nil, errConsistency)
}
