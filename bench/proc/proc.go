// Package proc is the process supervisor, synod/internal/proc, as code
// outside the synod module sees it: the etcd peer (bench/peers/etcd, the
// module etcdbench) starts its members with it, and the ZooKeeper peer
// (bench/peers/zookeeper, the module zkbench) its servers. Go lets only
// code under synod/ import synod/internal/..., so those modules cannot
// reach the supervisor itself; these aliases give it the very same types and
// functions, and nothing here is a second copy. Code inside the synod
// module imports synod/internal/proc directly.
//
// Goroutines: see synod/internal/proc.
package proc

// This file owns all of it: aliases, no code or goroutines of its own.

import "synod/internal/proc"

type (
	// Group starts child processes and stops them all on Close.
	Group = proc.Group
	// Proc is one started child process.
	Proc = proc.Proc
	// Spec says how to start one child.
	Spec = proc.Spec
)

// ErrClosed is returned by Group.Start after Close.
var ErrClosed = proc.ErrClosed

// NewGroup returns an empty group; call Close to stop its processes.
func NewGroup() *Group { return proc.NewGroup() }

// FreePorts returns n distinct loopback addresses whose ports were free a
// moment ago.
func FreePorts(n int) ([]string, error) { return proc.FreePorts(n) }
