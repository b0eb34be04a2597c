package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

const fuzzMax = 1 << 12

// FuzzReadFrame feeds arbitrary streams to the frame reader and the
// envelope decoder. Neither may panic, the reader may not allocate past
// the maximum, errors must be the documented ones, and every envelope
// decoded must re-encode to a frame that decodes to the same envelope.
func FuzzReadFrame(f *testing.F) {
	good := func(kind Kind, id uint64, body any) []byte {
		b, err := AppendMessage(nil, kind, id, body, 0)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	req := good(KindRequest, 7, fullRequest())
	f.Add(req)
	f.Add(append(good(KindPing, 1, nil), good(KindReply, 1<<40, fullReply())...))
	f.Add(good(KindStatusReply, 3, fullStatus()))
	f.Add(good(KindPaxos, 0, &testAccept{Round: 1, Entries: []testEntry{{Slot: 1, Cmds: [][]byte{[]byte("x")}}}}))
	f.Add(good(KindHello, 0, replicaHello(1)))
	f.Add(good(KindBackup, 9, &BackupRequest{Consistency: Stale, MinIndex: 3, Chunk: DefaultBackupChunk}))
	f.Add(good(KindBackupAsk, 10, &BackupAsk{Stream: 1, Seq: 2}))
	f.Add(good(KindBackupChunk, 10, fullBackupChunk()))
	f.Add(good(KindChunkPut, 11, &ChunkPut{Sum: make([]byte, 32), Data: []byte("bytes")}))
	f.Add(good(KindChunkData, 12, &ChunkData{Code: CodeNotFound, Msg: "no"}))
	f.Add(good(KindChunkHas, 13, &ChunkHas{Sums: [][]byte{make([]byte, 32)}}))
	f.Add(good(KindChunkHeld, 13, &ChunkHeld{Code: CodeOK, Held: []bool{true}}))
	f.Add(req[:2])                                                // truncated header
	f.Add(req[:len(req)-3])                                       // truncated body
	f.Add(binary.BigEndian.AppendUint32(nil, fuzzMax+1))          // oversize
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<32-1))            // oversize
	f.Add(append(binary.BigEndian.AppendUint32(nil, fuzzMax), 1)) // at max, cut short
	f.Add([]byte{0, 0, 0, 0})                                     // empty body
	f.Add([]byte{0, 0, 0, 4, 0x93, 0x0b, 0x01, 0xc1})             // reserved code
	f.Add([]byte{0, 0, 0, 9, 0x93, 0x04, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0})
	f.Add(append([]byte{0, 0, 0, 0x44, 0x93, 0x04, 0x01}, bytes.Repeat([]byte{0x91}, 65)...))

	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bytes.NewReader(stream)
		for {
			body, err := ReadFrame(r, fuzzMax, nil)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("undocumented error %v", err)
				}
				return
			}
			if len(body) > fuzzMax || cap(body) > fuzzMax {
				t.Fatalf("body len %d cap %d over max %d", len(body), cap(body), fuzzMax)
			}
			env, err := DecodeEnvelope(body)
			if err != nil {
				if !errors.Is(err, ErrBadBody) {
					t.Fatalf("undocumented error %v", err)
				}
				continue
			}
			again := AppendFrame(nil, AppendEnvelope(nil, env.Kind, env.ID, env.Body))
			body2, err := ReadFrame(bytes.NewReader(again), fuzzMax+16, nil)
			if err != nil {
				t.Fatalf("re-encoded frame: %v", err)
			}
			env2, err := DecodeEnvelope(body2)
			if err != nil {
				t.Fatalf("re-encoded envelope: %v", err)
			}
			if env2.Kind != env.Kind || env2.ID != env.ID || !bytes.Equal(env2.Body, env.Body) {
				t.Fatalf("re-encoded %+v, decoded %+v", env, env2)
			}
			// Whatever the body is, decoding it into a message must fail
			// cleanly or round trip.
			for _, into := range []any{new(Request), new(Reply), new(Status), new(Hello), new(testAccept),
				new(BackupRequest), new(BackupAsk), new(BackupChunk)} {
				roundTrip(t, env.Body, into)
			}
		}
	})
}

// FuzzUnmarshal decodes arbitrary bytes into each message type: no panic,
// only ErrBadBody, and what decodes re-encodes to something that decodes
// equal.
func FuzzUnmarshal(f *testing.F) {
	for _, v := range []any{fullRequest(), fullReply(), fullStatus(), replicaHello(1), &refusal{Reason: "r"}, &testAccept{Entries: []testEntry{{Cmds: [][]byte{{1}}}}},
		&BackupRequest{Consistency: Session, MinIndex: 1 << 40, Chunk: MaxBackupChunk}, &BackupAsk{Stream: 1 << 33, Seq: 1}, fullBackupChunk()} {
		f.Add(mustMarshal(f, v))
	}
	f.Add([]byte{0x81, 0xa1, 'x', 0x91, 0x91, 0xc0})
	f.Add([]byte{0xdc, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, into := range []any{new(Request), new(Reply), new(Status), new(StatusRequest), new(Hello), new(refusal), new(testAccept),
			new(BackupRequest), new(BackupAsk), new(BackupChunk)} {
			roundTrip(t, b, into)
		}
	})
}

// roundTrip decodes b into a fresh value of into's type; if that works,
// the value must encode and decode back to itself.
func roundTrip(t *testing.T, b []byte, into any) {
	t.Helper()
	typ := reflect.TypeOf(into).Elem()
	v := reflect.New(typ).Interface()
	if err := Unmarshal(b, v); err != nil {
		if !errors.Is(err, ErrBadBody) {
			t.Fatalf("%v: undocumented error %v", typ, err)
		}
		return
	}
	enc, err := Marshal(v)
	if err != nil {
		t.Fatalf("%v: re-encode: %v", typ, err)
	}
	w := reflect.New(typ).Interface()
	if err := Unmarshal(enc, w); err != nil {
		t.Fatalf("%v: decode re-encoded %x: %v", typ, enc, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("%v: %+v re-decoded as %+v", typ, v, w)
	}
}
