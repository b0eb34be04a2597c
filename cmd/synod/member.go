package main

// This file owns `synod member list|add|remove|promote`: the membership of
// the cluster, read and changed through the proxy (paxos/RECONFIG.md). Each
// sub-command is a clientVerb (client.go gives them the shape every client
// verb shares); this file holds their arguments, what they send and what
// they print. They run on the command's goroutine.

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"synod/wire/line"
)

func init() { commandMakers = append(commandMakers, memberCommand) }

// memberArgs are a member sub-command's positional arguments, checked.
type memberArgs struct {
	ID   uint64 // add, remove, promote
	Addr string // add
}

// memberShapes says which positional arguments each member sub-command
// takes.
var memberShapes = map[string]string{
	"list":    "",
	"add":     "ID ADDR",
	"remove":  "ID",
	"promote": "ID",
}

// parseMemberArgs checks the arguments of `synod member sub`: an ID is a
// positive number, an ADDR is host:port with a port in 1..65535. Flags go
// before the arguments, as for every client verb.
func parseMemberArgs(sub string, args []string) (memberArgs, error) {
	shape, ok := memberShapes[sub]
	if !ok {
		return memberArgs{}, usageError("member %q: want list, add, remove or promote", sub)
	}
	fields := strings.Fields(shape)
	if len(args) != len(fields) {
		for _, arg := range args {
			if strings.HasPrefix(arg, "-") && len(arg) > 1 {
				return memberArgs{}, usageError("member %s takes %s; %q looks like a flag, and flags go before the arguments: synod member %s [flags] %s", sub, shape, arg, sub, shape)
			}
		}
		if shape == "" {
			return memberArgs{}, usageError("member %s takes no arguments", sub)
		}
		return memberArgs{}, usageError("member %s takes %s, got %d argument(s)", sub, shape, len(args))
	}
	var a memberArgs
	for i, arg := range args {
		switch fields[i] {
		case "ID":
			id, err := strconv.ParseUint(arg, 10, 64)
			if err != nil || id == 0 {
				return memberArgs{}, usageError("member id %q: want a positive number", arg)
			}
			a.ID = id
		case "ADDR":
			if !line.ValidMemberAddr(arg) {
				return memberArgs{}, usageError("member address %q: want host:port, with a port in 1..65535", arg)
			}
			a.Addr = arg
		}
	}
	return a, nil
}

// memberPrepare is prepare for a member sub-command: it checks the
// arguments and hands them to f.
func memberPrepare(sub string, f func(a memberArgs) request) func(c *cli.Context) (request, error) {
	return func(c *cli.Context) (request, error) {
		a, err := parseMemberArgs(sub, c.Args().Slice())
		if err != nil {
			return request{}, err
		}
		return f(a), nil
	}
}

func memberCommand() *cli.Command {
	return &cli.Command{
		Name:  "member",
		Usage: "list or change the cluster's members (list, add, remove, promote), through the proxy",
		Description: "A change goes to the master, which answers once it is in force; one change\n" +
			"runs at a time. add joins a replica as a learner: it catches up, then becomes\n" +
			"a voter by itself (or by promote). remove of the master hands mastership over\n" +
			"first. A change already in force succeeds again, so retrying one is safe.",
		OnUsageError: onUsageError,
		Subcommands: []*cli.Command{
			memberListVerb.command(),
			memberChangeVerb("add", "add replica ID, listening at ADDR (host:port), as a learner", func(s *session, a memberArgs) (uint64, error) {
				return s.cl.MemberAdd(s.ctx, a.ID, a.Addr)
			}).command(),
			memberChangeVerb("remove", "remove replica ID (the master hands over first if it is the one)", func(s *session, a memberArgs) (uint64, error) {
				return s.cl.MemberRemove(s.ctx, a.ID)
			}).command(),
			memberChangeVerb("promote", "make the learner ID a voter now, without waiting for it to catch up", func(s *session, a memberArgs) (uint64, error) {
				return s.cl.MemberPromote(s.ctx, a.ID)
			}).command(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError("member takes list, add ID ADDR, remove ID or promote ID")
			}
			return usageError("member %q: want list, add, remove or promote", c.Args().First())
		},
	}
}

// memberRow is one member in `synod member list`.
type memberRow struct {
	ID   uint64 `json:"id"`
	Addr string `json:"addr"`
	Role string `json:"role"` // voter or learner
}

// memberList is the --json form of `synod member list`.
type memberList struct {
	ConfigSlot uint64      `json:"config_slot"`
	Members    []memberRow `json:"members"`
}

// formatMembers draws the members as an aligned table.
func formatMembers(rows []memberRow) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tROLE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", r.ID, r.Addr, r.Role)
	}
	tw.Flush()
	return b.String()
}

var memberListVerb = clientVerb{
	name: "list", usage: "show the configuration in force: every member, voter or learner",
	prepare: memberPrepare("list", func(memberArgs) request {
		return request{what: "member list", send: func(s *session) (output, error) {
			members, slot, err := s.cl.Members(s.ctx)
			if err != nil {
				return nil, err
			}
			rows := make([]memberRow, 0, len(members))
			for _, m := range members {
				rows = append(rows, memberRow{ID: m.ID, Addr: m.Addr, Role: m.Role()})
			}
			return printed(memberList{ConfigSlot: slot, Members: rows}, formatMembers(rows)), nil
		}}
	}),
}

// memberChange is the --json form of a membership change.
type memberChange struct {
	Op         string `json:"op"`
	ID         uint64 `json:"id"`
	Addr       string `json:"addr,omitempty"`
	ConfigSlot uint64 `json:"config_slot"`
}

// memberChangeVerb makes add, remove and promote: each prints what is now
// in force and the slot of the configuration that holds it.
func memberChangeVerb(sub, usage string, change func(s *session, a memberArgs) (uint64, error)) clientVerb {
	return clientVerb{name: sub, usage: usage, argsUsage: memberShapes[sub], prepare: memberPrepare(sub, func(a memberArgs) request {
		what := fmt.Sprintf("member %s %d", sub, a.ID)
		return request{what: what, send: func(s *session) (output, error) {
			slot, err := change(s, a)
			if err != nil {
				return nil, err
			}
			var human string
			switch sub {
			case "add":
				human = fmt.Sprintf("member %d added as a learner at %s (configuration %d)\n", a.ID, a.Addr, slot)
			case "remove":
				human = fmt.Sprintf("member %d removed (configuration %d)\n", a.ID, slot)
			case "promote":
				human = fmt.Sprintf("member %d is a voter (configuration %d)\n", a.ID, slot)
			}
			return printed(memberChange{Op: sub, ID: a.ID, Addr: a.Addr, ConfigSlot: slot}, human), nil
		}}
	})}
}
