package paxos

// This file owns the configuration type (the members, voters and learners,
// their addresses) and its encoding as a log value. Which configuration
// governs which slot, and how a change is chosen, is reconfig.go's (see
// RECONFIG.md). Pure values: no goroutines; the engine, persister and
// applier, filestore/wal and the offline commands use them on their own.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Member is one replica of a configuration.
type Member struct {
	ID NodeID
	// Voter says whether its acceptances and promises count; a member that
	// is not a voter is a learner: it receives the log, applies it and may
	// be promoted.
	Voter bool
	// Addr is where peers and proxies reach it; the core only carries it.
	Addr string
}

// Configuration is a membership: every member, in id order.
type Configuration struct {
	Members []Member
}

// ErrInvalidConfiguration is returned (wrapped) for a configuration that
// cannot govern a cluster, and by ParseConfiguration for a config value
// that does not decode.
var ErrInvalidConfiguration = errors.New("paxos: invalid configuration")

// NewConfiguration returns the configuration of voters, in id order, with
// their addresses (addrs may lack some).
func NewConfiguration(voters []NodeID, addrs map[NodeID]string) Configuration {
	var c Configuration
	for _, id := range voters {
		c.Members = append(c.Members, Member{ID: id, Voter: true, Addr: addrs[id]})
	}
	c.sort()
	return c
}

func (c *Configuration) sort() {
	slices.SortFunc(c.Members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
}

// Member returns the member id, and whether there is one.
func (c Configuration) Member(id NodeID) (Member, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// IsVoter reports whether id is a voter of c.
func (c Configuration) IsVoter(id NodeID) bool {
	m, ok := c.Member(id)
	return ok && m.Voter
}

// Voters returns the voters' ids, in order.
func (c Configuration) Voters() []NodeID {
	var out []NodeID
	for _, m := range c.Members {
		if m.Voter {
			out = append(out, m.ID)
		}
	}
	return out
}

// IDs returns every member's id, in order.
func (c Configuration) IDs() []NodeID {
	out := make([]NodeID, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ID
	}
	return out
}

// Quorum returns how many voters make a majority.
func (c Configuration) Quorum() int { return len(c.Voters())/2 + 1 }

// Equal reports whether c and o have the same members, roles and addresses.
func (c Configuration) Equal(o Configuration) bool { return slices.Equal(c.Members, o.Members) }

// Validate reports what makes c unable to govern: no voter, a zero or
// repeated id, an address with a space or a control character.
func (c Configuration) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfiguration, fmt.Sprintf(format, args...))
	}
	seen := map[NodeID]bool{}
	voters := 0
	for _, m := range c.Members {
		if m.ID == None {
			return bad("member id 0")
		}
		if seen[m.ID] {
			return bad("member %d listed twice", m.ID)
		}
		seen[m.ID] = true
		if m.Voter {
			voters++
		}
		for _, ch := range []byte(m.Addr) {
			if ch <= ' ' || ch == 0x7f {
				return bad("address %q of member %d", m.Addr, m.ID)
			}
		}
	}
	if voters == 0 {
		return bad("no voter")
	}
	return nil
}

// String lists the members: "1 2 3 +4" (a plus for learners).
func (c Configuration) String() string {
	var b []byte
	for i, m := range c.Members {
		if i > 0 {
			b = append(b, ' ')
		}
		if !m.Voter {
			b = append(b, '+')
		}
		b = strconv.AppendUint(b, uint64(m.ID), 10)
	}
	return string(b)
}

// configFormat is the first command of a config value; the rest are one
// member each, "v <id> <addr>" or "l <id> <addr>" (addr may be empty).
// Values of the first format (one decimal voter id per command, no
// addresses) are still read.
const configFormat = "c1"

// Value encodes c as a config value, readable in the log.
func (c Configuration) Value() Value {
	v := Value{Kind: ValueConfig, Cmds: [][]byte{[]byte(configFormat)}}
	for _, m := range c.Members {
		role := "l "
		if m.Voter {
			role = "v "
		}
		cmd := append([]byte(role), strconv.FormatUint(uint64(m.ID), 10)...)
		cmd = append(append(cmd, ' '), m.Addr...)
		v.Cmds = append(v.Cmds, cmd)
	}
	return v
}

// ParseConfiguration decodes a config value. Errors wrap
// ErrInvalidConfiguration.
func ParseConfiguration(v Value) (Configuration, error) {
	var c Configuration
	if v.Kind != ValueConfig {
		return c, fmt.Errorf("%w: a value of kind %d", ErrInvalidConfiguration, v.Kind)
	}
	if len(v.Cmds) == 0 || string(v.Cmds[0]) != configFormat {
		// The first format: voter ids alone.
		for _, cmd := range v.Cmds {
			id, err := strconv.ParseUint(string(cmd), 10, 64)
			if err != nil {
				return c, fmt.Errorf("%w: member %q", ErrInvalidConfiguration, cmd)
			}
			c.Members = append(c.Members, Member{ID: NodeID(id), Voter: true})
		}
	} else {
		for _, cmd := range v.Cmds[1:] {
			role, rest, ok := bytes.Cut(cmd, []byte{' '})
			idText, addr, ok2 := bytes.Cut(rest, []byte{' '})
			id, err := strconv.ParseUint(string(idText), 10, 64)
			if !ok || !ok2 || err != nil || (string(role) != "v" && string(role) != "l") {
				return c, fmt.Errorf("%w: member %q", ErrInvalidConfiguration, cmd)
			}
			c.Members = append(c.Members, Member{ID: NodeID(id), Voter: string(role) == "v", Addr: string(addr)})
		}
	}
	c.sort()
	if err := c.Validate(); err != nil {
		return Configuration{}, err
	}
	return c, nil
}
