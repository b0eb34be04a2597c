package wire

// This file owns the client RPC bodies shared by replicas and proxies:
// requests, replies, status and snapshot transfer, with their ops, codes
// and roles. Each travels as the msgpack body of an Envelope whose Kind
// names it. Field order is the encoding (as_array), so fields are only
// ever appended. Plain values: no goroutines, safe to share once built.

// Op is a client operation.
type Op uint8

// Client operations. Writes go through consensus; reads are served locally
// at the requested consistency.
const (
	OpPut Op = iota + 1
	OpAppend
	OpCAS
	OpDel
	OpGet
	OpStat
	OpList
	// Membership (paxos/RECONFIG.md). OpMembers is a read: any replica
	// answers with the configuration in force. The changes go to the
	// master, which answers once the change is chosen and in force; they
	// name the member in Request.MemberID (and MemberAddr for an add).
	OpMembers
	OpMemberAdd     // add MemberID at MemberAddr as a learner
	OpMemberRemove  // remove MemberID (the master hands over first if it is the one)
	OpMemberPromote // make the learner MemberID a voter
	// OpWatch is one poll of a watch (see WatchPoll in Request): any
	// replica that applied far enough answers, from its history of
	// applied commands, with the changes to Key (or under it, with
	// WatchPrefix) at or after From.
	OpWatch
	// OpPutFile is a write of a large file whose chunks the sender has
	// already stored on a majority (KindChunkPut): Value is the file's
	// manifest (filestore.Manifest's text), not its bytes.
	OpPutFile
	// OpGetRange reads Length bytes at Offset of a file (a read).
	OpGetRange
	// OpCASFile is OpPutFile only if the file is at Version (0: must not
	// exist), as OpCAS.
	OpCASFile
)

// IsMemberChange reports whether op changes the membership.
func (op Op) IsMemberChange() bool { return op >= OpMemberAdd && op <= OpMemberPromote }

// IsWrite reports whether op changes state and must go through the master.
func (op Op) IsWrite() bool { return op >= OpPut && op <= OpDel || op == OpPutFile || op == OpCASFile }

// String returns the line-protocol verb for op.
func (op Op) String() string {
	switch op {
	case OpPut:
		return "PUT"
	case OpAppend:
		return "APPEND"
	case OpCAS:
		return "CAS"
	case OpDel:
		return "DEL"
	case OpGet:
		return "GET"
	case OpStat:
		return "STAT"
	case OpList:
		return "LIST"
	case OpMembers:
		return "MEMBER LIST"
	case OpMemberAdd:
		return "MEMBER ADD"
	case OpMemberRemove:
		return "MEMBER REMOVE"
	case OpMemberPromote:
		return "MEMBER PROMOTE"
	case OpWatch:
		return "WATCH"
	case OpPutFile:
		return "PUTFILE"
	case OpGetRange:
		return "GET RANGE"
	case OpCASFile:
		return "PUTFILE VERSION"
	}
	return "UNKNOWN"
}

// Consistency is the read level a client asks for.
type Consistency uint8

// Read consistency levels (DESIGN.md, "Reads").
const (
	// Linearizable reads confirm a read index with the master first.
	Linearizable Consistency = iota
	// Session reads wait until the replica applied MinIndex.
	Session
	// Stale reads answer from local state at once.
	Stale
)

// String returns the line-protocol name of c.
func (c Consistency) String() string {
	switch c {
	case Linearizable:
		return "linearizable"
	case Session:
		return "session"
	case Stale:
		return "stale"
	}
	return "unknown"
}

// Code is the outcome of a client request. The non-OK codes map one to one
// onto the line protocol's ERR codes.
type Code uint8

// Reply codes.
const (
	CodeOK Code = iota
	CodeNotFound
	CodeConflict
	CodeNotMaster   // this replica is not the master; MasterID/MasterAddr hint
	CodeUnavailable // no master, disk full: nothing applied, safe to retry
	CodeBusy        // too many requests in flight
	CodeTimeout     // could not reach the requested index in time
	CodeBadRequest
	CodeTooLarge
	CodeInternal
	// Session refusals of a write (see Request.Ack): the state machine did
	// not apply it. The proxy resolves them; a client never sees them.
	CodeOutOfOrder     // an earlier write of the session is not applied yet: send again, in order
	CodeSessionUnknown // the session is gone (or not started) and this write cannot start it
	CodeAnswered       // a retry of a write whose reply the session no longer holds (a client bug)
	// CodeCompacted refuses a watch poll whose From is older than the
	// replica's history; Reply.Oldest is the oldest index it still has.
	CodeCompacted
)

// MaxSessionWindow is the most writes of one session a client may have
// unresolved at once: the replicas keep that many replies per session for
// its retries (filestore's session window is at least this large).
const MaxSessionWindow = 1024

// String returns the line-protocol name of c.
func (c Code) String() string {
	switch c {
	case CodeOK:
		return "OK"
	case CodeNotFound:
		return "NOT_FOUND"
	case CodeConflict:
		return "CONFLICT"
	case CodeNotMaster:
		return "NOT_MASTER"
	case CodeUnavailable:
		return "UNAVAILABLE"
	case CodeBusy:
		return "BUSY"
	case CodeTimeout:
		return "TIMEOUT"
	case CodeBadRequest:
		return "BAD_REQUEST"
	case CodeTooLarge:
		return "TOO_LARGE"
	case CodeInternal:
		return "INTERNAL"
	case CodeOutOfOrder:
		return "OUT_OF_ORDER"
	case CodeSessionUnknown:
		return "SESSION_UNKNOWN"
	case CodeAnswered:
		return "ANSWERED"
	case CodeCompacted:
		return "COMPACTED"
	}
	return "UNKNOWN"
}

// Request is a client operation sent by a proxy to a replica (KindRequest).
//
// A write with a ClientID belongs to that client's session: its writes are
// numbered Seq 1, 2, 3 ... and the replicas apply them in that order, each
// once, whatever order they arrive in (a write ahead of its turn is
// refused with CodeOutOfOrder, a duplicate answered with the first reply).
// A client resends a refused write, and every later one, in order, with
// the same Seq. A write that may have been proposed before (an attempt got
// no definitive answer: see Reply.NotApplied) must travel with Retry set:
// if its session was lost (expired, evicted), it is refused with
// CodeSessionUnknown rather than applied a second time.
type Request struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Op          Op
	Key         string // for OpList, the prefix
	Value       []byte
	Version     uint64      // OpCAS, OpCASFile: expected version, 0 = must not exist
	ClientID    uint64      // writes: the session, 0 for none (no exactly-once, no order)
	Seq         uint64      // writes: the place in the session, from 1
	Consistency Consistency // reads
	MinIndex    uint64      // reads: answer only once applied this far
	// Ack is, on a write, the lowest Seq of the session whose reply the
	// client has not been given yet; replicas may forget replies below it.
	// 0 means Seq. A client keeps at most MaxSessionWindow writes of a
	// session unresolved.
	Ack uint64
	// Retry marks a write that may have been proposed before.
	Retry bool
	// MemberID and MemberAddr name the member of a membership change.
	MemberID   uint64
	MemberAddr string
	// Watch is set on an OpWatch poll (nil otherwise: one byte on the
	// wire for every other request).
	Watch *WatchPoll
	// Offset and Length are the range of OpGetRange.
	Offset, Length uint64
}

// WatchPoll asks a replica for the changes at or after From to Key, or
// with Prefix to every key that starts with Key ("" for every key). The
// replica answers with the changes it has applied, at most MaxBytes of
// them but always whole commands and at least one, or, when there is none
// yet, waits up to Wait milliseconds for one before it answers with none.
// Either way Reply.Through is the last index the answer covers: the next
// poll asks From Through+1.
type WatchPoll struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Prefix bool
	// From is the first index wanted; 0 means from what the replica
	// applied next (a new watch "from now").
	From     uint64
	Prev     bool   // send each change's previous value too
	Wait     uint32 // milliseconds
	MaxBytes uint32
}

// Event is one change a watch reports: the command at Index changed Key.
// Op is OpPut (a PUT, or a CAS that swapped), OpAppend (Value is the
// bytes appended) or OpDel. Prev and HadPrev, when the poll asked for
// them, are the value before and whether the file existed.
type Event struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Index   uint64
	Op      Op
	Key     string
	Value   []byte
	Prev    []byte
	HadPrev bool
}

// Member is one replica of the cluster's configuration.
type Member struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	ID    uint64
	Addr  string
	Voter bool // false: a learner, receiving the log without voting
}

// Reply answers a Request (KindReply), matched by the envelope's ID.
type Reply struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Code       Code
	Index      uint64 // writes: position in the command sequence
	Version    uint64 // reads, CONFLICT: the file's version
	Value      []byte
	Keys       []string
	Msg        string
	MasterID   uint64 // CodeNotMaster: the master as this replica knows it, 0 if none
	MasterAddr string
	Applied    uint64 // the replica's applied index when it answered
	Size       uint64 // OpStat: the file's length in bytes
	// NotApplied, on a write's refusal, promises that this attempt was
	// not applied and never will be: it was never proposed, or the state
	// machine turned it down. Without it a refused write's fate is
	// unknown (say a master stepped down with it proposed), and the
	// client must resend it as a Retry.
	NotApplied bool
	// Members and ConfigSlot answer OpMembers and the membership changes:
	// the configuration in force and the slot that chose it.
	Members    []Member
	ConfigSlot uint64
	// Events, Through and Oldest answer OpWatch (see WatchPoll); Oldest
	// is also the oldest index a CodeCompacted refusal can still serve.
	Events  []Event
	Through uint64
	Oldest  uint64
	// Sum is, for OpGetRange, the SHA-256 of the whole file in hex (Size
	// is its length, Value the bytes of the range).
	Sum string
}

// StatusRequest asks a replica for its Status (KindStatus). It has no fields.
type StatusRequest struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`
}

// NodeRole is a replica's part in the cluster, as its STATUS reports it.
// It travels as its text.
type NodeRole string

// The roles a replica reports.
const (
	NodeFollower  NodeRole = "follower"
	NodeCandidate NodeRole = "candidate" // elected, its first no-op not chosen yet: serves nothing
	NodeMaster    NodeRole = "master"
	NodeLearner   NodeRole = "learner"  // a member that receives the log without voting
	NodeDegraded  NodeRole = "degraded" // its disk failed: serves reads only, votes no more
)

// Status describes one replica (KindStatusReply).
type Status struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	ID         uint64
	Addr       string
	Role       NodeRole
	Round      uint64 // the ballot this replica works under
	BallotNode uint64
	MasterID   uint64 // 0 if unknown
	MasterAddr string
	Commit     uint64 // commands known chosen
	Applied    uint64 // commands applied
	Digest     string // digest of the applied state
	FreeDisk   uint64 // bytes free in the data directory
	Lease      bool   // master holds a valid lease
	Transfer   uint64 // non-zero: mastership is being handed to this id
	// Members is the configuration in force on this replica and
	// ConfigSlot the slot that chose it: a proxy learns every member from
	// any one, and follows changes (the highest ConfigSlot wins).
	Members    []Member
	ConfigSlot uint64
}

// SnapshotAck asks a replica for its snapshot from Offset on
// (KindSnapshotAck): Slot 0 means its newest one. Asking again from the
// offset reached resumes a transfer after a broken connection.
type SnapshotAck struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 msgpack reads this field's tag: encode as an array.

	Slot   uint64
	Offset uint64
}

// SnapshotChunk is one piece of a snapshot file (KindSnapshotChunk). CRC is
// the CRC-32C of Data; Total is the file's size, so the receiver knows when
// it has it all. Err is set, and nothing else, when the snapshot asked for
// is gone (pruned) or none exists.
type SnapshotChunk struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 msgpack reads this field's tag: encode as an array.

	Slot   uint64
	Offset uint64
	Total  uint64
	Data   []byte
	CRC    uint32
	Err    string
}
