package wire

// This file owns the bodies of an online backup's messages (KindBackup,
// KindBackupAsk, KindBackupChunk): a proxy asks a replica for a
// consistent snapshot of its whole state, then pulls it piece by piece.
// Plain data, no goroutines; like messages.go, field order is the
// encoding (as_array), so fields are only ever appended.
//
// The exchange, on a connection of its own (a backup's megabytes never
// queue in front of requests):
//
//	proxy                                   replica
//	KindBackup{Consistency, MinIndex, Chunk} ─▶
//	                                        reaches the index (a read index for
//	                                        linearizable), clones its state
//	◀─ KindBackupChunk{Seq 0: Stream, Index, Slot, Keys, Bytes, Digest}
//	KindBackupAsk{Stream, Seq 1} ─▶           (up to MaxBackupWindow asks out)
//	◀─ KindBackupChunk{Seq 1, Data, CRC}
//	...
//	◀─ KindBackupChunk{Seq n, Data, CRC, Last, Size, FileCRC}
//
// The chunks' Data, in Seq order, are one snapshot file as
// filestore.WriteSnapshot writes it, or, when the state holds large files,
// a tar archive of that snapshot file and every chunk its large files
// refer to (node/backup.go draws it). A refusal at any point is a chunk with
// a Code other than CodeOK and a Msg; the stream is then over.

// Bounds on what a backup's client controls. A replica refuses a request
// outside them with CodeBadRequest.
const (
	// MinBackupChunk and MaxBackupChunk bound BackupRequest.Chunk, the
	// bytes of file per chunk; 0 asks for DefaultBackupChunk. The largest
	// chunk fits a frame of the default size with room to spare.
	MinBackupChunk     = 4 << 10
	MaxBackupChunk     = 4 << 20
	DefaultBackupChunk = 1 << 20
	// MaxBackupWindow is the most asks of one stream a replica holds
	// unanswered; one more is refused with CodeBusy.
	MaxBackupWindow = 8
)

// BackupRequest starts a backup (KindBackup). The replica answers once it
// has applied far enough: at Linearizable, the master's commit index when
// the request arrived (a read index), so the backup holds every write
// acknowledged before it; at Session, MinIndex; at Stale, what it has.
type BackupRequest struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Consistency Consistency
	MinIndex    uint64
	Chunk       uint32 // bytes of file per chunk; 0: DefaultBackupChunk
}

// BackupAsk asks for piece Seq (1, 2, 3 ... in order) of stream Stream
// (KindBackupAsk).
type BackupAsk struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Stream uint64
	Seq    uint64
}

// BackupChunk is the header of a backup stream (Seq 0, the answer to
// KindBackup) or one piece of its file (Seq 1 on, the answer to a
// KindBackupAsk), or a refusal (Code not CodeOK, Msg says why; the stream
// is over).
type BackupChunk struct {
	//lint:ignore U1000 msgpack reads this field's tag: encode as an array.
	_msgpack struct{} `msgpack:",as_array"`

	Code   Code
	Msg    string
	Stream uint64 // the replica's name for the stream, for the asks
	Seq    uint64
	// The header's: the state cloned, at command Index and slot Slot,
	// with Keys files of Bytes value bytes in all (the chunks of large
	// files included), and the state digest (as STATUS reports it) at
	// that index.
	Index  uint64
	Slot   uint64
	Keys   uint64
	Bytes  uint64
	Digest string
	// A piece's: Data and its CRC-32C. The last piece says Last, and the
	// whole file's Size and CRC-32C.
	Data    []byte
	CRC     uint32
	Last    bool
	Size    uint64
	FileCRC uint32
	// MasterID and MasterAddr hint at the master on a CodeNotMaster
	// refusal, as Reply's do.
	MasterID   uint64
	MasterAddr string
}
