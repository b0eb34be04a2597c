package paxos

// This file owns Ready, what the core hands the node after each batch of
// calls, and the order its parts must be handled in. Pure: the core builds
// a Ready on the node's engine goroutine; the engine sends its Messages and
// hands the rest to the persister, and calls Advance once it is durable.

// Ready is everything the core wants done after a batch of Tick, Step,
// Propose and ReadIndex calls. The application handles it in this order:
//
//  1. send Messages (they depend on nothing unpersisted);
//  2. persist Promise (if PromiseChanged) and append Accepted to the log,
//     then fsync once;
//  3. send MessagesAfterPersist: a Promise or an Accepted is a vote, and a
//     vote must never be visible before it is durable;
//  4. apply Chosen in order and serve ReadStates once applied far enough;
//  5. call Advance.
//
// A master may send its Accepts (in Messages) before its own fsync: it counts
// its own vote only when Advance confirms the log is durable.
type Ready struct {
	// SoftState is non-nil when the role, master, ballot or readiness
	// changed since the last Ready.
	SoftState *SoftState

	// Messages may be sent at once.
	Messages []Message

	// PromiseChanged says Promise must be written (atomically, durably)
	// before MessagesAfterPersist go out. A promise raised by an Accept is
	// not reported here: the accepted entry's ballot carries it, and a
	// restart takes the highest of the promise file and the log's ballots.
	PromiseChanged bool
	Promise        Ballot

	// Accepted entries are appended to the log, in order, before
	// MessagesAfterPersist go out. A later entry for a slot supersedes an
	// earlier one.
	Accepted []Entry

	// Committed is the chosen prefix: every slot up to it holds its chosen
	// value. Persisting it (with Accepted) is a recovery hint, never required
	// for safety; it must not be persisted before Accepted.
	Committed uint64

	// MessagesAfterPersist go out only once Promise and Accepted are durable.
	MessagesAfterPersist []Message

	// Chosen entries are applied in slot order; each is the chosen value for
	// its slot, and the slots are consecutive from the last one handed out.
	Chosen []Entry

	// ReadStates answer ReadIndex calls.
	ReadStates []ReadState

	// MembershipChanged says Membership must be persisted (the learner
	// marker) before anything else of this Ready.
	MembershipChanged bool
	Membership        Membership

	// PersistCommit asks for Committed to be written and fsynced even
	// without entries: it now covers the slot that chose the configuration
	// in force, which a removed replica waits for the new voters to know
	// durably before it leaves.
	PersistCommit bool

	// NeedSnapshot names a peer that compacted slots this replica lacks:
	// fetch its snapshot, install it, then call RestoreSnapshot.
	NeedSnapshot NodeID

	// lastAccepted is the highest slot of Accepted under the master's own
	// ballot, counted as its own vote when Advance confirms persistence.
	lastAccepted uint64
	ballot       Ballot
}

// IsEmpty reports whether rd asks nothing of the application.
func (rd *Ready) IsEmpty() bool {
	return rd.SoftState == nil && len(rd.Messages) == 0 && !rd.PromiseChanged && !rd.MembershipChanged && !rd.PersistCommit &&
		len(rd.Accepted) == 0 && len(rd.MessagesAfterPersist) == 0 &&
		len(rd.Chosen) == 0 && len(rd.ReadStates) == 0 && rd.NeedSnapshot == None
}

// NeedsPersist reports whether the application must write and fsync before
// sending MessagesAfterPersist.
func (rd *Ready) NeedsPersist() bool {
	return rd.PromiseChanged || rd.MembershipChanged || len(rd.Accepted) > 0 || rd.PersistCommit
}
