package wire

// This file owns the envelope: the Kind of each message, the [kind, id,
// body] array around every body, and its encoding and decoding. Pure
// values and functions: the caller's goroutine.

import (
	"fmt"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
)

// Kind names what an envelope's body holds. Its values are part of the
// protocol: they never change meaning without a ProtocolVersion bump.
type Kind uint8

// Message kinds. Zero is not a kind, so a zeroed envelope never passes for
// a real message.
const (
	// KindHello opens a handshake; body: Hello.
	KindHello Kind = iota + 1
	// KindWelcome accepts a handshake; body: the acceptor's Hello.
	KindWelcome
	// KindRefuse refuses a handshake; body: the reason. The sender closes.
	KindRefuse
	// KindPaxos carries a paxos message, opaque to wire.
	KindPaxos
	// KindRequest carries a client Request; the ID matches its KindReply.
	KindRequest
	// KindReply answers a KindRequest; body: Reply.
	KindReply
	// KindStatus asks for a replica's Status; body: StatusRequest.
	KindStatus
	// KindStatusReply answers a KindStatus; body: Status.
	KindStatusReply
	// KindSnapshotChunk is reserved for snapshot streaming.
	KindSnapshotChunk
	// KindSnapshotAck is reserved for snapshot streaming.
	KindSnapshotAck
	// KindPing asks the peer for a KindPong with the same ID; body: nil.
	KindPing
	// KindPong answers a KindPing.
	KindPong
	// KindBackup starts an online backup; body: BackupRequest. It is
	// answered with a KindBackupChunk of the same ID (the stream's
	// header, or its refusal).
	KindBackup
	// KindBackupAsk asks for the next piece of a backup stream; body:
	// BackupAsk. Answered with a KindBackupChunk of the same ID.
	KindBackupAsk
	// KindBackupChunk answers KindBackup and KindBackupAsk; body:
	// BackupChunk.
	KindBackupChunk
	// KindChunkPut stores a chunk of a large file on a replica; body:
	// ChunkPut. Answered with a KindChunkAck once the chunk is durable.
	KindChunkPut
	// KindChunkAck answers KindChunkPut; body: ChunkAck.
	KindChunkAck
	// KindChunkGet asks a replica for a chunk it holds; body: ChunkGet.
	// Answered with a KindChunkData.
	KindChunkGet
	// KindChunkData answers KindChunkGet; body: ChunkData.
	KindChunkData
	// KindChunkHas asks a replica which of some chunks it holds durably;
	// body: ChunkHas. Answered with a KindChunkHeld.
	KindChunkHas
	// KindChunkHeld answers KindChunkHas; body: ChunkHeld.
	KindChunkHeld

	kindEnd // one past the last kind; keep last
)

var kindNames = [...]string{
	KindHello:         "hello",
	KindWelcome:       "welcome",
	KindRefuse:        "refuse",
	KindPaxos:         "paxos",
	KindRequest:       "request",
	KindReply:         "reply",
	KindStatus:        "status",
	KindStatusReply:   "status-reply",
	KindSnapshotChunk: "snapshot-chunk",
	KindSnapshotAck:   "snapshot-ack",
	KindPing:          "ping",
	KindPong:          "pong",
	KindBackup:        "backup",
	KindBackupAsk:     "backup-ask",
	KindBackupChunk:   "backup-chunk",
	KindChunkPut:      "chunk-put",
	KindChunkAck:      "chunk-ack",
	KindChunkGet:      "chunk-get",
	KindChunkData:     "chunk-data",
	KindChunkHas:      "chunk-has",
	KindChunkHeld:     "chunk-held",
}

// Valid reports whether k is a kind this protocol version defines.
func (k Kind) Valid() bool { return k >= KindHello && k < kindEnd }

// String returns k's name, or "kind(N)" for an undefined kind.
func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Envelope is one message: its kind, the request id it belongs to, and its
// body as raw msgpack.
type Envelope struct {
	Kind Kind
	// ID matches a reply to its request; 0 marks a one-way message.
	ID uint64
	// Body is exactly one msgpack value. Envelopes from Conn.Recv share
	// their Body with the connection's read buffer: see Conn.Recv.
	Body msgpack.RawMessage
}

// Decode unmarshals the envelope's body into v (see Unmarshal).
func (e Envelope) Decode(v any) error {
	if err := Unmarshal(e.Body, v); err != nil {
		return fmt.Errorf("wire: %s body: %w", e.Kind, err)
	}
	return nil
}

// Clone returns a copy of e whose Body no longer aliases anything, so it
// stays valid after the next Conn.Recv.
func (e Envelope) Clone() Envelope {
	if e.Body != nil {
		e.Body = append(msgpack.RawMessage(nil), e.Body...)
	}
	return e
}

// EncodeMsgpack encodes e in the protocol's layout, so that encoding an
// Envelope with msgpack, or inside another message, gives the same bytes
// as AppendEnvelope.
func (e Envelope) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(3); err != nil {
		return err
	}
	if err := enc.EncodeUint(uint64(e.Kind)); err != nil {
		return err
	}
	if err := enc.EncodeUint(e.ID); err != nil {
		return err
	}
	body := e.Body
	if len(body) == 0 {
		body = nilBody
	}
	return enc.Encode(body)
}

// DecodeMsgpack decodes an envelope in the protocol's layout, checked as
// DecodeEnvelope checks it. The Body is a copy.
func (e *Envelope) DecodeMsgpack(dec *msgpack.Decoder) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	env, err := DecodeEnvelope(raw)
	if err != nil {
		return err
	}
	*e = env
	return nil
}

// nilBody is the msgpack encoding of nil: what an envelope carries when it
// has nothing to say, since the body must be one whole value.
var nilBody = []byte{0xc0}

// AppendEnvelope appends the encoding of an envelope to dst: a 3-element
// msgpack array of kind, id and body. kind should be Valid and body exactly
// one msgpack value, or the receiver refuses the envelope; an empty body is
// encoded as nil.
func AppendEnvelope(dst []byte, kind Kind, id uint64, body []byte) []byte {
	dst = appendEnvelopeHeader(dst, kind, id)
	if len(body) == 0 {
		body = nilBody
	}
	return append(dst, body...)
}

// appendEnvelopeHeader appends the array header, kind and id, after which
// exactly one msgpack value must follow.
func appendEnvelopeHeader(dst []byte, kind Kind, id uint64) []byte {
	dst = append(dst, 0x93) // fixarray of 3
	dst = AppendUint(dst, uint64(kind))
	return AppendUint(dst, id)
}

// DecodeEnvelope decodes a frame body into an Envelope whose Body aliases
// b. Any encoding of a 3-element array and of non-negative integers is
// accepted; the kind must be Valid and the body exactly one well-formed
// msgpack value filling the rest of b. Errors match ErrBadBody.
func DecodeEnvelope(b []byte) (Envelope, error) {
	n, pos, err := readArrayLen(b, 0)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: envelope: %v", ErrBadBody, err)
	}
	if n != 3 {
		return Envelope{}, fmt.Errorf("%w: envelope has %d elements, want 3", ErrBadBody, n)
	}
	kind, pos, err := readUint(b, pos)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: envelope kind: %v", ErrBadBody, err)
	}
	if kind > 0xff || !Kind(kind).Valid() {
		return Envelope{}, fmt.Errorf("%w: unknown kind %d", ErrBadBody, kind)
	}
	id, pos, err := readUint(b, pos)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: envelope id: %v", ErrBadBody, err)
	}
	body := b[pos:]
	if err := checkValue(body); err != nil {
		return Envelope{}, fmt.Errorf("%w: %s body: %v", ErrBadBody, Kind(kind), err)
	}
	return Envelope{Kind: Kind(kind), ID: id, Body: body}, nil
}
