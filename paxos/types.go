package paxos

// This file owns the core's vocabulary: node ids, ballots, values and log
// entries, message types and messages, roles, and the soft, read and hard
// state the core reports. Pure values: no goroutines; the engine, the
// persister, the applier and filestore/wal pass them between them.

import "fmt"

// NodeID names a replica. Zero means "none".
type NodeID uint64

// None is the zero NodeID: no replica.
const None NodeID = 0

// Ballot orders proposals: by Round, then by Node. Two proposers never share
// a ballot because the node id breaks ties. The zero Ballot is below every
// ballot a proposer uses.
type Ballot struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 tells msgpack to encode as an array

	Round uint64
	Node  NodeID
}

// Less reports whether b orders strictly before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.Node < o.Node
}

// IsZero reports whether b is the zero ballot.
func (b Ballot) IsZero() bool { return b.Round == 0 && b.Node == 0 }

func (b Ballot) String() string { return fmt.Sprintf("%d.%d", b.Round, b.Node) }

// ValueKind says what a slot holds.
type ValueKind uint8

// Value kinds. A no-op fills a gap a new master found in its log; a config
// value carries a configuration (configuration.go).
const (
	ValueCmds ValueKind = iota
	ValueNoop
	ValueConfig
)

// String names the kind.
func (k ValueKind) String() string {
	switch k {
	case ValueCmds:
		return "cmds"
	case ValueNoop:
		return "noop"
	case ValueConfig:
		return "config"
	}
	return fmt.Sprintf("ValueKind(%d)", uint8(k))
}

// Value is what one slot decides: a batch of opaque client commands, or a
// no-op. Batching many commands per slot is what makes a slot cheap.
type Value struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 tells msgpack to encode as an array

	Kind ValueKind
	Cmds [][]byte
}

// Entry is a value for a slot under a ballot. In Ready.Accepted it is a vote
// to persist; in Ready.Chosen the ballot is the one that chose it.
type Entry struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 tells msgpack to encode as an array

	Slot   uint64
	Ballot Ballot
	Value  Value
}

// MsgType names a message of the protocol.
type MsgType uint8

// Message types. Pre-prepare is a probe that changes no state, so a replica
// cut off from the master cannot raise ballots that would depose it on return.
const (
	MsgPrePrepare MsgType = iota + 1
	MsgPrePromise
	MsgPrepare
	MsgPromise
	MsgAccept
	MsgAccepted
	MsgHeartbeat
	MsgHeartbeatResp
	MsgReadIndex
	MsgReadIndexResp
	MsgFetch
	MsgFetchResp
	MsgProbe
	MsgProbeResp
	MsgTimeoutNow
)

var msgNames = [...]string{
	MsgPrePrepare:    "PrePrepare",
	MsgPrePromise:    "PrePromise",
	MsgPrepare:       "Prepare",
	MsgPromise:       "Promise",
	MsgAccept:        "Accept",
	MsgAccepted:      "Accepted",
	MsgHeartbeat:     "Heartbeat",
	MsgHeartbeatResp: "HeartbeatResp",
	MsgReadIndex:     "ReadIndex",
	MsgReadIndexResp: "ReadIndexResp",
	MsgFetch:         "Fetch",
	MsgFetchResp:     "FetchResp",
	MsgProbe:         "Probe",
	MsgProbeResp:     "ProbeResp",
	MsgTimeoutNow:    "TimeoutNow",
}

func (t MsgType) String() string {
	if int(t) < len(msgNames) && msgNames[t] != "" {
		return msgNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Message is one protocol message. Its fields mean, by type:
//
//	PrePrepare   Ballot: the ballot the sender would prepare
//	PrePromise   Reject: no; Hint: the responder's promise
//	Prepare      Ballot; Slot: first slot the sender has not seen chosen;
//	             Token: the addressee's promotion token, if it is a learner
//	             that asked for a phase 1 (see Learner); Force + Token: the
//	             sender campaigns because the master handed over to it, and
//	             Token names that handover
//	Promise      Ballot; Entries: every accepted entry at or after Slot;
//	             Commit: the responder's chosen prefix; Index: its first held
//	             slot; Reject + Hint
//	Accept       Ballot; Entries; Commit: master's chosen prefix
//	Accepted     Ballot; Slot..Index: the range accepted; Reject + Hint
//	Heartbeat    Ballot; Commit; Context: the round; Index: the master's
//	             no-op slot; Transfer + Token: the handover under way, if any
//	HeartbeatResp Ballot; Context: the round echoed; Reject + Hint
//	ReadIndex    Context: the requester's read id
//	ReadIndexResp Context; Index: the read index; Reject if refused
//	Fetch        Slot: first chosen slot wanted
//	FetchResp    Entries: chosen entries; Commit: the sender's chosen
//	             prefix (under whatever ballot it follows now); Reject: the
//	             slots were compacted (Index: the sender's first held slot)
//	TimeoutNow   the master hands over: campaign now; Ballot: the master's;
//	             Token: the handover
//	Probe        sent by a replica that started on an empty directory;
//	             Token: its incarnation; by a removed replica, Commit: the
//	             slot that removed it
//	ProbeResp    Reject: the responder is not fresh (it has promised or
//	             accepted something); Commit: its chosen prefix; Index: the
//	             part of it its disk holds; Token: the probe's, echoed;
//	             Slot: the slot its side state is settled to (SettledUpTo)
//
// Learner is set on HeartbeatResp by a replica that may not vote yet; its
// Hint is then the newest ballot whose Prepare carrying its token it
// refused, and Token its promotion token (0 while it still waits out
// promises it may have given before it lost its state).
//
// Ballot.Node is the sender for the messages a proposer sends at its own
// ballot (PrePrepare, Prepare, Accept, Heartbeat, TimeoutNow) and the
// addressee for the answers to them; Step drops anything else.
type Message struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 tells msgpack to encode as an array

	Type     MsgType
	From     NodeID
	To       NodeID
	Ballot   Ballot
	Slot     uint64
	Index    uint64
	Commit   uint64
	Context  uint64
	Reject   bool
	Hint     Ballot
	Entries  []Entry
	Learner  bool
	Force    bool
	Transfer NodeID
	Token    uint64
	// ConfSlot is the slot that chose the sender's configuration in force.
	// A replica takes messages from outside its own configuration only from
	// a sender that knows a newer one: a member it has not heard of yet.
	ConfSlot uint64
}

// Role is what a replica currently does.
type Role uint8

// Roles. A candidate is running phase 1 (or its pre-prepare probe).
const (
	Follower Role = iota
	Candidate
	Master
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case Candidate:
		return "candidate"
	case Master:
		return "master"
	}
	return "unknown"
}

// SoftState is volatile state the application may show; it is never
// persisted.
type SoftState struct {
	Role   Role
	Master NodeID // the master this replica follows, or itself; None if unknown
	Ballot Ballot // the ballot of that master (or of this candidate)
	// Ready is true on a master once its own no-op is chosen: only then does
	// it grant read indexes.
	Ready bool
	// Transfer names the follower a master is handing over to.
	Transfer NodeID
	// Removed is set when the configuration in force does not include
	// this replica: it takes no further part and should stop.
	Removed bool
	// ConfigSlot is the slot that chose the configuration in force.
	ConfigSlot uint64
}

// ReadState answers a ReadIndex call. Once the application has applied
// every slot up to Index, a read started before the ReadIndex call may be
// served from local state. A failed read carries Failed and no index.
type ReadState struct {
	Context uint64
	Index   uint64
	Failed  bool
}

// HardState is what a replica must find again after a crash: the promise and
// the accepted entries (the log), plus a hint of its chosen prefix.
type HardState struct {
	Promise Ballot
	// Entries is the log as persisted: for each slot, the last accepted
	// entry. Entries at or below Committed hold their chosen values.
	Entries []Entry
	// Committed is the highest slot such that every slot up to it is chosen
	// and its held entry is the chosen one.
	Committed uint64
	// Applied is the slot the application's state already reflects (for
	// example from a snapshot); chosen entries up to it are not handed out
	// again.
	Applied uint64
	// Membership is what the replica's learner marker says: a replica that
	// may have forgotten votes it gave must not vote until it is safe.
	Membership Membership
	// Config is the configuration in force at Applied (from the snapshot)
	// and ConfigSlot the slot that chose it; an empty Config means the
	// one Config.Members gives.
	Config     Configuration
	ConfigSlot uint64
}

// Membership says whether a replica may vote.
type Membership uint8

// Memberships. A replica that starts on an empty directory is Fresh: it
// asks its peers whether the cluster is new (it may vote) or not (its
// directory was wiped: it is a Learner). A Learner votes again once a master
// ran a phase 1 that it refused, re-proposed everything that phase 1 found,
// and the learner caught up past it (DESIGN.md, "Files on disk").
const (
	Voter Membership = iota
	Fresh
	Learner
)

func (m Membership) String() string {
	switch m {
	case Voter:
		return "voter"
	case Fresh:
		return "fresh"
	case Learner:
		return "learner"
	}
	return "unknown"
}
