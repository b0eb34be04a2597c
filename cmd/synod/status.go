package main

// This file owns `synod status`: the replicas as the proxy last saw them,
// with each one's lag, as a table or JSON. It runs on the command's
// goroutine, in the shape client.go gives every client verb.

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"synod/wire/line"
)

func init() { commandMakers = append(commandMakers, statusVerb.command) }

// statusRow is one replica in `synod status`. Role is the proxy's:
// master, follower, learner (a member that receives the log without
// voting yet) or down.
type statusRow struct {
	ID      uint64  `json:"id"`
	Addr    string  `json:"addr"`
	Role    string  `json:"role"`
	Ballot  string  `json:"ballot"`
	Commit  uint64  `json:"commit"`
	Applied uint64  `json:"applied"`
	Lag     *uint64 `json:"lag"` // null for a replica that is down
}

// statusRows adds each replica's lag: how many commands it has still to
// apply to catch up with the master's commit index (the highest commit
// index reported when there is no master).
func statusRows(nodes []line.NodeStatus) []statusRow {
	var ref, maxCommit uint64
	hasMaster := false
	for _, n := range nodes {
		if n.Role == "down" {
			continue
		}
		maxCommit = max(maxCommit, n.Commit)
		if n.Role == "master" {
			ref, hasMaster = max(ref, n.Commit), true
		}
	}
	if !hasMaster {
		ref = maxCommit
	}
	rows := make([]statusRow, 0, len(nodes))
	for _, n := range nodes {
		r := statusRow{ID: n.ID, Addr: n.Addr, Role: n.Role, Ballot: n.Ballot, Commit: n.Commit, Applied: n.Applied}
		if n.Role == "follower" && n.Extra["member"] == "learner" {
			r.Role = "learner" // a member catching up, not voting yet
		}
		if n.Role != "down" {
			lag := uint64(0)
			if ref > n.Applied {
				lag = ref - n.Applied
			}
			r.Lag = &lag
		}
		rows = append(rows, r)
	}
	return rows
}

// formatStatus draws rows as an aligned table.
func formatStatus(rows []statusRow) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tROLE\tBALLOT\tCOMMIT\tAPPLIED\tLAG")
	for _, r := range rows {
		lag := "-"
		if r.Lag != nil {
			lag = fmt.Sprint(*r.Lag)
		}
		ballot := r.Ballot
		if ballot == "" {
			ballot = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\n", r.ID, r.Addr, r.Role, ballot, r.Commit, r.Applied, lag)
	}
	tw.Flush()
	return b.String()
}

var statusVerb = clientVerb{
	name: "status", usage: "show every replica as the proxy sees it: role, ballot, commit and applied indexes, lag",
	prepare: shaped(func(c *cli.Context, _ verbArgs) (request, error) {
		return request{what: "status", send: func(s *session) (output, error) {
			nodes, err := s.cl.Status(s.ctx)
			if err != nil {
				return nil, err
			}
			rows := statusRows(nodes)
			return printed(struct {
				Nodes []statusRow `json:"nodes"`
			}{rows}, formatStatus(rows)), nil
		}}, nil
	}),
}
