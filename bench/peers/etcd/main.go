// Command etcdbench runs synod's benchmark workloads against etcd, so that
// every performance claim about synod is a ratio measured on the same
// machine in the same sitting. It takes the same flags as `synod bench` and
// gives the same report and JSON, because both are built on synod's
// bench/benchcli; it is a Go module of its own so that etcd's dependencies
// never enter synod's.
//
// With --spawn 3 it starts three etcd members, each a separate process (this
// binary re-executed as `etcdbench member`), on loopback ports with a fresh
// data directory, using go.etcd.io/etcd/server/v3/embed with the etcd
// binary's defaults: embed.NewConfig() plus the one default the binary sets
// and NewConfig leaves at zero, the 300 ms slow-request warning threshold
// (at zero every request is logged, which costs etcd 5–20% of its
// throughput). Durability is etcd's default: the WAL is fsynced before
// anything is acknowledged.
package main

import (
	"github.com/urfave/cli/v2"

	"synod/bench/benchcli"
)

func main() {
	benchcli.Main("etcdbench", "run synod's benchmark workloads against etcd", etcdSystem(), []*cli.Command{memberCommand()}, errConsistency)
}
